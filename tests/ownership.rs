//! Deletes only what sync-routes wrote (issue 16): the pure rules of `domain::ownership`
//! (a route sync-routes did not write stays, a re-pointed copy stays, the budget holds every
//! delete back, adopt records exactly the equal routes), and the engine with an in-memory
//! ledger (what it records, what it consults, and what it does when the ledger is down).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sync_routes::adapters::memory::{MemoryEc2, MemoryLedger, MemoryNotifier};
use sync_routes::domain::ownership::{self, LedgerEntry, Owned};
use sync_routes::domain::plan::{
    self, Action, Destination, DestinationFilter, Policy, Route, RouteOrigin, RouteState,
    RouteTable, Scope, SkipReason, Target, TargetKind, VpcPlan,
};
use sync_routes::domain::report::{Outcome, Report, TableActionTaken};
use sync_routes::domain::request::{MainRoute, RequestSource, Subject, SyncRequest};
use sync_routes::domain::sync::{SyncSettings, Syncer};
use tokio::time::Instant;

const VPC: &str = "vpc-0000000000000000a";
const MAIN: &str = "rtb-00000000000000001";
const DEST: &str = "10.1.0.0/16";
const OWN: &str = "10.50.0.0/16";

fn eni(id: &str) -> Target {
    Target::new(TargetKind::NetworkInterface, id)
}

fn dest(cidr: &str) -> Destination {
    Destination::Cidr(cidr.parse().unwrap())
}

fn route(cidr: &str, target: Target) -> Route {
    Route {
        destination: dest(cidr),
        target,
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    }
}

fn custom(i: usize) -> String {
    format!("rtb-1{i:016x}")
}

fn deletes_on() -> Policy {
    Policy {
        destinations: Some(vec![DestinationFilter::Within(
            "10.0.0.0/8".parse().unwrap(),
        )]),
        propagate_deletes: true,
        ..Policy::default()
    }
}

/// A main table without `DEST` (deleted) and `customs` tables that each still have a copy
/// to eni-1.
fn after_a_delete(customs: usize) -> Vec<RouteTable> {
    let mut tables = vec![RouteTable::new(MAIN, VPC, true, vec![])];
    for i in 0..customs {
        tables.push(RouteTable::new(
            &custom(i),
            VPC,
            false,
            vec![route(DEST, eni("eni-1"))],
        ));
    }
    tables
}

fn owned(entries: &[(String, &str, &str)]) -> Owned {
    entries
        .iter()
        .map(|(table, cidr, hop)| ((table.clone(), dest(cidr)), (*hop).to_owned()))
        .collect()
}

fn entry(table: &str, cidr: &str, hop: &str) -> LedgerEntry {
    LedgerEntry {
        vpc_id: VPC.into(),
        table_id: table.into(),
        destination: dest(cidr),
        next_hop: eni(hop),
        written_at: SystemTime::now(),
        request: "test".into(),
    }
}

fn actions(plan: &VpcPlan) -> Vec<(String, String, Action)> {
    plan.routes
        .iter()
        .flat_map(|r| {
            r.actions.iter().map(move |a| {
                (
                    a.table_id.clone(),
                    r.destination.to_string(),
                    a.action.clone(),
                )
            })
        })
        .collect()
}

fn code(action: &Action) -> &'static str {
    match action {
        Action::Skip(skip) => skip.code(),
        Action::Delete { .. } => "delete",
        Action::Create => "create",
        Action::Replace { .. } => "replace",
        Action::Unchanged => "unchanged",
    }
}

// --- The pure rules ---------------------------------------------------------------------

