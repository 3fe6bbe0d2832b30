//! The last word wins: the engine against the races real EC2 and Lambda produce and moto
//! never does. Two engines (two function processes: separate caches, separate pacing) work
//! on one in-memory EC2 whose writes are slow, whose reads can lag the writes, and whose
//! tables can vanish between a read and a write. Each test ends by checking every custom
//! table against what the main table says last.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sync_routes::adapters::memory::{MemoryEc2, MemoryHandOff, MemoryNotifier};
use sync_routes::domain::plan::{
    Destination, Route, RouteOrigin, RouteState, RouteTable, Target, TargetKind,
};
use sync_routes::domain::report::{NoticeStatus, Outcome, TableActionTaken};
use sync_routes::domain::request::{MainRoute, RequestSource, Subject, SyncRequest};
use sync_routes::domain::sync::{SyncSettings, Syncer};
use tokio::time::Instant;

const VPC: &str = "vpc-0000000000000000a";
const MAIN: &str = "rtb-00000000000000001";
const DEST: &str = "10.1.0.0/16";
const TABLES: usize = 20;

fn eni(id: &str) -> Target {
    Target::new(TargetKind::NetworkInterface, id)
}

fn dest() -> Destination {
    Destination::Cidr(DEST.parse().unwrap())
}

fn route(target: &str) -> Route {
    Route {
        destination: dest(),
        target: eni(target),
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    }
}

fn custom(i: usize) -> String {
    format!("rtb-1{i:016x}")
}

/// The main table and `TABLES` custom tables all route `DEST` to `target`.
fn synced_vpc(target: &str) -> Vec<RouteTable> {
    let mut tables = vec![RouteTable::new(MAIN, VPC, true, vec![route(target)])];
    for i in 0..TABLES {
        tables.push(RouteTable::new(&custom(i), VPC, false, vec![route(target)]));
    }
    tables
}

/// The route event CloudTrail delivers for a ReplaceRoute in the main table, just made.
fn replace_event(target: &str) -> SyncRequest {
    SyncRequest {
        subject: Subject::Route {
            table_id: MAIN.into(),
            vpc_id: Some(VPC.into()),
            destination: dest(),
            expected: Some(MainRoute::To(eni(target))),
        },
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name: "ReplaceRoute".into(),
            event_id: None,
            caller: None,
            event_time: Some(SystemTime::now()),
            waits: 0,
        },
    }
}

fn point_main_at(tables: &mut [RouteTable], target: &str) {
    let main = tables.iter_mut().find(|t| t.is_main).unwrap();
    main.routes[0].target = eni(target);
}

/// Every custom table's next hop for `DEST`, as EC2 really holds it (not as a read shows).
fn custom_targets(ec2: &MemoryEc2) -> Vec<String> {
    let tables = ec2.snapshot();
    (0..TABLES)
        .map(|i| {
            let table = tables.iter().find(|t| t.id == custom(i)).unwrap();
            table
                .route_for(&dest())
                .map_or("(none)".to_owned(), |r| r.target.id.clone())
        })
        .collect()
}

fn main_target(ec2: &MemoryEc2) -> String {
    let tables = ec2.snapshot();
    let main = tables.iter().find(|t| t.is_main).unwrap();
    main.route_for(&dest()).unwrap().target.id.clone()
}

/// Writes one at a time, 20 ms each: 20 tables take 400 ms, time for a failback.
fn slow_writes() -> SyncSettings {
    SyncSettings {
        max_concurrent_writes: 1,
        consistency_pause: Duration::from_millis(20),
        ..SyncSettings::default()
    }
}

