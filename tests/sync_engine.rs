//! The engine with in-memory adapters: no SDK, no emulator, just the domain's ports.
//! Covers every trigger's read cost and scope, and what is awkward to stage in moto: the
//! table -> VPC cache, a deleted table, the deadline, a lagging read, and how write errors
//! map to the report.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use sync_routes::adapters::memory::{MemoryEc2, MemoryHandOff, MemoryLedger, MemoryNotifier};
use sync_routes::domain::ownership::LedgerEntry;
use sync_routes::domain::plan::{
    Destination, DestinationFilter, Policy, Route, RouteOrigin, RouteState, RouteTable, Target,
    TargetKind, SKIP_TAG,
};
use sync_routes::domain::report::{NoticeStatus, Outcome, Report, TableActionTaken};
use sync_routes::domain::request::{MainRoute, RequestSource, Subject, SyncRequest};
use sync_routes::domain::sync::{AwsError, RetryClass, SyncSettings, Syncer, WriteError};
use tokio::time::Instant;

const VPC: &str = "vpc-0000000000000000a";
const MAIN: &str = "rtb-00000000000000001";
const DEST: &str = "10.1.0.0/16";

fn eni(id: &str) -> Target {
    Target::new(TargetKind::NetworkInterface, id)
}

fn route_to(destination: &str, target: Target) -> Route {
    Route {
        destination: dest(destination),
        target,
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    }
}

fn dest(destination: &str) -> Destination {
    if destination.starts_with("pl-") {
        Destination::PrefixList(destination.into())
    } else {
        Destination::Cidr(destination.parse().unwrap())
    }
}

fn custom_id(vpc: usize, i: usize) -> String {
    format!("rtb-{vpc:08x}1{i:08x}")
}

/// A VPC with a main table routing `DEST` to eni-1 and `customs` empty custom tables.
fn vpc_tables(vpc: &str, main: &str, customs: usize, number: usize) -> Vec<RouteTable> {
    let mut tables = vec![RouteTable::new(
        main,
        vpc,
        true,
        vec![route_to(DEST, eni("eni-1"))],
    )];
    for i in 0..customs {
        tables.push(RouteTable::new(&custom_id(number, i), vpc, false, vec![]));
    }
    tables
}

fn ec2(customs: usize) -> MemoryEc2 {
    MemoryEc2::new(vpc_tables(VPC, MAIN, customs, 0))
}

fn request(subject: Subject) -> SyncRequest {
    SyncRequest {
        subject,
        dry_run: false,
        source: RequestSource::Manual,
    }
}

fn event(table: &str) -> SyncRequest {
    SyncRequest {
        subject: Subject::Route {
            table_id: table.into(),
            vpc_id: None,
            destination: dest(DEST),
            expected: None,
        },
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name: "CreateRoute".into(),
            event_id: None,
            caller: None,
            event_time: None,
            waits: 0,
        },
    }
}

/// A CloudTrail ReplaceRoute of `DEST` in the main table to `target`, recorded at `event_time`.
fn replace_at(target: &str, event_time: SystemTime) -> SyncRequest {
    SyncRequest {
        subject: Subject::Route {
            table_id: MAIN.into(),
            vpc_id: Some(VPC.into()),
            destination: dest(DEST),
            expected: Some(MainRoute::To(eni(target))),
        },
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name: "ReplaceRoute".into(),
            event_id: None,
            caller: None,
            event_time: Some(event_time),
            waits: 0,
        },
    }
}