#[test]
fn a_delete_needs_the_ledger_to_own_the_route_at_its_current_next_hop() {
    let tables = after_a_delete(3);
    let mut plans = vec![plan::reconcile(&tables, &Scope::vpc(), &deletes_on()).unwrap()];
    assert_eq!(ownership::delete_candidates(&plans).len(), 3);
    // Table 0: written by sync-routes to eni-1. Table 1: written to eni-9, re-pointed by hand
    // since. Table 2: never written by sync-routes.
    let ledger = owned(&[(custom(0), DEST, "eni-1"), (custom(1), DEST, "eni-9")]);
    assert_eq!(ownership::require_ownership(&mut plans, &ledger), 1);
    let codes: Vec<_> = actions(&plans[0])
        .iter()
        .map(|(t, _, a)| (t.clone(), code(a)))
        .collect();
    assert_eq!(
        codes,
        [
            (custom(0), "delete"),
            (custom(1), "not-written-by-sync-routes"),
            (custom(2), "not-written-by-sync-routes"),
        ]
    );
    let Action::Skip(skip) = &plans[0].routes[0].actions[2].action else {
        unreachable!()
    };
    assert!(
        skip.to_string().contains("was not written by sync-routes"),
        "{skip}"
    );
}

/// A sweep sees a DMZ table's own route (the main table never had it) as a delete
/// candidate; without ownership it stays.
#[test]
fn a_tables_own_route_is_never_deleted() {
    let mut tables = after_a_delete(1);
    tables[1].routes = vec![route(OWN, eni("eni-fw"))];
    let mut plans = vec![plan::reconcile(&tables, &Scope::vpc(), &deletes_on()).unwrap()];
    assert_eq!(ownership::require_ownership(&mut plans, &Owned::new()), 0);
    assert_eq!(
        code(&plans[0].routes[0].actions[0].action),
        "not-written-by-sync-routes"
    );
}

#[test]
fn without_the_ledger_no_delete_is_made() {
    let mut plans =
        vec![plan::reconcile(&after_a_delete(2), &Scope::vpc(), &deletes_on()).unwrap()];
    assert_eq!(ownership::without_ledger(&mut plans), 2);
    assert!(ownership::delete_candidates(&plans).is_empty());
    assert!(actions(&plans[0])
        .iter()
        .all(|(_, _, a)| code(a) == "ledger-unavailable"));
}