fn later(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// Issue 19's failback: invocation A moves 20 tables to eni-B, slowly. After its fifth
/// write the health check fails back to eni-A, and invocation B (another process) handles
/// that event while A is still writing eni-B into the rest. ReplaceRoute has no
/// precondition, so A's later writes succeed. A's read after writing sees the main table's
/// last word and puts every table it moved back on eni-A.
async fn failback_during_a_failover(read_lag: Duration) {
    let mut ec2 = MemoryEc2::new(synced_vpc("eni-A"));
    ec2.write_latency = Duration::from_millis(20);
    ec2.read_lag = read_lag;
    let ec2 = Arc::new(ec2);
    ec2.change(|tables| point_main_at(tables, "eni-B")); // the failover
    let failback = Arc::new(tokio::sync::Notify::new());
    {
        let failback = failback.clone();
        let mut writes = 0;
        *ec2.before_write.lock().unwrap() = Some(Box::new(move |tables, _| {
            writes += 1;
            if writes == 5 {
                point_main_at(tables, "eni-A");
                failback.notify_one();
            }
        }));
    }
    // As on Lambda, what an invocation cannot finish (a check it could not make, an event
    // EC2 does not show yet) is handed on, and run afterwards.
    let hand_off = Arc::new(MemoryHandOff::default());
    let a = Syncer::new(&*ec2, Some(MemoryNotifier::default()), slow_writes())
        .with_hand_off(hand_off.clone());
    let b = Syncer::new(&*ec2, Some(MemoryNotifier::default()), slow_writes())
        .with_hand_off(hand_off.clone());
    let failover = async {
        // Past the read lag, so that A's first read shows the failover.
        tokio::time::sleep(read_lag).await;
        a.run(&replace_event("eni-B"), later(30)).await
    };
    let failback_event = async {
        failback.notified().await;
        b.run(&replace_event("eni-A"), later(30)).await
    };
    let (report_a, report_b) = tokio::join!(failover, failback_event);
    tokio::time::sleep(read_lag).await;
    let continued: Vec<_> = hand_off.requests.lock().unwrap().drain(..).collect();
    for request in &continued {
        let report = b.run(request, later(30)).await;
        assert!(!report.is_failure(), "{report:#?}");
    }

    assert_eq!(main_target(&ec2), "eni-A");
    assert_eq!(
        custom_targets(&ec2),
        vec!["eni-A"; TABLES],
        "every table ends on the main table's last word\nA: {report_a:#?}\nB: {report_b:#?}"
    );
    for report in [&report_a, &report_b] {
        assert!(!report.is_failure(), "{report:#?}");
        assert_ne!(report.outcome, Outcome::Failed);
    }
    assert_eq!(
        report_a.target.as_deref(),
        Some("eni-A"),
        "A reports where it ended"
    );
    assert!(
        report_a.calls.describe_route_tables >= 2,
        "A read again after writing: {:?}",
        report_a.calls
    );
}

#[tokio::test]
async fn a_failback_during_a_failover_ends_on_the_main_tables_last_word() {
    failback_during_a_failover(Duration::ZERO).await;
}

/// The same with reads that lag the writes by 150 ms: B's first read may not show the
/// failback yet (B backs off and reads again), and A's read after writing misses its latest
/// writes (A believes them, see `believe_own_writes`).
#[tokio::test]
async fn a_failback_during_a_failover_with_lagging_reads_ends_right() {
    failback_during_a_failover(Duration::from_millis(150)).await;
}

/// The read after writing believes the writes EC2 acknowledged: with reads lagging, it does
/// not write the same routes again. One read, twenty writes, one check (without believing
/// them: twenty more writes and two more reads, and each rewrite lags again).
#[tokio::test]
async fn a_lagging_read_after_writing_causes_no_second_write() {
    let mut ec2 = MemoryEc2::new(synced_vpc("eni-A"));
    ec2.read_lag = Duration::from_millis(500);
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    ec2.change(|tables| point_main_at(tables, "eni-B"));
    tokio::time::sleep(Duration::from_millis(550)).await;
    let report = syncer.run(&replace_event("eni-B"), later(10)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.replaced as usize, TABLES);
    let (_, reads, writes) = ec2.take_counts();
    assert_eq!(
        (reads, writes as usize),
        (2, TABLES),
        "a read, the writes, one check"
    );
    assert_eq!(custom_targets(&ec2), vec!["eni-B"; TABLES]);
}

/// Two processes handle the same event at once (Lambda's at-least-once delivery): both
/// converge, and neither fails on the other's writes.
#[tokio::test]
async fn a_duplicate_delivery_in_two_processes_converges() {
    let mut ec2 = MemoryEc2::new(synced_vpc("eni-A"));
    ec2.write_latency = Duration::from_millis(5);
    ec2.change(|tables| point_main_at(tables, "eni-B"));
    let a = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let b = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let event = replace_event("eni-B");
    let (ra, rb) = tokio::join!(a.run(&event, later(10)), b.run(&event, later(10)));
    assert!(!ra.is_failure() && !rb.is_failure(), "{ra:#?}\n{rb:#?}");
    assert_eq!(custom_targets(&ec2), vec!["eni-B"; TABLES]);
}

/// Terraform destroys a custom table between the read and the write: that table is
/// `skipped` with code `table-deleted`, the others are synced, the request succeeds and no
/// FAILED notice goes out.
#[tokio::test]
async fn a_table_deleted_between_the_read_and_the_write_is_skipped() {
    let ec2 = MemoryEc2::new(synced_vpc("eni-A"));
    ec2.change(|tables| point_main_at(tables, "eni-B"));
    let doomed = custom(7);
    {
        let doomed = doomed.clone();
        *ec2.before_write.lock().unwrap() = Some(Box::new(move |tables, _| {
            tables.retain(|t| t.id != doomed);
        }));
    }
    let notices = MemoryNotifier::default();
    let syncer = Syncer::new(&ec2, Some(&notices), SyncSettings::default());
    let report = syncer.run(&replace_event("eni-B"), later(10)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert!(!report.is_failure());
    let gone = report
        .tables
        .iter()
        .find(|t| t.route_table_id == doomed)
        .unwrap();
    assert_eq!(gone.action, TableActionTaken::Skipped);
    assert_eq!(gone.code.as_deref(), Some("table-deleted"));
    assert_eq!(report.counts.replaced as usize, TABLES - 1);
    assert_eq!(report.counts.failed, 0);
    assert_eq!(report.notice, NoticeStatus::Published);
    let sent = notices.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].subject.contains("FAILED"), "{}", sent[0].subject);
    let tables = ec2.snapshot();
    assert!(tables.iter().all(|t| t.id != doomed));
    for t in tables.iter().filter(|t| !t.is_main) {
        assert_eq!(
            t.route_for(&dest()).unwrap().target,
            eni("eni-B"),
            "{}",
            t.id
        );
    }
}