fn later(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

fn settings(policy: Policy) -> SyncSettings {
    SyncSettings {
        policy,
        ..SyncSettings::default()
    }
}

fn routes_of(ec2: &MemoryEc2, table: &str) -> Vec<(String, String)> {
    ec2.snapshot()
        .into_iter()
        .find(|t| t.id == table)
        .unwrap()
        .routes
        .into_iter()
        .map(|r| (r.destination.to_string(), r.target.id))
        .collect()
}

fn actions(report: &Report) -> Vec<TableActionTaken> {
    report.tables.iter().map(|t| t.action).collect()
}

#[tokio::test]
async fn reads_once_when_warm_and_forgets_a_deleted_table() {
    let ec2 = ec2(2);
    let syncer = Syncer::new(
        &ec2,
        Some(MemoryNotifier::default()),
        SyncSettings::default(),
    );

    let cold = syncer.run(&event(MAIN), later(5)).await;
    assert_eq!(cold.outcome, Outcome::Synced);
    assert_eq!(
        ec2.take_counts(),
        (1, 2, 2),
        "cold: the table, then its VPC, then the VPC again to check the writes"
    );
    let warm = syncer.run(&event(MAIN), later(5)).await;
    assert_eq!(warm.outcome, Outcome::Unchanged);
    assert_eq!(ec2.take_counts(), (0, 1, 0), "warm: the VPC's tables only");

    // The table is deleted while the process stays warm: refused, and forgotten.
    ec2.tables.lock().unwrap().retain(|t| t.id != MAIN);
    let gone = syncer.run(&event(MAIN), later(5)).await;
    assert_eq!(gone.reason.as_deref(), Some("unknown-table"));
    assert_eq!(ec2.take_counts(), (0, 1, 0));
    let again = syncer.run(&event(MAIN), later(5)).await;
    assert_eq!(again.reason.as_deref(), Some("unknown-table"));
    assert_eq!(
        ec2.take_counts(),
        (1, 0, 0),
        "the cache no longer claims a VPC for it"
    );
}

#[tokio::test]
async fn a_table_that_became_main_is_synced_from() {
    // Main-ness is never cached: ReplaceRouteTableAssociation can move it at any time.
    let ec2 = ec2(2);
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let custom = custom_id(0, 0);
    let report = syncer.run(&event(&custom), later(5)).await;
    assert_eq!(report.reason.as_deref(), Some("not-main-table"));
    {
        let mut tables = ec2.tables.lock().unwrap();
        for t in tables.iter_mut() {
            t.is_main = t.id == custom;
            if t.is_main {
                t.routes = vec![route_to(DEST, eni("eni-2"))];
            }
        }
    }
    let report = syncer.run(&event(&custom), later(5)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.main_route_table_id.as_deref(), Some(custom.as_str()));
}

#[tokio::test]
async fn writes_that_stay_throttled_fail_by_the_deadline_and_the_report_says_so() {
    let ec2 = ec2(3);
    *ec2.write_error.lock().unwrap() = Some(WriteError::Aws(AwsError {
        operation: "CreateRoute",
        code: Some("RequestLimitExceeded".into()),
        message: "Request limit exceeded.".into(),
        retry: RetryClass::Throttled,
    }));
    let syncer = Syncer::new(
        &ec2,
        Some(MemoryNotifier::default()),
        SyncSettings::default(),
    );
    let started = Instant::now();

    let report = syncer
        .run(&event(MAIN), Instant::now() + Duration::from_millis(300))
        .await;

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the deadline"
    );
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.is_failure());
    assert!(report
        .tables
        .iter()
        .all(|t| t.action == TableActionTaken::Failed
            && t.reason
                .as_deref()
                .unwrap_or("")
                .contains("RequestLimitExceeded")));
    assert_eq!(report.notice, NoticeStatus::Published);
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_sends_no_notice() {
    let ec2 = ec2(2);
    let syncer = Syncer::new(
        &ec2,
        Some(MemoryNotifier::default()),
        SyncSettings::default(),
    );
    let mut request = event(MAIN);
    request.dry_run = true;

    let report = syncer.run(&request, later(5)).await;

    assert_eq!(report.outcome, Outcome::DryRun);
    assert_eq!(
        report.message,
        "dry run, 10.1.0.0/16 -> eni-1: 2 of 2 custom tables would change"
    );
    assert_eq!(actions(&report), [TableActionTaken::WouldCreate; 2]);
    assert_eq!(report.notice, NoticeStatus::NotNeeded);
    assert_eq!(ec2.take_counts().2, 2, "the writes went out with DryRun");
    assert!(ec2
        .snapshot()
        .iter()
        .filter(|t| !t.is_main)
        .all(|t| t.routes.is_empty()));
}

#[tokio::test]
async fn writes_are_bounded_by_max_concurrent_writes_and_all_land() {
    let mut ec2 = ec2(40);
    ec2.write_latency = Duration::from_millis(2);
    let settings = SyncSettings {
        max_concurrent_writes: 3,
        ..SyncSettings::default()
    };
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, settings);
    let report = syncer.run(&event(MAIN), later(5)).await;
    assert_eq!(report.calls.route_writes, 40);
    assert_eq!(ec2.max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(actions(&report), [TableActionTaken::Created; 40]);
    let ids: Vec<_> = report
        .tables
        .iter()
        .map(|t| t.route_table_id.clone())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "the report lists tables in id order");
}

