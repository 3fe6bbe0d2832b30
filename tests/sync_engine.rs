//! The sync engine with in-memory adapters: no SDK, no emulator, just the domain's ports.
//! Covers what is awkward to stage in moto: the table -> VPC cache, a deleted table, the
//! deadline, and how write errors map to the report.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ipnet::IpNet;
use sync_routes::domain::notice::Notice;
use sync_routes::domain::plan::{
    Destination, Route, RouteOrigin, RouteState, RouteTable, Target, TargetKind,
};
use sync_routes::domain::report::{NoticeStatus, Outcome, TableActionTaken};
use sync_routes::domain::request::{RequestSource, SyncRequest};
use sync_routes::domain::sync::{
    AwsError, Notifier, RetryClass, RouteTables, RouteWrite, SyncSettings, Syncer, WriteError,
    WriteMode, WriteOutcome,
};
use tokio::time::Instant;

const VPC: &str = "vpc-0000000000000000a";
const MAIN: &str = "rtb-00000000000000001";
const DEST: &str = "10.1.0.0/16";

#[derive(Default)]
struct FakeEc2 {
    tables: Mutex<Vec<RouteTable>>,
    table_reads: AtomicU32,
    vpc_reads: AtomicU32,
    writes: AtomicU32,
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    /// Every write fails with this, if set.
    write_error: Mutex<Option<WriteError>>,
}

impl FakeEc2 {
    fn with_vpc(customs: usize) -> Self {
        let eni = Target::new(TargetKind::NetworkInterface, "eni-1");
        let mut tables = vec![table(MAIN, true, vec![route(eni)])];
        for i in 0..customs {
            tables.push(table(&format!("rtb-1000000000000000{i}"), false, vec![]));
        }
        Self {
            tables: Mutex::new(tables),
            ..Self::default()
        }
    }

    /// (reads of one table, reads of a VPC's tables, writes) since the last call.
    fn counts(&self) -> (u32, u32, u32) {
        (
            self.table_reads.swap(0, Ordering::SeqCst),
            self.vpc_reads.swap(0, Ordering::SeqCst),
            self.writes.swap(0, Ordering::SeqCst),
        )
    }
}

/// Implemented on a reference, so a test keeps the fake to inspect and change it.
impl RouteTables for &FakeEc2 {
    async fn table(&self, id: &str, _: Instant) -> Result<Option<RouteTable>, AwsError> {
        self.table_reads.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .tables
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.id == id)
            .cloned())
    }

    async fn vpc_tables(&self, vpc: &str, _: Instant) -> Result<Vec<RouteTable>, AwsError> {
        self.vpc_reads.fetch_add(1, Ordering::SeqCst);
        let tables = self.tables.lock().unwrap();
        Ok(tables.iter().filter(|t| t.vpc_id == vpc).cloned().collect())
    }

    async fn write_route(
        &self,
        w: &RouteWrite,
        deadline: Instant,
    ) -> Result<WriteOutcome, WriteError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let scripted = self.write_error.lock().unwrap().clone();
        if let Some(error) = scripted {
            if error == WriteError::Aws(throttled()) {
                // Like the retry loop: keep trying until the deadline, then report.
                tokio::time::sleep_until(deadline).await;
            }
            return Err(error);
        }
        if w.dry_run {
            return Ok(WriteOutcome::DryRunPassed);
        }
        let mut tables = self.tables.lock().unwrap();
        let table = tables.iter_mut().find(|t| t.id == w.table_id).unwrap();
        let existing = table
            .routes
            .iter()
            .position(|r| r.destination == Destination::Cidr(w.destination));
        match (w.mode, existing) {
            (WriteMode::Create, Some(_)) => return Err(WriteError::AlreadyExists),
            (WriteMode::Replace, None) => return Err(WriteError::NotFound),
            (_, Some(i)) => table.routes[i].target = w.target.clone(),
            (_, None) => table.routes.push(route(w.target.clone())),
        }
        Ok(WriteOutcome::Written)
    }
}

fn throttled() -> AwsError {
    AwsError {
        operation: "CreateRoute",
        code: Some("RequestLimitExceeded".into()),
        message: "Request limit exceeded.".into(),
        retry: RetryClass::Throttled,
    }
}

#[derive(Default)]
struct FakeSns {
    sent: Mutex<Vec<Notice>>,
}