/// A VPC deleted during a sweep: its tables are skipped as deleted, other VPCs are synced,
/// and the sweep succeeds.
#[tokio::test]
async fn a_vpc_deleted_during_a_sweep_fails_nothing() {
    let mut tables = synced_vpc("eni-A");
    let other_vpc = "vpc-0000000000000000b";
    tables.push(RouteTable::new(
        "rtb-20000000000000000",
        other_vpc,
        true,
        vec![route("eni-C")],
    ));
    tables.push(RouteTable::new(
        "rtb-20000000000000001",
        other_vpc,
        false,
        vec![],
    ));
    let ec2 = MemoryEc2::new(tables);
    ec2.change(|tables| point_main_at(tables, "eni-B"));
    *ec2.before_write.lock().unwrap() = Some(Box::new(move |tables, write| {
        if write.table_id.starts_with("rtb-1") {
            tables.retain(|t| t.vpc_id != VPC);
        }
    }));
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let sweep = SyncRequest {
        subject: Subject::reconcile(None),
        dry_run: false,
        source: RequestSource::Schedule,
    };
    let report = syncer.run(&sweep, later(10)).await;
    assert!(!report.is_failure(), "{report:#?}");
    assert_eq!(report.counts.failed, 0);
    assert_eq!(report.counts.created, 1, "the other VPC's table");
    assert!(report
        .tables
        .iter()
        .filter(|t| t.vpc_id == VPC)
        .all(|t| t.code.as_deref() == Some("table-deleted")));
}

/// A flapping health check: the first write of each pass of `TABLES` writes flips the main
/// table to the other appliance, so every check after writing finds work again.
fn flap_at_each_pass(ec2: &MemoryEc2) {
    let mut writes = 0;
    *ec2.before_write.lock().unwrap() = Some(Box::new(move |tables, _| {
        writes += 1;
        if writes % TABLES == 1 {
            let flip = if (writes / TABLES).is_multiple_of(2) {
                "eni-A"
            } else {
                "eni-B"
            };
            point_main_at(tables, flip);
        }
    }));
}

/// A VPC whose main table keeps changing while it is synced (a flapping health check): the
/// check after writing stops after 3 reads, and the last check goes on in a continuation.
/// Where none can be made, the request is not `synced` but failed, so that it is run again.
#[tokio::test]
async fn a_vpc_that_keeps_changing_is_checked_again_elsewhere_or_fails() {
    for with_hand_off in [true, false] {
        let ec2 = MemoryEc2::new(synced_vpc("eni-A"));
        ec2.change(|tables| point_main_at(tables, "eni-B"));
        flap_at_each_pass(&ec2);
        let hand_off = Arc::new(MemoryHandOff::default());
        let mut syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
        if with_hand_off {
            syncer = syncer.with_hand_off(hand_off.clone());
        }
        let report = syncer.run(&replace_event("eni-B"), later(10)).await;
        assert_eq!(
            report.calls.describe_route_tables, 4,
            "a read and 3 checks: {report:#?}"
        );
        let handed = hand_off.requests.lock().unwrap().clone();
        if with_hand_off {
            assert!(!report.is_failure(), "{report:#?}");
            assert_eq!(handed.len(), 1);
            assert_eq!(handed[0].source, RequestSource::HandOff { hops: 1 });
        } else {
            assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
            assert!(
                report.message.contains("run it again"),
                "{}",
                report.message
            );
            assert!(handed.is_empty());
        }
    }
}