/// A new table gets every eligible route of the main table, in one pass, with one read.
#[tokio::test]
async fn a_new_table_is_backfilled_with_one_read() {
    let ec2 = ec2(1);
    {
        let mut tables = ec2.tables.lock().unwrap();
        let main = tables.iter_mut().find(|t| t.is_main).unwrap();
        main.routes
            .push(route_to("pl-0123456789abcdef0", eni("eni-2")));
        main.routes.push(route_to("10.2.0.0/16", eni("eni-3")));
        main.routes.push(Route {
            state: RouteState::Blackhole,
            ..route_to("10.3.0.0/16", eni("eni-gone"))
        });
        tables.push(RouteTable::new("rtb-0000000000000000f", VPC, false, vec![]));
    }
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let report = syncer
        .run(
            &request(Subject::NewTable {
                table_id: "rtb-0000000000000000f".into(),
                vpc_id: VPC.into(),
            }),
            later(5),
        )
        .await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(
        ec2.take_counts(),
        (0, 2, 3),
        "one read, a write per eligible route, one read to check them"
    );
    assert_eq!(
        routes_of(&ec2, "rtb-0000000000000000f"),
        [
            ("10.1.0.0/16".to_owned(), "eni-1".to_owned()),
            ("10.2.0.0/16".to_owned(), "eni-3".to_owned()),
            ("pl-0123456789abcdef0".to_owned(), "eni-2".to_owned()),
        ]
    );
    assert!(
        routes_of(&ec2, &custom_id(0, 0)).is_empty(),
        "only the new table is in scope"
    );
    let listed: BTreeSet<_> = report
        .tables
        .iter()
        .filter_map(|t| t.destination.clone())
        .collect();
    assert_eq!(
        listed.len(),
        3,
        "the report lists each change by destination"
    );
}