#[test]
fn more_deletes_than_the_budget_make_none_and_list_them() {
    let mut plans =
        vec![plan::reconcile(&after_a_delete(12), &Scope::vpc(), &deletes_on()).unwrap()];
    // At the budget: every delete stays.
    let mut at_budget = plans.clone();
    assert_eq!(ownership::enforce_delete_budget(&mut at_budget, 12), None);
    assert_eq!(ownership::delete_candidates(&at_budget).len(), 12);

    let held = ownership::enforce_delete_budget(&mut plans, 10).expect("over the budget");
    assert_eq!(held.len(), 12);
    assert_eq!(held[0].table_id, custom(0));
    assert_eq!(held[0].next_hop, eni("eni-1"));
    assert!(ownership::delete_candidates(&plans).is_empty());
    let Action::Skip(skip @ SkipReason::DeleteBudgetExceeded { .. }) =
        &plans[0].routes[0].actions[0].action
    else {
        panic!("{:?}", plans[0].routes[0].actions[0].action)
    };
    assert_eq!(skip.code(), "delete-budget-exceeded");
    assert!(
        skip.to_string().contains(r#""max-deletes": 12"#),
        "the way to mean it: {skip}"
    );
}

/// Adopt: a custom route equal to the main table's (same destination, same next hop) is
/// exactly what sync-routes would have written; nothing else is recorded.
#[test]
fn adopt_takes_exactly_the_routes_equal_to_the_main_tables() {
    let tables = vec![
        RouteTable::new(MAIN, VPC, true, vec![route(DEST, eni("eni-1"))]),
        RouteTable::new(&custom(0), VPC, false, vec![route(DEST, eni("eni-1"))]),
        RouteTable::new(&custom(1), VPC, false, vec![route(DEST, eni("eni-2"))]),
        RouteTable::new(&custom(2), VPC, false, vec![route(OWN, eni("eni-fw"))]),
        RouteTable::new(&custom(3), VPC, false, vec![]),
    ];
    let plans = vec![plan::reconcile(&tables, &Scope::vpc(), &deletes_on()).unwrap()];
    assert_eq!(
        ownership::adoptable(&plans),
        [(VPC.to_owned(), custom(0), dest(DEST), eni("eni-1"))]
    );
}

/// A delete re-decided after EC2 said the table changed goes ahead only while the table
/// still has the next hop whose ownership was checked.
#[test]
fn a_redecided_delete_keeps_to_the_checked_next_hop() {
    let checked = Action::Delete {
        before: eni("eni-1"),
    };
    let same = Action::Delete {
        before: eni("eni-1"),
    };
    assert_eq!(
        ownership::redecided_delete(same.clone(), &checked, &dest(DEST)),
        same
    );
    let repointed = Action::Delete {
        before: eni("eni-2"),
    };
    assert_eq!(
        code(&ownership::redecided_delete(
            repointed,
            &checked,
            &dest(DEST)
        )),
        "not-written-by-sync-routes"
    );
    assert_eq!(
        ownership::redecided_delete(Action::Unchanged, &checked, &dest(DEST)),
        Action::Unchanged
    );
}

// --- The engine with an in-memory ledger -------------------------------------------------

fn settings() -> SyncSettings {
    SyncSettings {
        policy: deletes_on(),
        consistency_pause: Duration::from_millis(5),
        ..SyncSettings::default()
    }
}

fn later(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn cloudtrail(event_name: &str, destination: &str, expected: Option<MainRoute>) -> SyncRequest {
    SyncRequest {
        subject: Subject::Route {
            table_id: MAIN.into(),
            vpc_id: Some(VPC.into()),
            destination: dest(destination),
            expected,
        },
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name: event_name.into(),
            event_id: Some("e-1".into()),
            caller: None,
            event_time: None,
            waits: 0,
        },
    }
}

fn routes_of(ec2: &MemoryEc2, table: &str) -> Vec<(String, String)> {
    ec2.snapshot()
        .iter()
        .find(|t| t.id == table)
        .unwrap()
        .routes
        .iter()
        .map(|r| (r.destination.to_string(), r.target.id.clone()))
        .collect()
}

fn table_codes(report: &Report) -> Vec<(String, TableActionTaken, Option<String>)> {
    report
        .tables
        .iter()
        .map(|t| (t.route_table_id.clone(), t.action, t.code.clone()))
        .collect()
}

/// A copy sync-routes writes is recorded with its next hop and the event that caused it;
/// the DeleteRoute that follows deletes it and forgets it. One ledger read, one write each.
#[tokio::test]
async fn what_it_writes_it_records_and_what_it_deletes_it_forgets() {
    let mut tables = after_a_delete(2);
    tables[0].routes = vec![route(DEST, eni("eni-1"))];
    tables[1].routes.clear();
    tables[2].routes.clear();
    let ec2 = MemoryEc2::new(tables);
    let ledger = Arc::new(MemoryLedger::default());
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, settings()).with_ledger(ledger.clone());

    let created = syncer
        .run(&cloudtrail("CreateRoute", DEST, None), later(5))
        .await;
    assert_eq!(created.outcome, Outcome::Synced, "{created:#?}");
    let recorded = ledger
        .lock()
        .get(&(custom(0), dest(DEST)))
        .cloned()
        .unwrap();
    assert_eq!(recorded.next_hop, eni("eni-1"));
    assert_eq!(recorded.request, "CreateRoute event e-1");
    assert_eq!(ledger.lock().len(), 2);
    // Nothing to delete: the ledger was not read; the two writes were recorded in one call.
    let calls = created.ledger.unwrap();
    assert_eq!((calls.reads, calls.writes, calls.write_failures), (0, 1, 0));

    ec2.change(|tables| tables[0].routes.clear());
    let deleted = syncer
        .run(
            &cloudtrail("DeleteRoute", DEST, Some(MainRoute::Gone)),
            later(5),
        )
        .await;
    assert_eq!(deleted.outcome, Outcome::Synced, "{deleted:#?}");
    assert_eq!(deleted.counts.deleted, 2);
    assert!(routes_of(&ec2, &custom(0)).is_empty());
    assert!(
        ledger.lock().is_empty(),
        "a deleted route leaves the ledger"
    );
    let calls = deleted.ledger.unwrap();
    assert_eq!((calls.reads, calls.writes), (1, 1));
}