/// The notice of a request that made its changes but could not finish checking them says
/// it failed (it is retried), not that it synced.
#[tokio::test]
async fn the_notice_of_an_unfinished_check_says_failed() {
    let ec2 = MemoryEc2::new(synced_vpc("eni-A"));
    ec2.change(|tables| point_main_at(tables, "eni-B"));
    flap_at_each_pass(&ec2);
    let notices = MemoryNotifier::default();
    let syncer = Syncer::new(&ec2, Some(&notices), SyncSettings::default());
    let report = syncer.run(&replace_event("eni-B"), later(10)).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let sent = notices.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].subject.contains("FAILED"), "{}", sent[0].subject);
    assert!(sent[0]
        .attributes
        .contains(&("status", "failed".to_owned())));
}

/// Deletes on, with the ledger (issue 16), two processes and reads that lag the writes by 150
/// ms: A copies a new route into 20 tables, slowly; after its fifth write the route leaves
/// the main table and B handles the DeleteRoute while A is still writing. B finds A's copies
/// not yet recorded (A records after its check), so it deletes none of them; A's read after
/// writing sees the main table's last word, and its own writes are its to delete. Every
/// table ends without the route, and the ledger keeps nothing of it.
#[tokio::test]
async fn a_delete_during_a_copy_with_the_ledger_ends_on_the_main_tables_last_word() {
    use sync_routes::adapters::memory::MemoryLedger;
    use sync_routes::domain::plan::{DestinationFilter, Policy};

    let read_lag = Duration::from_millis(150);
    let mut tables = vec![RouteTable::new(MAIN, VPC, true, vec![route("eni-A")])];
    for i in 0..TABLES {
        tables.push(RouteTable::new(&custom(i), VPC, false, vec![]));
    }
    let mut ec2 = MemoryEc2::new(tables);
    ec2.write_latency = Duration::from_millis(20);
    ec2.read_lag = read_lag;
    let ec2 = Arc::new(ec2);
    let deleted = Arc::new(tokio::sync::Notify::new());
    {
        let deleted = deleted.clone();
        let mut writes = 0;
        *ec2.before_write.lock().unwrap() = Some(Box::new(move |tables, _| {
            writes += 1;
            if writes == 5 {
                tables
                    .iter_mut()
                    .find(|t| t.is_main)
                    .unwrap()
                    .routes
                    .clear();
                deleted.notify_one();
            }
        }));
    }
    let settings = SyncSettings {
        policy: Policy {
            destinations: Some(vec![DestinationFilter::Within(
                "10.0.0.0/8".parse().unwrap(),
            )]),
            propagate_deletes: true,
            ..Policy::default()
        },
        // More than the 20 copies: this test is about the race, not the budget.
        max_deletes: 50,
        ..slow_writes()
    };
    let ledger = Arc::new(MemoryLedger::default());
    let hand_off = Arc::new(MemoryHandOff::default());
    let engine = || {
        Syncer::new(&*ec2, Some(MemoryNotifier::default()), settings.clone())
            .with_hand_off(hand_off.clone())
            .with_ledger(ledger.clone())
    };
    let (a, b) = (engine(), engine());
    let mut created = replace_event("eni-A");
    if let RequestSource::CloudTrail { event_name, .. } = &mut created.source {
        *event_name = "CreateRoute".into();
    }
    let mut delete = replace_event("eni-A");
    if let Subject::Route { expected, .. } = &mut delete.subject {
        *expected = Some(MainRoute::Gone);
    }
    if let RequestSource::CloudTrail { event_name, .. } = &mut delete.source {
        *event_name = "DeleteRoute".into();
    }
    let copy = async {
        tokio::time::sleep(read_lag).await;
        a.run(&created, later(30)).await
    };
    let deletion = async {
        deleted.notified().await;
        b.run(&delete, later(30)).await
    };
    let (report_a, report_b) = tokio::join!(copy, deletion);
    tokio::time::sleep(read_lag).await;
    let continued: Vec<_> = hand_off.requests.lock().unwrap().drain(..).collect();
    for request in &continued {
        let report = b.run(request, later(30)).await;
        assert!(!report.is_failure(), "{report:#?}");
    }

    assert_eq!(
        custom_targets(&ec2),
        vec!["(none)"; TABLES],
        "every table ends on the main table's last word\nA: {report_a:#?}\nB: {report_b:#?}"
    );
    for report in [&report_a, &report_b] {
        assert!(!report.is_failure(), "{report:#?}");
    }
    assert!(
        report_a.counts.deleted > 0,
        "A deleted its own copies: {report_a:#?}"
    );
    assert!(
        ledger.lock().is_empty(),
        "nothing of the route is left in the ledger"
    );
}