/// ReplaceRouteTableAssociation: the whole VPC follows a new main table; a subnet's
/// association change is ignored with its reason, after one read.
#[tokio::test]
async fn a_main_table_move_reconciles_the_vpc_and_a_subnet_move_is_ignored() {
    let ec2 = ec2(2);
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let moved = |table: &str| {
        request(Subject::Association {
            table_id: table.into(),
        })
    };
    let subnet = syncer.run(&moved(&custom_id(0, 0)), later(5)).await;
    assert_eq!(subnet.outcome, Outcome::Ignored);
    assert_eq!(subnet.reason.as_deref(), Some("subnet-association-change"));
    assert_eq!(ec2.take_counts(), (1, 0, 0));

    // The main association moves to a new table holding two routes.
    {
        let mut tables = ec2.tables.lock().unwrap();
        for t in tables.iter_mut() {
            t.is_main = false;
        }
        tables.push(RouteTable::new(
            "rtb-0000000000000000e",
            VPC,
            true,
            vec![
                route_to(DEST, eni("eni-7")),
                route_to("10.9.0.0/16", eni("eni-7")),
            ],
        ));
    }
    let report = syncer.run(&moved("rtb-0000000000000000e"), later(5)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    // The old main table is a custom table now: it keeps its route, replaced in kind.
    for table in [MAIN.to_owned(), custom_id(0, 0), custom_id(0, 1)] {
        let mut routes = routes_of(&ec2, &table);
        routes.sort();
        assert_eq!(
            routes,
            [
                ("10.1.0.0/16".to_owned(), "eni-7".to_owned()),
                ("10.9.0.0/16".to_owned(), "eni-7".to_owned())
            ],
            "{table}"
        );
    }
}

/// A sweep reads every VPC in scope in one call, writes exactly the drift, and a second
/// sweep finds nothing to do.
#[tokio::test]
async fn a_sweep_reads_once_writes_the_drift_and_converges() {
    let mut tables = Vec::new();
    for v in 0..5 {
        let vpc = format!("vpc-{v:017x}");
        let main = format!("rtb-{v:08x}000000000");
        let mut vpc_tables = vpc_tables(&vpc, &main, 3, v + 1);
        // In sync already, but for one table of VPCs 1 and 3.
        for (i, table) in vpc_tables.iter_mut().enumerate().skip(1) {
            if !(i == 2 && v % 2 == 1) {
                table.routes.push(route_to(DEST, eni("eni-1")));
            }
        }
        tables.extend(vpc_tables);
    }
    let ec2 = MemoryEc2::new(tables);
    let policy = Policy {
        vpc_ids: Some((0..4).map(|v| format!("vpc-{v:017x}")).collect()),
        ..Policy::default()
    };
    let syncer = Syncer::new(&ec2, Some(MemoryNotifier::default()), settings(policy));
    let sweep = SyncRequest {
        subject: Subject::reconcile(None),
        dry_run: false,
        source: RequestSource::Schedule,
    };

    let report = syncer.run(&sweep, later(5)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(
        ec2.take_counts(),
        (0, 2, 2),
        "one read for four VPCs, one write per drift, one read of the two VPCs written"
    );
    assert_eq!(report.counts.vpcs, 4, "vpc 4 is outside SYNC_VPC_IDS");
    assert_eq!(report.counts.created, 2);
    assert_eq!(report.counts.unchanged, 10);
    assert_eq!(
        report
            .tables
            .iter()
            .map(|t| (t.vpc_id.as_str(), t.destination.as_deref(), t.action))
            .collect::<Vec<_>>(),
        [
            (
                "vpc-00000000000000001",
                Some(DEST),
                TableActionTaken::Created
            ),
            (
                "vpc-00000000000000003",
                Some(DEST),
                TableActionTaken::Created
            ),
        ],
        "the report lists the changes, not the tables already right"
    );
    assert_eq!(report.notice, NoticeStatus::Published);

    let again = syncer.run(&sweep, later(5)).await;
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!(ec2.take_counts(), (0, 1, 0));
    assert_eq!(again.notice, NoticeStatus::NotNeeded);
}

/// SYNC_VPC_IDS: another VPC is answered `ignored` after its first read, with no write,
/// so no UnauthorizedOperation fails the invocation.
#[tokio::test]
async fn a_vpc_outside_sync_vpc_ids_is_ignored_after_one_read() {
    let ec2 = ec2(2);
    let policy = Policy {
        vpc_ids: Some(BTreeSet::from(["vpc-0000000000000000b".to_owned()])),
        ..Policy::default()
    };
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, settings(policy));
    let report = syncer.run(&event(MAIN), later(5)).await;
    assert_eq!(report.outcome, Outcome::Ignored);
    assert_eq!(report.reason.as_deref(), Some("vpc-not-in-scope"));
    assert!(!report.is_failure());
    assert_eq!(ec2.take_counts(), (1, 0, 0));
    let reconcile = syncer
        .run(&request(Subject::reconcile(Some(VPC.into()))), later(5))
        .await;
    assert_eq!(reconcile.outcome, Outcome::Ignored);
    assert_eq!(ec2.take_counts(), (0, 0, 0));
}

#[tokio::test]
async fn an_unknown_vpc_is_refused() {
    let ec2 = ec2(1);
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let report = syncer
        .run(
            &request(Subject::reconcile(Some("vpc-0000000000000ffff".into()))),
            later(5),
        )
        .await;
    assert_eq!(report.outcome, Outcome::Refused);
    assert_eq!(report.reason.as_deref(), Some("unknown-vpc"));
    assert_eq!(ec2.take_counts(), (0, 1, 0));
}

/// Deletes: off by default (a DeleteRoute event is ignored); on, with a scope, a route gone
/// from the main table leaves every custom table that holds our kind of static copy.
#[tokio::test]
async fn deletes_follow_the_main_table_only_when_switched_on() {
    let ec2 = ec2(3);
    {
        let mut tables = ec2.tables.lock().unwrap();
        tables
            .iter_mut()
            .find(|t| t.is_main)
            .unwrap()
            .routes
            .clear();
        for (i, t) in tables.iter_mut().filter(|t| !t.is_main).enumerate() {
            t.routes.push(match i {
                // Another kind of next hop, and a tagged table: both stay.
                0 => route_to(DEST, Target::new(TargetKind::InternetGateway, "igw-1")),
                _ => route_to(DEST, eni("eni-1")),
            });
            if i == 2 {
                t.tags.insert(SKIP_TAG.into(), "true".into());
            }
        }
    }
    let deleted = SyncRequest {
        subject: Subject::Route {
            table_id: MAIN.into(),
            vpc_id: None,
            destination: dest(DEST),
            expected: Some(MainRoute::Gone),
        },
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name: "DeleteRoute".into(),
            event_id: None,
            caller: None,
            event_time: None,
            waits: 0,
        },
    };
    let off = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let report = off.run(&deleted, later(5)).await;
    assert_eq!(
        (report.outcome, report.reason.as_deref()),
        (Outcome::Ignored, Some("deletes-off"))
    );
    assert_eq!(ec2.take_counts(), (0, 0, 0));

    let policy = Policy {
        destinations: Some(vec![DestinationFilter::Within(
            "10.0.0.0/8".parse().unwrap(),
        )]),
        propagate_deletes: true,
        ..Policy::default()
    };
    let notices = MemoryNotifier::default();
    // The copy in table 1 is sync-routes' own (tests/ownership.rs has the other cases).
    let ledger = std::sync::Arc::new(MemoryLedger::owning([LedgerEntry {
        vpc_id: VPC.into(),
        table_id: custom_id(0, 1),
        destination: dest(DEST),
        next_hop: eni("eni-1"),
        written_at: SystemTime::now(),
        request: "test".into(),
    }]));
    let on = Syncer::new(&ec2, Some(&notices), settings(policy)).with_ledger(ledger.clone());
    let report = on.run(&deleted, later(5)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(
        actions(&report),
        [
            TableActionTaken::Skipped,
            TableActionTaken::Deleted,
            TableActionTaken::Skipped
        ]
    );
    assert_eq!(
        routes_of(&ec2, &custom_id(0, 0)),
        [(DEST.to_owned(), "igw-1".to_owned())]
    );
    assert!(routes_of(&ec2, &custom_id(0, 1)).is_empty());
    assert_eq!(
        routes_of(&ec2, &custom_id(0, 2)),
        [(DEST.to_owned(), "eni-1".to_owned())]
    );
    let sent = notices.sent.lock().unwrap();
    assert!(sent[0].body.contains("deleted"), "{}", sent[0].body);
    // A deleted route leaves the ledger.
    assert_eq!(ledger.next_hop(&custom_id(0, 1), &dest(DEST)), None);
}

/// EC2's reads are eventually consistent: a fresh event whose read contradicts it is never
/// decided from that read. The engine backs off (1, 2, 4 s; scaled down here) and reads
/// again; if the read still disagrees, nothing is written and the same event is handed on
/// (`waiting-for-ec2`). A late event is decided from the read, and stays cheap.
#[tokio::test]
async fn a_fresh_event_that_the_read_does_not_show_yet_is_waited_out() {
    let ec2 = ec2(1);
    let hand_off = std::sync::Arc::new(MemoryHandOff::default());
    let syncer = Syncer::new(
        &ec2,
        None::<MemoryNotifier>,
        SyncSettings {
            consistency_pause: Duration::from_millis(10),
            ..SyncSettings::default()
        },
    )
    .with_hand_off(hand_off.clone());
    let at = |event_time: SystemTime| replace_at("eni-new", event_time);
    let now = SystemTime::now();
    let fresh = syncer.run(&at(now), later(5)).await;
    assert_eq!(fresh.outcome, Outcome::WaitingForEc2, "{fresh:#?}");
    assert!(!fresh.is_failure());
    assert_eq!(fresh.reason.as_deref(), Some("waiting-for-ec2"));
    assert_eq!(
        fresh.calls.describe_route_tables, 4,
        "a read and three more, backing off"
    );
    assert_eq!(ec2.take_counts().2, 0, "nothing decided, nothing written");
    assert!(fresh.tables.is_empty());
    let handed = hand_off.requests.lock().unwrap().clone();
    assert_eq!(handed.len(), 1);
    assert_eq!(
        handed[0].subject,
        at(now).subject,
        "the same event, expectation and all"
    );
    assert!(
        matches!(handed[0].source, RequestSource::CloudTrail { waits: 1, event_time: Some(t), .. } if t == now),
        "{:?}",
        handed[0].source
    );

    // By the time the hand-off runs, EC2 shows the change: synced.
    ec2.change(|tables| {
        let main = tables.iter_mut().find(|t| t.is_main).unwrap();
        main.routes[0].target = eni("eni-new");
    });
    let later_run = syncer.run(&handed[0], later(5)).await;
    assert_eq!(later_run.outcome, Outcome::Synced, "{later_run:#?}");
    assert_eq!(later_run.target.as_deref(), Some("eni-new"));

    // A late event whose read disagrees is decided from the read, in one read.
    let late = syncer
        .run(&at(SystemTime::now() - Duration::from_secs(600)), later(5))
        .await;
    assert_eq!(
        late.calls.describe_route_tables, 1,
        "a late event stays cheap"
    );
    assert_eq!(late.outcome, Outcome::Unchanged);
}

/// A read that contradicts a fresh event but shows a newer change (a later event for the
/// same route, already confirmed) is believed: the older event is not waited out.
#[tokio::test]
async fn a_read_that_shows_a_newer_change_is_believed() {
    let ec2 = ec2(1);
    let syncer = Syncer::new(
        &ec2,
        None::<MemoryNotifier>,
        SyncSettings {
            consistency_pause: Duration::from_millis(10),
            ..SyncSettings::default()
        },
    );
    let replace = replace_at;
    let older = SystemTime::now() - Duration::from_secs(5);
    // The newer event (eni-1, what the main table holds) arrives first and is confirmed.
    let newer = syncer
        .run(&replace("eni-1", SystemTime::now()), later(5))
        .await;
    assert_eq!(newer.outcome, Outcome::Synced);
    let late = syncer.run(&replace("eni-0", older), later(5)).await;
    assert_eq!(late.outcome, Outcome::Unchanged, "{late:#?}");
    assert_eq!(late.calls.describe_route_tables, 1, "no backing off");
}

/// With deletes on, a fresh DeleteRoute whose read still shows the route never deletes
/// the copies: it waits for EC2.
#[tokio::test]
async fn a_contradicted_delete_event_deletes_nothing() {
    let ec2 = ec2(2);
    for i in 0..2 {
        ec2.tables.lock().unwrap()[i + 1]
            .routes
            .push(route_to(DEST, eni("eni-1")));
    }
    let policy = Policy {
        destinations: Some(vec![DestinationFilter::Within(
            "10.0.0.0/8".parse().unwrap(),
        )]),
        propagate_deletes: true,
        ..Policy::default()
    };
    let syncer = Syncer::new(
        &ec2,
        None::<MemoryNotifier>,
        SyncSettings {
            consistency_pause: Duration::from_millis(10),
            ..settings(policy)
        },
    );
    let delete = SyncRequest {
        subject: Subject::Route {
            table_id: MAIN.into(),
            vpc_id: Some(VPC.into()),
            destination: dest(DEST),
            expected: Some(MainRoute::Gone),
        },
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name: "DeleteRoute".into(),
            event_id: None,
            caller: None,
            event_time: Some(SystemTime::now()),
            waits: 0,
        },
    };
    let report = syncer.run(&delete, later(5)).await;
    assert_eq!(report.outcome, Outcome::WaitingForEc2, "{report:#?}");
    assert_eq!(ec2.take_counts().2, 0);
    assert_eq!(routes_of(&ec2, &custom_id(0, 0)).len(), 1);
    assert_eq!(routes_of(&ec2, &custom_id(0, 1)).len(), 1);
}