#[tokio::test]
async fn a_dry_run_records_nothing() {
    let mut tables = after_a_delete(1);
    tables[0].routes = vec![route(DEST, eni("eni-1"))];
    tables[1].routes.clear();
    let ec2 = MemoryEc2::new(tables);
    let ledger = Arc::new(MemoryLedger::default());
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, settings()).with_ledger(ledger.clone());
    let mut request = cloudtrail("CreateRoute", DEST, None);
    request.dry_run = true;
    let report = syncer.run(&request, later(5)).await;
    assert_eq!(report.outcome, Outcome::DryRun, "{report:#?}");
    assert!(ledger.lock().is_empty());
    assert_eq!(ledger.writes.load(Ordering::Relaxed), 0);
}

/// The ledger is down: a DeleteRoute event deletes nothing and fails (so it is retried, with
/// a FAILED notice); a sweep skips its deletes with a warning and does everything else; a
/// write whose record fails stays unowned and counted.
#[tokio::test]
async fn with_the_ledger_down_no_delete_is_made_and_the_rest_goes_on() {
    let mut tables = after_a_delete(2);
    // A route the main table still has, missing from table 1: the sweep's other work.
    tables[0].routes = vec![route("10.2.0.0/16", eni("eni-2"))];
    let ec2 = MemoryEc2::new(tables);
    let ledger = Arc::new(MemoryLedger::owning([
        entry(&custom(0), DEST, "eni-1"),
        entry(&custom(1), DEST, "eni-1"),
    ]));
    ledger.fail_reads.store(true, Ordering::Relaxed);
    ledger.fail_writes.store(true, Ordering::Relaxed);
    let notices = MemoryNotifier::default();
    let syncer = Syncer::new(&ec2, Some(&notices), settings()).with_ledger(ledger.clone());

    let event = syncer
        .run(
            &cloudtrail("DeleteRoute", DEST, Some(MainRoute::Gone)),
            later(5),
        )
        .await;
    assert_eq!(event.outcome, Outcome::Failed, "{event:#?}");
    assert!(event.is_failure());
    assert_eq!(event.reason.as_deref(), Some("ledger-unavailable"));
    assert_eq!(ec2.take_counts().2, 0, "no write at all");
    assert_eq!(
        routes_of(&ec2, &custom(0)),
        [(DEST.to_owned(), "eni-1".to_owned())]
    );
    assert!(event
        .tables
        .iter()
        .all(|t| t.code.as_deref() == Some("ledger-unavailable")));
    assert!(notices.sent.lock().unwrap()[0].subject.contains("FAILED"));

    let sweep = SyncRequest {
        subject: Subject::reconcile(None),
        dry_run: false,
        source: RequestSource::Schedule,
    };
    let report = syncer.run(&sweep, later(5)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.created, 2, "the other route is copied");
    assert_eq!(report.counts.deleted, 0);
    assert_eq!(
        routes_of(&ec2, &custom(1)),
        [
            (DEST.to_owned(), "eni-1".to_owned()),
            ("10.2.0.0/16".to_owned(), "eni-2".to_owned())
        ]
    );
    let calls = report.ledger.unwrap();
    assert!(calls.unavailable);
    assert_eq!(calls.write_failures, 2, "both copies stay unowned");
    assert_eq!(ledger.next_hop(&custom(0), &dest("10.2.0.0/16")), None);
}