impl Notifier for FakeSns {
    async fn publish(&self, notice: &Notice) -> Result<(), String> {
        self.sent.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

fn route(target: Target) -> Route {
    Route {
        destination: Destination::Cidr(DEST.parse().unwrap()),
        target,
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    }
}

fn table(id: &str, is_main: bool, routes: Vec<Route>) -> RouteTable {
    RouteTable {
        id: id.into(),
        vpc_id: VPC.into(),
        is_main,
        routes,
    }
}

fn event(table: &str) -> SyncRequest {
    SyncRequest {
        route_table_id: table.into(),
        vpc_id: None,
        destination: DEST.parse::<IpNet>().unwrap(),
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name: "CreateRoute".into(),
            event_id: None,
            caller: None,
        },
    }
}

fn later(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

#[tokio::test]
async fn reads_once_when_warm_and_forgets_a_deleted_table() {
    let ec2 = FakeEc2::with_vpc(2);
    let syncer = Syncer::new(&ec2, Some(FakeSns::default()), SyncSettings::default());

    let cold = syncer.sync(&event(MAIN), later(5)).await;
    assert_eq!(cold.outcome, Outcome::Synced);
    assert_eq!(ec2.counts(), (1, 1, 2), "cold: the table, then its VPC");
    let warm = syncer.sync(&event(MAIN), later(5)).await;
    assert_eq!(warm.outcome, Outcome::Unchanged);
    assert_eq!(ec2.counts(), (0, 1, 0), "warm: the VPC's tables only");

    // The table is deleted while the process stays warm: refused, and forgotten.
    ec2.tables.lock().unwrap().retain(|t| t.id != MAIN);
    let gone = syncer.sync(&event(MAIN), later(5)).await;
    assert_eq!(gone.reason.as_deref(), Some("unknown-table"));
    assert_eq!(ec2.counts(), (0, 1, 0));
    let again = syncer.sync(&event(MAIN), later(5)).await;
    assert_eq!(again.reason.as_deref(), Some("unknown-table"));
    assert_eq!(
        ec2.counts(),
        (1, 0, 0),
        "the cache no longer claims a VPC for it"
    );
}

#[tokio::test]
async fn a_table_that_became_main_is_synced_from() {
    // Main-ness is never cached: ReplaceRouteTableAssociation can move it at any time.
    let ec2 = FakeEc2::with_vpc(2);
    let syncer = Syncer::new(&ec2, None::<FakeSns>, SyncSettings::default());
    let custom = "rtb-10000000000000000";
    assert_eq!(
        syncer
            .sync(&event(custom), later(5))
            .await
            .reason
            .as_deref(),
        Some("not-main-table")
    );
    {
        let mut tables = ec2.tables.lock().unwrap();
        for t in tables.iter_mut() {
            t.is_main = t.id == custom;
            if t.is_main {
                t.routes = vec![route(Target::new(TargetKind::NetworkInterface, "eni-2"))];
            }
        }
    }
    let report = syncer.sync(&event(custom), later(5)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.main_route_table_id.as_deref(), Some(custom));
}

#[tokio::test]
async fn writes_that_stay_throttled_fail_by_the_deadline_and_the_report_says_so() {
    let ec2 = FakeEc2::with_vpc(3);
    *ec2.write_error.lock().unwrap() = Some(WriteError::Aws(throttled()));
    let syncer = Syncer::new(&ec2, Some(FakeSns::default()), SyncSettings::default());
    let started = Instant::now();

    let report = syncer
        .sync(&event(MAIN), Instant::now() + Duration::from_millis(300))
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
    let ec2 = FakeEc2::with_vpc(2);
    let syncer = Syncer::new(&ec2, Some(FakeSns::default()), SyncSettings::default());
    let mut request = event(MAIN);
    request.dry_run = true;

    let report = syncer.sync(&request, later(5)).await;

    assert_eq!(report.outcome, Outcome::DryRun);
    assert_eq!(
        report.message,
        "dry run, 10.1.0.0/16 -> eni-1: 2 of 2 custom tables would change"
    );
    assert!(report
        .tables
        .iter()
        .all(|t| t.action == TableActionTaken::WouldCreate));
    assert_eq!(report.notice, NoticeStatus::NotNeeded);
    assert_eq!(ec2.counts().2, 2, "the writes went out with DryRun");
    assert!(ec2
        .tables
        .lock()
        .unwrap()
        .iter()
        .filter(|t| !t.is_main)
        .all(|t| t.routes.is_empty()));
}

#[tokio::test]
async fn writes_are_bounded_by_max_concurrent_writes_and_all_land() {
    let ec2 = FakeEc2::with_vpc(40);
    let settings = SyncSettings {
        max_concurrent_writes: 3,
        ..SyncSettings::default()
    };
    let syncer = Syncer::new(&ec2, None::<FakeSns>, settings);
    let report = syncer.sync(&event(MAIN), later(5)).await;
    assert_eq!(report.calls.route_writes, 40);
    assert_eq!(ec2.max_in_flight.load(Ordering::SeqCst), 3);
    assert!(report
        .tables
        .iter()
        .all(|t| t.action == TableActionTaken::Created));
    let ids: Vec<_> = report
        .tables
        .iter()
        .map(|t| t.route_table_id.clone())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "the report lists tables in id order");
}