/// Gateway route tables and tables tagged sync-routes:skip=true are reported as skipped,
/// each with its own reason, and never written.
#[tokio::test]
async fn gateway_and_tagged_tables_are_skipped_with_their_reason() {
    let ec2 = ec2(3);
    {
        let mut tables = ec2.tables.lock().unwrap();
        tables[1].gateway_association = Some("igw-0123456789abcdef0".into());
        tables[2].tags.insert(SKIP_TAG.into(), "true".into());
    }
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let report = syncer.run(&event(MAIN), later(5)).await;
    assert_eq!(ec2.take_counts().2, 1);
    let reasons: Vec<_> = report
        .tables
        .iter()
        .map(|t| (t.action, t.reason.clone().unwrap_or_default()))
        .collect();
    assert_eq!(reasons[0].0, TableActionTaken::Skipped);
    assert!(reasons[0].1.contains("gateway route table"), "{reasons:?}");
    assert!(
        reasons[1].1.contains("sync-routes:skip=true"),
        "{reasons:?}"
    );
    assert_eq!(reasons[2].0, TableActionTaken::Created);
}

#[tokio::test]
async fn a_read_that_fails_fails_the_request_without_writing() {
    let ec2 = ec2(2);
    *ec2.read_error.lock().unwrap() = Some(AwsError {
        operation: "DescribeRouteTables",
        code: Some("InternalError".into()),
        message: "boom".into(),
        retry: RetryClass::Transient,
    });
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let report = syncer
        .run(&request(Subject::reconcile(None)), later(5))
        .await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(
        report.message.contains("could not read"),
        "{}",
        report.message
    );
    assert_eq!(ec2.take_counts().2, 0);
}