/// 12 owned copies of a deleted route: more than the budget of 10, so none goes, and the
/// report and the notice list them; the same reconcile with `max-deletes` deletes them all.
#[tokio::test]
async fn a_budget_overrun_deletes_nothing_until_a_person_means_it() {
    let ec2 = MemoryEc2::new(after_a_delete(12));
    let ledger = Arc::new(MemoryLedger::owning(
        (0..12).map(|i| entry(&custom(i), DEST, "eni-1")),
    ));
    let notices = MemoryNotifier::default();
    let syncer = Syncer::new(&ec2, Some(&notices), settings()).with_ledger(ledger.clone());
    let report = syncer
        .run(
            &cloudtrail("DeleteRoute", DEST, Some(MainRoute::Gone)),
            later(5),
        )
        .await;
    assert!(!report.is_failure(), "{report:#?}");
    assert_eq!(report.reason.as_deref(), Some("delete-budget-exceeded"));
    assert_eq!(ec2.take_counts().2, 0);
    let exceeded = report.delete_budget_exceeded.as_ref().unwrap();
    assert_eq!((exceeded.max_deletes, exceeded.planned), (10, 12));
    assert_eq!(exceeded.would_delete.len(), 12);
    assert_eq!(exceeded.would_delete[3].route_table_id, custom(3));
    assert!(table_codes(&report)
        .iter()
        .all(|(_, a, c)| *a == TableActionTaken::Skipped
            && c.as_deref() == Some("delete-budget-exceeded")));
    assert!(
        report.message.contains("12 deletes held back"),
        "{}",
        report.message
    );
    {
        let sent = notices.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert!(
            sent[0].subject.contains("12 deletes held back"),
            "{}",
            sent[0].subject
        );
        assert!(sent[0].body.contains(&custom(11)), "{}", sent[0].body);
        assert!(sent[0]
            .attributes
            .contains(&("status", "delete-budget-exceeded".to_owned())));
    }
    let metrics = sync_routes::adapters::emf::metrics_line(&report, None, SystemTime::now(), "f");
    assert_eq!(metrics["DeleteBudgetExceeded"], 1);

    let meant = SyncRequest {
        subject: Subject::Reconcile {
            vpc_id: Some(VPC.into()),
            max_deletes: Some(12),
        },
        dry_run: false,
        source: RequestSource::Manual,
    };
    let report = syncer.run(&meant, later(5)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.deleted, 12);
    assert!(ledger.lock().is_empty());
}

/// Adopt through the engine: a dry run says what it would record and records nothing; the
/// run records exactly the equal routes and writes no route. Without a ledger it is refused.
#[tokio::test]
async fn adopt_records_the_equal_routes_and_writes_none() {
    let tables = vec![
        RouteTable::new(MAIN, VPC, true, vec![route(DEST, eni("eni-1"))]),
        RouteTable::new(&custom(0), VPC, false, vec![route(DEST, eni("eni-1"))]),
        RouteTable::new(&custom(1), VPC, false, vec![route(DEST, eni("eni-2"))]),
        RouteTable::new(&custom(2), VPC, false, vec![route(OWN, eni("eni-fw"))]),
    ];
    let ec2 = MemoryEc2::new(tables);
    let ledger = Arc::new(MemoryLedger::default());
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, settings()).with_ledger(ledger.clone());
    let adopt = |dry_run| SyncRequest {
        subject: Subject::Adopt {
            vpc_id: Some(VPC.into()),
        },
        dry_run,
        source: RequestSource::Manual,
    };
    let dry = syncer.run(&adopt(true), later(5)).await;
    assert_eq!(dry.outcome, Outcome::DryRun, "{dry:#?}");
    assert_eq!(
        table_codes(&dry),
        [(custom(0), TableActionTaken::WouldAdopt, None)]
    );
    assert!(ledger.lock().is_empty());

    let done = syncer.run(&adopt(false), later(5)).await;
    assert_eq!(done.outcome, Outcome::Synced, "{done:#?}");
    assert_eq!(done.counts.adopted, 1);
    assert_eq!(ec2.take_counts().2, 0, "adopt writes no route");
    assert_eq!(ledger.lock().len(), 1);
    let adopted = ledger
        .lock()
        .get(&(custom(0), dest(DEST)))
        .cloned()
        .unwrap();
    assert_eq!(
        (adopted.next_hop, adopted.request.as_str()),
        (eni("eni-1"), "adopt")
    );

    let without = Syncer::new(&ec2, None::<MemoryNotifier>, settings());
    let refused = without.run(&adopt(false), later(5)).await;
    assert_eq!(
        (refused.outcome, refused.reason.as_deref()),
        (Outcome::Refused, Some("no-ledger"))
    );
    let (table_reads, vpc_reads, _) = ec2.take_counts();
    assert_eq!(table_reads + vpc_reads, 0, "refused before reading");
}