fn slow_ec2(tables: usize) -> MemoryEc2 {
    let mut ec2 = ec2(tables);
    ec2.write_latency = Duration::from_millis(40);
    ec2
}

fn one_at_a_time() -> SyncSettings {
    SyncSettings {
        max_concurrent_writes: 1,
        ..SyncSettings::default()
    }
}

/// More writes than one invocation can make: what is written stands, the rest is handed on
/// to a new invocation (not failed, so no retry, no failure queue, no alarm), and that
/// invocation re-reads and finishes.
#[tokio::test]
async fn writes_past_the_deadline_are_handed_on_and_the_next_invocation_finishes() {
    let ec2 = slow_ec2(20);
    let hand_off = std::sync::Arc::new(MemoryHandOff::default());
    let syncer =
        Syncer::new(&ec2, None::<MemoryNotifier>, one_at_a_time()).with_hand_off(hand_off.clone());

    let report = syncer
        .run(&event(MAIN), Instant::now() + Duration::from_millis(300))
        .await;
    assert_eq!(report.outcome, Outcome::Progressing, "{report:#?}");
    assert!(!report.is_failure());
    let (written, deferred) = (report.counts.created, report.counts.deferred);
    assert!(
        written > 0 && deferred > 0 && written + deferred == 20,
        "{written} + {deferred}"
    );
    assert!(
        report.message.contains(&format!("{deferred} handed on")),
        "{}",
        report.message
    );
    assert_eq!(
        ec2.take_counts().2,
        written,
        "no write started past the deadline"
    );
    let next = hand_off.requests.lock().unwrap().clone();
    assert_eq!(
        next,
        [SyncRequest {
            subject: Subject::Route {
                table_id: MAIN.into(),
                vpc_id: Some(VPC.into()),
                destination: dest(DEST),
                expected: None,
            },
            dry_run: false,
            source: RequestSource::HandOff { hops: 1 },
        }],
        "the same scope continues: never another event's work"
    );

    let rest = syncer.run(&next[0], later(5)).await;
    assert_eq!(rest.outcome, Outcome::Synced, "{rest:#?}");
    assert_eq!(rest.counts.created, deferred);
    assert_eq!(
        ec2.take_counts(),
        (0, 2, deferred),
        "a read, the writes, a check"
    );
    for i in 0..20 {
        assert_eq!(routes_of(&ec2, &custom_id(0, i)).len(), 1);
    }
}

/// Where the work cannot be handed on, the deadline fails the request as before, so that
/// Lambda's retry of the same event continues from the current state.
#[tokio::test]
async fn a_hand_off_that_cannot_be_made_fails_the_request() {
    for (hand_off, source, says) in [
        (
            MemoryHandOff {
                refuse: Some("AccessDenied".into()),
                ..MemoryHandOff::default()
            },
            RequestSource::Manual,
            "the hand-off failed: AccessDenied",
        ),
        (
            MemoryHandOff::default(),
            RequestSource::HandOff {
                hops: sync_routes::domain::sync::MAX_HAND_OFFS,
            },
            "still unfinished after",
        ),
    ] {
        let ec2 = slow_ec2(10);
        let hand_off = std::sync::Arc::new(hand_off);
        let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, one_at_a_time())
            .with_hand_off(hand_off.clone());
        let request = SyncRequest {
            subject: Subject::reconcile(Some(VPC.into())),
            dry_run: false,
            source,
        };
        let report = syncer
            .run(&request, Instant::now() + Duration::from_millis(150))
            .await;
        assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
        assert!(report.is_failure());
        assert_eq!(report.counts.deferred, 0);
        assert!(
            report.error.as_deref().unwrap_or("").contains(says),
            "{report:#?}"
        );
        assert!(hand_off.requests.lock().unwrap().is_empty());
    }
}