/// Three DeleteRoute events of one failback, coalesced by the work queue into one request: 12
/// deletes, but each event is a request of its own to the person who made it, with its own
/// budget, so all go, as they would one by one. One event over the budget is held alone.
#[tokio::test]
async fn coalesced_delete_events_each_have_the_budget() {
    let gone = ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"];
    let mut tables = vec![RouteTable::new(MAIN, VPC, true, vec![])];
    for i in 0..4 {
        tables.push(RouteTable::new(
            &custom(i),
            VPC,
            false,
            gone.iter().map(|d| route(d, eni("eni-1"))).collect(),
        ));
    }
    let ec2 = MemoryEc2::new(tables);
    let ledger = Arc::new(MemoryLedger::owning(
        (0..4).flat_map(|i| gone.map(|d| entry(&custom(i), d, "eni-1"))),
    ));
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, settings()).with_ledger(ledger.clone());
    let batch = |destinations: &[&str]| SyncRequest {
        subject: Subject::Routes {
            table_id: MAIN.into(),
            vpc_id: Some(VPC.into()),
            routes: destinations
                .iter()
                .map(|d| sync_routes::domain::request::NamedRoute {
                    destination: dest(d),
                    expected: Some(MainRoute::Gone),
                    source: cloudtrail("DeleteRoute", d, Some(MainRoute::Gone)).source,
                })
                .collect(),
        },
        dry_run: false,
        source: RequestSource::Batch {
            events: destinations.len() as u32,
            event_time: None,
        },
    };
    let report = syncer.run(&batch(&gone), later(5)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.deleted, 12);
    assert!(report.delete_budget_exceeded.is_none());
    assert!(ledger.lock().is_empty());

    // The pure rule: a destination over the budget is held back alone.
    let mut tables = after_a_delete(12);
    tables[1].routes.push(route("10.2.0.0/16", eni("eni-1")));
    let scope = Scope {
        destinations: plan::Destinations::Some([dest(DEST), dest("10.2.0.0/16")].into()),
        tables: plan::Tables::AllCustom,
    };
    let mut plans = vec![plan::reconcile(&tables, &scope, &deletes_on()).unwrap()];
    let held = ownership::enforce_delete_budget_per_destination(&mut plans, 10).unwrap();
    assert_eq!(held.len(), 12);
    assert!(held.iter().all(|h| h.destination == dest(DEST)));
    assert_eq!(
        ownership::delete_candidates(&plans),
        [(custom(0), dest("10.2.0.0/16"))]
    );
}

/// A sweep that writes (a new route) and holds back 12 deletes: the check after writing plans
/// the held deletes again, and they are still held and listed once.
#[tokio::test]
async fn held_back_deletes_are_listed_once_after_the_check() {
    let mut tables = after_a_delete(12);
    tables[0].routes = vec![route("10.2.0.0/16", eni("eni-2"))];
    let ec2 = MemoryEc2::new(tables);
    let ledger = Arc::new(MemoryLedger::owning(
        (0..12).map(|i| entry(&custom(i), DEST, "eni-1")),
    ));
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, settings()).with_ledger(ledger);
    let sweep = SyncRequest {
        subject: Subject::reconcile(None),
        dry_run: false,
        source: RequestSource::Schedule,
    };
    let report = syncer.run(&sweep, later(5)).await;
    assert_eq!(report.counts.created, 12, "{report:#?}");
    assert_eq!(report.counts.deleted, 0);
    let exceeded = report.delete_budget_exceeded.as_ref().unwrap();
    assert_eq!((exceeded.planned, exceeded.would_delete.len()), (12, 12));
    assert!(
        report.calls.describe_route_tables >= 2,
        "the check read ran"
    );
}
