//! The reconcile engine: read the tables in scope, plan in pure code, write concurrently,
//! report, notify. Every trigger comes through `Syncer::run`; AWS sits behind two small
//! ports (`RouteTables`, `Notifier`) so that this file is tested with in-memory fakes as
//! well as against moto.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::domain::notice::{self, Notice};
use crate::domain::plan::{
    self, Action, Destination, Destinations, Policy, Refusal, RouteTable, Scope, Target, VpcPlan,
};
use crate::domain::report::{NoticeStatus, Outcome, Report, TableActionTaken, TableReport};
use crate::domain::request::{MainRoute, RequestSource, Subject, SyncRequest};

/// How a failed AWS call may be retried. Decided by the adapter, acted on by `retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// `RequestLimitExceeded` and friends: wait for the token bucket to refill.
    Throttled,
    /// 5xx, timeouts, dropped connections: likely to work a moment later.
    Transient,
    /// Will fail the same way again (bad parameters, no permission ...).
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct AwsError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
    pub retry: RetryClass,
}

/// A route write that did not happen. The first two are EC2 telling us the table changed
/// under us since we read it; the engine re-decides that table rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("the route already exists")]
    AlreadyExists,
    #[error("the route does not exist")]
    NotFound,
    #[error(transparent)]
    Aws(#[from] AwsError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Create,
    Replace,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWrite {
    pub table_id: String,
    pub destination: Destination,
    /// The next hop to write; `None` for a delete.
    pub target: Option<Target>,
    pub mode: WriteMode,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// EC2 answered `DryRunOperation`: the call would have succeeded.
    DryRunPassed,
}

/// The EC2 port. `deadline` bounds retries: past it an adapter gives up and reports.
pub trait RouteTables: Sync {
    /// One table by id, or `None` if EC2 does not know it.
    fn table(
        &self,
        table_id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<Option<RouteTable>, AwsError>> + Send;
    /// Every route table of these VPCs, in one call (following pages if EC2 pages).
    fn vpc_tables(
        &self,
        vpc_ids: &[String],
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RouteTable>, AwsError>> + Send;
    /// Every route table in the region, in one paged call.
    fn all_tables(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RouteTable>, AwsError>> + Send;
    fn write_route(
        &self,
        write: &RouteWrite,
        deadline: Instant,
    ) -> impl Future<Output = Result<WriteOutcome, WriteError>> + Send;
    /// Calls throttled so far by this process (each was retried), for the metrics.
    fn throttled_calls(&self) -> u32 {
        0
    }
}

/// The notice port (SNS in production).
pub trait Notifier: Sync {
    fn publish(&self, notice: &Notice) -> impl Future<Output = Result<(), String>> + Send;
}

/// The hand-off port: starts a new invocation that continues a reconcile (Lambda's
/// asynchronous Invoke of this same function, in production). Boxed, so the engine can hold
/// one or none without another type parameter.
pub trait HandOff: Send + Sync {
    fn hand_off<'a>(
        &'a self,
        request: &'a SyncRequest,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// A reconcile that still has work after this many hand-offs (an hour of writes at EC2's
/// default pace with a 60 s timeout) stops and fails, so a loop cannot run for ever.
pub const MAX_HAND_OFFS: u32 = 60;

/// Settings of the engine, parsed once from configuration.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub policy: Policy,
    /// Writes in flight at once for one request. Enough for every table of a typical VPC
    /// at once; bounded so a VPC with hundreds of tables does not empty EC2's bucket.
    pub max_concurrent_writes: usize,
    /// How fresh an event must be for a disagreeing read to be read again, and the pause
    /// before that second read (EC2's API is eventually consistent).
    pub fresh_event: Duration,
    pub consistency_pause: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            max_concurrent_writes: 16,
            fresh_event: Duration::from_secs(60),
            consistency_pause: Duration::from_secs(1),
        }
    }
}

/// A table never moves to another VPC, so table -> VPC is cached for the life of the
/// process: a warm function reads the VPC's tables exactly once per event.
const VPC_CACHE_LIMIT: usize = 10_000;

/// The engine. Built once per process; `run` is called once per request.
pub struct Syncer<E, N> {
    ec2: E,
    notifier: Option<N>,
    hand_off: Option<Arc<dyn HandOff>>,
    /// Set to stop starting writes (`watch` on SIGINT): those in flight finish.
    stop: Arc<std::sync::atomic::AtomicBool>,
    settings: SyncSettings,
    vpc_of_table: Mutex<HashMap<String, String>>,
}

/// Why loading the tables ended the request early.
enum Stop {
    Refused(Refusal),
    Ignored { code: &'static str, message: String },
    Failed(AwsError),
}

impl From<AwsError> for Stop {
    fn from(error: AwsError) -> Self {
        Stop::Failed(error)
    }
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop::Refused(refusal)
    }
}

/// The tables to plan, grouped by VPC, and the part of each VPC to reconcile.
struct Loaded {
    vpcs: Vec<Vec<RouteTable>>,
    scope: Scope,
}

/// One write to make: a destination in one table, as planned.
#[derive(Clone, Copy)]
struct WriteJob<'a> {
    vpc_id: &'a str,
    destination: &'a Destination,
    target: Option<&'a Target>,
    table_id: &'a str,
    action: &'a Action,
}

impl<E: RouteTables, N: Notifier> Syncer<E, N> {
    pub fn new(ec2: E, notifier: Option<N>, settings: SyncSettings) -> Self {
        Self {
            ec2,
            notifier,
            hand_off: None,
            stop: Arc::default(),
            settings,
            vpc_of_table: Mutex::new(HashMap::new()),
        }
    }

    /// A flag that, once set, stops the engine from starting new writes; the ones in flight
    /// finish and the rest is reported deferred.
    pub fn stop_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.stop.clone()
    }

    /// Lets a reconcile that meets its deadline hand the rest on instead of failing.
    pub fn with_hand_off(mut self, hand_off: Arc<dyn HandOff>) -> Self {
        self.hand_off = Some(hand_off);
        self
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// Reconciles what `request` names and reports every decision.
    pub async fn run(&self, request: &SyncRequest, deadline: Instant) -> Report {
        let mut report = Report::new(Outcome::Failed, String::new());
        report.trigger = Some(request.source.name());
        report.dry_run = request.dry_run;
        match &request.subject {
            Subject::Route {
                table_id,
                vpc_id,
                destination,
                ..
            } => {
                report.route_table_id = Some(table_id.clone());
                report.vpc_id = vpc_id.clone();
                report.destination = Some(destination.to_string());
            }
            Subject::NewTable { table_id, vpc_id } => {
                report.route_table_id = Some(table_id.clone());
                report.vpc_id = Some(vpc_id.clone());
            }
            Subject::Association { table_id } => report.route_table_id = Some(table_id.clone()),
            Subject::Reconcile { vpc_id } => report.vpc_id = vpc_id.clone(),
        }
        let throttled_before = self.ec2.throttled_calls();

        let loaded = match self.load(request, deadline, &mut report).await {
            Ok(loaded) => loaded,
            Err(Stop::Refused(refusal)) => return refused(report, &refusal),
            Err(Stop::Ignored { code, message }) => return ignored(report, code, message),
            Err(Stop::Failed(error)) => {
                report.message = format!("could not read the route tables: {error}");
                report.error = Some(error.to_string());
                report.calls.throttled = self.ec2.throttled_calls() - throttled_before;
                return report;
            }
        };

        let named = match &loaded.scope.destinations {
            Destinations::One(destination) => Some(destination.clone()),
            Destinations::All => None,
        };
        let single_vpc = loaded.vpcs.len() == 1;
        let mut plans = Vec::with_capacity(loaded.vpcs.len());
        for tables in &loaded.vpcs {
            match plan::reconcile(tables, &loaded.scope, &self.settings.policy) {
                Ok(plan) => plans.push(plan),
                Err(refusal) if single_vpc => return refused(report, &refusal),
                // One odd VPC (EC2 always gives a VPC a main table) never stops a sweep.
                Err(refusal) => {
                    tracing::warn!(decision = "refused", reason = refusal.code(), summary = %refusal)
                }
            }
        }
        report.counts.vpcs = plans.len() as u32;
        if let [plan] = plans.as_slice() {
            report.vpc_id = Some(plan.vpc_id.clone());
            report.main_route_table_id = Some(plan.main_table_id.clone());
            if let (Some(route), Some(_)) = (plan.routes.first(), &named) {
                report.target = route.target.as_ref().map(ToString::to_string);
            }
        }

        self.apply(
            &plans,
            request.dry_run,
            named.as_ref(),
            deadline,
            &mut report,
        )
        .await;
        if report.counts.deferred > 0 {
            self.hand_on(request, &mut report).await;
        }
        report.calls.throttled = self.ec2.throttled_calls() - throttled_before;
        summarise(&mut report, &plans, &loaded.scope);

        if let Some(notice) = notice::notice_for(&report, request) {
            report.notice = match &self.notifier {
                None => NoticeStatus::Disabled,
                Some(notifier) => match notifier.publish(&notice).await {
                    Ok(()) => NoticeStatus::Published,
                    Err(error) => {
                        // The routes are what matter: a lost notice is logged, never undone.
                        tracing::error!(decision = "notice-failed", error = %error, subject = %notice.subject);
                        NoticeStatus::Failed
                    }
                },
            };
        }
        report
    }

    /// Some writes met the deadline: start a new invocation per VPC that re-reads it and
    /// continues. Where that cannot be done (not on Lambda, the hop limit, the hand-off call
    /// failed), the deferred writes fail the request instead, so Lambda's own retry of this
    /// event continues from the current state.
    async fn hand_on(&self, request: &SyncRequest, report: &mut Report) {
        let hops = match request.source {
            RequestSource::HandOff { hops } => hops,
            _ => 0,
        };
        let vpcs: BTreeSet<String> = report
            .tables
            .iter()
            .filter(|t| t.action == TableActionTaken::Deferred)
            .map(|t| t.vpc_id.clone())
            .collect();
        let unable = match &self.hand_off {
            None => Some("no hand-off outside Lambda".to_owned()),
            Some(_) if hops >= MAX_HAND_OFFS => {
                Some(format!("still unfinished after {MAX_HAND_OFFS} hand-offs"))
            }
            Some(hand_off) => {
                let mut unable = None;
                for vpc in vpcs {
                    let next = SyncRequest {
                        subject: continuation(&request.subject, vpc),
                        dry_run: request.dry_run,
                        source: RequestSource::HandOff { hops: hops + 1 },
                    };
                    if let Err(error) = hand_off.hand_off(&next).await {
                        unable = Some(format!("the hand-off failed: {error}"));
                        break;
                    }
                    tracing::info!(decision = "hand-off", request = ?next.subject, hops = hops + 1);
                }
                unable
            }
        };
        if let Some(why) = unable {
            for table in &mut report.tables {
                if table.action == TableActionTaken::Deferred {
                    table.action = TableActionTaken::Failed;
                    table.reason = Some(format!(
                        "{}; {why}",
                        table.reason.as_deref().unwrap_or("not written")
                    ));
                }
            }
            report.counts.failed += report.counts.deferred;
            report.counts.deferred = 0;
            report.error = Some(why);
        }
    }

    /// Reads what the request needs, as few calls as it can: one for a warm route event, a
    /// new table or one VPC; two for a cold route event (the table alone first, which also
    /// ends the echo of our own write to a custom table after one call); one paged call for
    /// a sweep.
    async fn load(
        &self,
        request: &SyncRequest,
        deadline: Instant,
        report: &mut Report,
    ) -> Result<Loaded, Stop> {
        let policy = &self.settings.policy;
        match &request.subject {
            Subject::Route {
                table_id,
                vpc_id,
                destination,
                expected,
            } => {
                if expected == &Some(MainRoute::Gone) && !policy.propagate_deletes {
                    return Err(Stop::Ignored {
                        code: "deletes-off",
                        message: format!(
                            "a route for {destination} was deleted from {table_id}; deletions are copied only with SYNC_PROPAGATE_DELETES=true"
                        ),
                    });
                }
                let vpc = match vpc_id.clone().or_else(|| self.cached_vpc(table_id)) {
                    Some(vpc) => vpc,
                    None => self.main_table_vpc(table_id, deadline, report).await?,
                };
                self.check_vpc(&vpc)?;
                let mut tables = self.read_vpc(&vpc, deadline, report).await?;
                let Some(table) = tables.iter().find(|t| t.id == *table_id) else {
                    self.forget(table_id);
                    return Err(Stop::Refused(if vpc_id.is_some() {
                        Refusal::TableNotInVpc {
                            table: table_id.clone(),
                            vpc,
                        }
                    } else {
                        Refusal::UnknownTable {
                            table: table_id.clone(),
                        }
                    }));
                };
                // Main-ness is never cached: ReplaceRouteTableAssociation moves it any time.
                if !table.is_main {
                    return Err(Refusal::NotMainTable {
                        table: table_id.clone(),
                        vpc,
                        main: tables.iter().find(|t| t.is_main).map(|t| t.id.clone()),
                    }
                    .into());
                }
                if let Some(expected) = expected {
                    if self.read_lags(&tables, destination, expected, &request.source) {
                        tracing::info!(decision = "read-again", table = %table_id, destination = %destination, "the main table does not show the event's change yet");
                        let pause = self.settings.consistency_pause;
                        tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
                        tables = self.read_vpc(&vpc, deadline, report).await?;
                    }
                }
                Ok(Loaded {
                    vpcs: vec![tables],
                    scope: Scope::destination(destination.clone()),
                })
            }
            Subject::NewTable { table_id, vpc_id } => {
                self.check_vpc(vpc_id)?;
                let tables = self.read_vpc(vpc_id, deadline, report).await?;
                if !tables.iter().any(|t| t.id == *table_id) {
                    return Err(Refusal::UnknownTable {
                        table: table_id.clone(),
                    }
                    .into());
                }
                Ok(Loaded {
                    vpcs: vec![tables],
                    scope: Scope::table(table_id),
                })
            }
            Subject::Association { table_id } => {
                let vpc = match self.cached_vpc(table_id) {
                    Some(vpc) => vpc,
                    None => {
                        report.calls.describe_route_tables += 1;
                        let table = self.ec2.table(table_id, deadline).await?.ok_or_else(|| {
                            Refusal::UnknownTable {
                                table: table_id.clone(),
                            }
                        })?;
                        self.remember(&table.id, &table.vpc_id);
                        report.vpc_id = Some(table.vpc_id.clone());
                        self.check_vpc(&table.vpc_id)?;
                        if !table.is_main {
                            return Err(subnet_association(&table));
                        }
                        table.vpc_id
                    }
                };
                self.check_vpc(&vpc)?;
                let tables = self.read_vpc(&vpc, deadline, report).await?;
                match tables.iter().find(|t| t.id == *table_id) {
                    Some(table) if table.is_main => Ok(Loaded {
                        vpcs: vec![tables],
                        scope: Scope::vpc(),
                    }),
                    Some(table) => Err(subnet_association(table)),
                    None => Err(Refusal::UnknownTable {
                        table: table_id.clone(),
                    }
                    .into()),
                }
            }
            Subject::Reconcile { vpc_id: Some(vpc) } => {
                self.check_vpc(vpc)?;
                let tables = self.read_vpc(vpc, deadline, report).await?;
                if tables.is_empty() {
                    return Err(Refusal::UnknownVpc { vpc: vpc.clone() }.into());
                }
                Ok(Loaded {
                    vpcs: vec![tables],
                    scope: Scope::vpc(),
                })
            }
            Subject::Reconcile { vpc_id: None } => {
                report.calls.describe_route_tables += 1;
                let tables = match &policy.vpc_ids {
                    Some(ids) => {
                        let ids: Vec<String> = ids.iter().cloned().collect();
                        self.ec2.vpc_tables(&ids, deadline).await?
                    }
                    None => self.ec2.all_tables(deadline).await?,
                };
                let mut by_vpc: BTreeMap<String, Vec<RouteTable>> = BTreeMap::new();
                for table in tables {
                    self.remember(&table.id, &table.vpc_id);
                    if policy.admits_vpc(&table.vpc_id) {
                        by_vpc.entry(table.vpc_id.clone()).or_default().push(table);
                    }
                }
                Ok(Loaded {
                    vpcs: by_vpc.into_values().collect(),
                    scope: Scope::vpc(),
                })
            }
        }
    }

    /// A cold route event: reads the table alone to learn its VPC, and stops there unless
    /// it is the main table.
    async fn main_table_vpc(
        &self,
        table_id: &str,
        deadline: Instant,
        report: &mut Report,
    ) -> Result<String, Stop> {
        report.calls.describe_route_tables += 1;
        let table =
            self.ec2
                .table(table_id, deadline)
                .await?
                .ok_or_else(|| Refusal::UnknownTable {
                    table: table_id.to_owned(),
                })?;
        self.remember(&table.id, &table.vpc_id);
        report.vpc_id = Some(table.vpc_id.clone());
        self.check_vpc(&table.vpc_id)?;
        if !table.is_main {
            return Err(Refusal::NotMainTable {
                table: table.id,
                vpc: table.vpc_id,
                main: None,
            }
            .into());
        }
        Ok(table.vpc_id)
    }

    async fn read_vpc(
        &self,
        vpc_id: &str,
        deadline: Instant,
        report: &mut Report,
    ) -> Result<Vec<RouteTable>, Stop> {
        report.calls.describe_route_tables += 1;
        let tables = self.ec2.vpc_tables(&[vpc_id.to_owned()], deadline).await?;
        for table in &tables {
            self.remember(&table.id, &table.vpc_id);
        }
        Ok(tables)
    }

    /// `SYNC_VPC_IDS`: a VPC outside the list is answered `ignored`, before any write.
    fn check_vpc(&self, vpc_id: &str) -> Result<(), Stop> {
        if self.settings.policy.admits_vpc(vpc_id) {
            Ok(())
        } else {
            Err(Stop::Ignored {
                code: "vpc-not-in-scope",
                message: format!("{vpc_id} is not in SYNC_VPC_IDS; this function leaves it alone"),
            })
        }
    }

    /// Whether the main table, as just read, still disagrees with a fresh event: EC2's
    /// reads may lag a write by a moment. A late event is answered from the state as read,
    /// so it stays cheap.
    fn read_lags(
        &self,
        tables: &[RouteTable],
        destination: &Destination,
        expected: &MainRoute,
        source: &RequestSource,
    ) -> bool {
        let RequestSource::CloudTrail {
            event_time: Some(event_time),
            ..
        } = source
        else {
            return false;
        };
        let age = SystemTime::now()
            .duration_since(*event_time)
            .unwrap_or_default();
        if age > self.settings.fresh_event {
            return false;
        }
        let now = plan::main_target(tables, destination);
        match expected {
            MainRoute::To(target) => now != Some(target),
            MainRoute::Gone => now.is_some(),
        }
    }

    /// Writes every (destination, table) pair that needs it, at most
    /// `max_concurrent_writes` at once, and reports them in plan order.
    async fn apply(
        &self,
        plans: &[VpcPlan],
        dry_run: bool,
        named: Option<&Destination>,
        deadline: Instant,
        report: &mut Report,
    ) {
        let jobs = plans.iter().flat_map(|plan| {
            plan.writes().map(move |(route, table)| WriteJob {
                vpc_id: &plan.vpc_id,
                destination: &route.destination,
                target: route.target.as_ref(),
                table_id: &table.table_id,
                action: &table.action,
            })
        });
        // Tables re-read after EC2 said one had changed under us: their other pending writes
        // are re-decided against this fresher copy before they go out.
        let fresh: Mutex<HashMap<String, RouteTable>> = Mutex::new(HashMap::new());
        let mut written: HashMap<(String, String, String), TableReport> = stream::iter(jobs)
            .map(|job| self.write_table(job, dry_run, deadline, &fresh))
            .buffer_unordered(self.settings.max_concurrent_writes.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|(table, calls)| {
                report.calls.describe_route_tables += calls.reads;
                report.calls.route_writes += calls.writes;
                let key = (
                    table.vpc_id.clone(),
                    table.destination.clone().unwrap_or_default(),
                    table.route_table_id.clone(),
                );
                (key, table)
            })
            .collect();

        for plan in plans {
            for (table_id, skip) in &plan.skipped_tables {
                let destination = named.map(ToString::to_string);
                let table = TableReport {
                    vpc_id: plan.vpc_id.clone(),
                    route_table_id: table_id.clone(),
                    destination,
                    action: TableActionTaken::Skipped,
                    before: None,
                    after: None,
                    reason: Some(skip.to_string()),
                };
                log_table(&table, dry_run);
                report.counts.add(TableActionTaken::Skipped);
                report.tables.push(table);
            }
            for route in &plan.routes {
                for table in &route.actions {
                    let key = (
                        plan.vpc_id.clone(),
                        route.destination.to_string(),
                        table.table_id.clone(),
                    );
                    let entry = match written.remove(&key) {
                        Some(entry) => entry,
                        None => {
                            let job = WriteJob {
                                vpc_id: &plan.vpc_id,
                                destination: &route.destination,
                                target: route.target.as_ref(),
                                table_id: &table.table_id,
                                action: &table.action,
                            };
                            match settled(&job) {
                                Some(entry) => {
                                    log_table(&entry, dry_run);
                                    entry
                                }
                                None => continue,
                            }
                        }
                    };
                    report.counts.add(entry.action);
                    if Some(&route.destination) == named
                        || entry.action != TableActionTaken::Unchanged
                    {
                        report.tables.push(entry);
                    }
                }
            }
        }
        // A single-destination report reads best in table order, as it always has, with
        // the rest of the VPC's drift (if any) after it.
        if let Some(named) = named.map(ToString::to_string) {
            // Stable: the rest keeps its plan order (destination, then table).
            report
                .tables
                .sort_by_cached_key(|t| match t.destination.as_ref() == Some(&named) {
                    true => (false, t.route_table_id.clone()),
                    false => (true, String::new()),
                });
        }
    }

    /// Writes one destination in one table. EC2 may disagree with our read (another
    /// writer, a duplicate event in flight): `RouteAlreadyExists` on create and a missing
    /// route on replace or delete all mean "look again", so the table is re-read and
    /// re-decided by the same pure rule, which still refuses to clobber a route of another
    /// kind.
    async fn write_table(
        &self,
        job: WriteJob<'_>,
        dry_run: bool,
        deadline: Instant,
        fresh: &Mutex<HashMap<String, RouteTable>>,
    ) -> (TableReport, WriteCalls) {
        const MAX_REDECISIONS: u32 = 3;
        let mut calls = WriteCalls::default();
        let mut redecisions = 0;
        let fresher = lock(fresh)
            .get(job.table_id)
            .map(|table| self.redecide(table, &job));
        let mut action = match fresher {
            Some(action) if action != *job.action => {
                redecisions += 1;
                action
            }
            _ => job.action.clone(),
        };
        let result = loop {
            let current = WriteJob {
                action: &action,
                ..job
            };
            if let Some(mut settled) = settled(&current) {
                if settled.action == TableActionTaken::Unchanged && redecisions > 0 {
                    settled.reason = Some("already in place (written concurrently)".into());
                }
                break settled;
            }
            // Past the deadline (or once asked to stop) no new write starts.
            if Instant::now() >= deadline || self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                let before = match &action {
                    Action::Replace { before } | Action::Delete { before } => {
                        Some(before.to_string())
                    }
                    _ => None,
                };
                break deferred(&job, before, "the deadline came first".into());
            }
            let (mode, before) = match &action {
                Action::Replace { before } => (WriteMode::Replace, Some(before.to_string())),
                Action::Delete { before } => (WriteMode::Delete, Some(before.to_string())),
                // Action::Create; `settled` took the others.
                _ => (WriteMode::Create, None),
            };
            let write = RouteWrite {
                table_id: job.table_id.to_owned(),
                destination: job.destination.clone(),
                target: job.target.cloned(),
                mode,
                dry_run,
            };
            calls.writes += 1;
            let attempt = match self.ec2.write_route(&write, deadline).await {
                Ok(outcome) => Attempt::Done(taken(mode, outcome)),
                Err(WriteError::AlreadyExists | WriteError::NotFound)
                    if redecisions < MAX_REDECISIONS =>
                {
                    Attempt::LookAgain
                }
                // The retry loop gives a throttle back only when the deadline is near: the
                // bucket is slow, not broken, so the write is handed on, not failed.
                Err(WriteError::Aws(error)) if error.retry == RetryClass::Throttled => {
                    Attempt::Deferred(error.to_string())
                }
                Err(error) => Attempt::Failed(error.to_string()),
            };
            match attempt {
                Attempt::Done(taken) => break table_report(&job, taken, before, None),
                Attempt::Deferred(error) => {
                    break deferred(
                        &job,
                        before,
                        format!("still throttled at the deadline ({error})"),
                    )
                }
                Attempt::Failed(error) => {
                    break table_report(&job, TableActionTaken::Failed, before, Some(error))
                }
                Attempt::LookAgain => {
                    redecisions += 1;
                    calls.reads += 1;
                    action = match self.ec2.table(job.table_id, deadline).await {
                        Ok(Some(table)) => {
                            let action = self.redecide(&table, &job);
                            lock(fresh).insert(table.id.clone(), table);
                            action
                        }
                        // A delete that finds the table gone has nothing left to delete.
                        Ok(None) if job.target.is_none() => Action::Unchanged,
                        Ok(None) => {
                            break table_report(
                                &job,
                                TableActionTaken::Failed,
                                before,
                                Some("the table was deleted during the sync".into()),
                            )
                        }
                        Err(error) => {
                            break table_report(
                                &job,
                                TableActionTaken::Failed,
                                before,
                                Some(error.to_string()),
                            )
                        }
                    };
                    tracing::info!(decision = "redecide", table = job.table_id, destination = %job.destination, action = ?action, "the table changed since it was read");
                }
            }
        };
        log_table(&result, dry_run);
        (result, calls)
    }

    /// The same pure rule as the plan, for one pair, against a fresher copy of its table.
    fn redecide(&self, table: &RouteTable, job: &WriteJob<'_>) -> Action {
        match job.target {
            Some(target) => plan::plan_table(table, job.destination, target),
            None => plan::plan_delete(table, job.destination, &self.settings.policy),
        }
    }

    fn cached_vpc(&self, table_id: &str) -> Option<String> {
        self.lock_cache().get(table_id).cloned()
    }

    fn remember(&self, table_id: &str, vpc_id: &str) {
        let mut cache = self.lock_cache();
        if cache.len() >= VPC_CACHE_LIMIT && !cache.contains_key(table_id) {
            cache.clear();
        }
        cache.insert(table_id.to_owned(), vpc_id.to_owned());
    }

    fn forget(&self, table_id: &str) {
        self.lock_cache().remove(table_id);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A poisoned lock only means another thread panicked mid-insert of a plain map
        // entry; the map is still usable, and a cache is never worth failing a sync over.
        self.vpc_of_table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a hand-off continues: the same scope, so that it never takes over work that other
/// events of the same failover are doing (a route event continues its own destination, a
/// new table its backfill, a reconcile or sweep that VPC).
fn continuation(subject: &Subject, vpc: String) -> Subject {
    match subject {
        Subject::Route {
            table_id,
            destination,
            ..
        } => Subject::Route {
            table_id: table_id.clone(),
            vpc_id: Some(vpc),
            destination: destination.clone(),
            expected: None,
        },
        Subject::NewTable { table_id, .. } => Subject::NewTable {
            table_id: table_id.clone(),
            vpc_id: vpc,
        },
        Subject::Association { .. } | Subject::Reconcile { .. } => {
            Subject::Reconcile { vpc_id: Some(vpc) }
        }
    }
}

fn subnet_association(table: &RouteTable) -> Stop {
    Stop::Ignored {
        code: "subnet-association-change",
        message: format!(
            "{} is not the main route table of {}: a subnet association changed, which changes no route",
            table.id, table.vpc_id
        ),
    }
}

/// How one write to a table went.
enum Attempt {
    Done(TableActionTaken),
    Failed(String),
    /// Throttled until the deadline: hand it on.
    Deferred(String),
    /// EC2 says the table changed since it was read: read it again and re-decide.
    LookAgain,
}

fn taken(mode: WriteMode, outcome: WriteOutcome) -> TableActionTaken {
    match (mode, outcome) {
        (WriteMode::Create, WriteOutcome::Written) => TableActionTaken::Created,
        (WriteMode::Replace, WriteOutcome::Written) => TableActionTaken::Replaced,
        (WriteMode::Delete, WriteOutcome::Written) => TableActionTaken::Deleted,
        (WriteMode::Create, WriteOutcome::DryRunPassed) => TableActionTaken::WouldCreate,
        (WriteMode::Replace, WriteOutcome::DryRunPassed) => TableActionTaken::WouldReplace,
        (WriteMode::Delete, WriteOutcome::DryRunPassed) => TableActionTaken::WouldDelete,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct WriteCalls {
    reads: u32,
    writes: u32,
}

fn table_report(
    job: &WriteJob<'_>,
    action: TableActionTaken,
    before: Option<String>,
    reason: Option<String>,
) -> TableReport {
    let after = match action {
        TableActionTaken::Failed | TableActionTaken::Skipped | TableActionTaken::Deferred => {
            before.clone()
        }
        _ => job.target.map(ToString::to_string),
    };
    TableReport {
        vpc_id: job.vpc_id.to_owned(),
        route_table_id: job.table_id.to_owned(),
        destination: Some(job.destination.to_string()),
        action,
        before,
        after,
        reason,
    }
}

fn deferred(job: &WriteJob<'_>, before: Option<String>, why: String) -> TableReport {
    table_report(
        job,
        TableActionTaken::Deferred,
        before,
        Some(format!("not written: {why}")),
    )
}

/// The report of a pair that needs no write (unchanged, or skipped with its reason), or
/// `None` for a write.
fn settled(job: &WriteJob<'_>) -> Option<TableReport> {
    let (taken, before, reason) = match job.action {
        Action::Unchanged => (
            TableActionTaken::Unchanged,
            job.target.map(ToString::to_string),
            None,
        ),
        Action::Skip(reason) => (
            TableActionTaken::Skipped,
            Some(reason.existing()),
            Some(reason.to_string()),
        ),
        Action::Create | Action::Replace { .. } | Action::Delete { .. } => return None,
    };
    Some(table_report(job, taken, before, reason))
}

/// One log line per table decision, with the before and after.
fn log_table(table: &TableReport, dry_run: bool) {
    tracing::info!(
        decision = table.action.name(),
        vpc = %table.vpc_id,
        table = %table.route_table_id,
        destination = table.destination.as_deref(),
        before = table.before.as_deref(),
        after = table.after.as_deref(),
        reason = table.reason.as_deref(),
        dry_run,
    );
}

fn refused(mut report: Report, refusal: &Refusal) -> Report {
    report.outcome = Outcome::Refused;
    report.reason = Some(refusal.code().to_owned());
    report.message = refusal.to_string();
    tracing::info!(
        decision = "refused",
        reason = refusal.code(),
        table = report.route_table_id.as_deref(),
        destination = report.destination.as_deref(),
        summary = %refusal,
    );
    report
}

fn ignored(mut report: Report, code: &'static str, message: String) -> Report {
    report.outcome = Outcome::Ignored;
    report.reason = Some(code.to_owned());
    report.message = message;
    tracing::info!(decision = "ignored", reason = code, summary = %report.message);
    report
}

/// Sets the outcome and the one-line message from the counts.
fn summarise(report: &mut Report, plans: &[VpcPlan], scope: &Scope) {
    let named = match &scope.destinations {
        Destinations::One(destination) => Some(destination),
        Destinations::All => None,
    };
    let backfill = match &scope.tables {
        plan::Tables::One(table) => Some(table),
        plan::Tables::AllCustom => None,
    };
    let c = report.counts;
    let total = c.created
        + c.replaced
        + c.deleted
        + c.unchanged
        + c.skipped
        + c.would_change
        + c.deferred
        + c.failed;
    let skipped_note = if c.skipped > 0 {
        format!(", {} skipped", c.skipped)
    } else {
        String::new()
    };
    let (what, unit, total) = match (plans, named) {
        ([plan], Some(named)) => {
            let what = match plan.routes.first().map(|r| &r.target) {
                Some(Some(target)) => format!("{named} -> {target}"),
                _ => format!("{named} (gone from the main table)"),
            };
            // The named route's tables; the rest of the VPC's drift is told apart below.
            let own = report
                .tables
                .iter()
                .filter(|t| t.destination.as_deref() == Some(&named.to_string()))
                .count() as u32;
            (what, "custom tables", own)
        }
        ([_], None) if backfill.is_some() => (
            format!(
                "backfill of {}",
                backfill.map(String::as_str).unwrap_or_default()
            ),
            "routes",
            total,
        ),
        ([plan], None) => (
            format!("reconcile of {}", plan.vpc_id),
            "routes in custom tables",
            total,
        ),
        _ => (
            format!("sweep of {} VPCs", plans.len()),
            "routes in custom tables",
            total,
        ),
    };
    let own_changed = report
        .tables
        .iter()
        .filter(|t| named.is_some_and(|n| t.destination.as_deref() == Some(&n.to_string())))
        .filter(|t| t.action.is_change() || t.action.is_dry_run_change())
        .count() as u32;
    let (changed, would) = match named {
        Some(_) if report.dry_run => (0, own_changed),
        Some(_) => (own_changed, 0),
        None => (c.changed(), c.would_change),
    };
    let more = if named.is_some() {
        let others = c.changed() + c.would_change - own_changed;
        if others > 0 {
            format!("; {others} more routes of the VPC's main table brought along")
        } else {
            String::new()
        }
    } else {
        String::new()
    };
    (report.outcome, report.message) = if c.failed > 0 {
        (
            Outcome::Failed,
            format!(
                "{what}: {} of {total} {unit} failed, {} updated{skipped_note}{more}",
                c.failed,
                c.changed()
            ),
        )
    } else if c.deferred > 0 {
        (
            Outcome::Progressing,
            format!(
                "{what}: {} updated, {} handed on to a new invocation (the deadline came first){skipped_note}",
                c.changed() + c.would_change,
                c.deferred
            ),
        )
    } else if report.dry_run {
        (
            Outcome::DryRun,
            format!("dry run, {what}: {would} of {total} {unit} would change{skipped_note}{more}"),
        )
    } else if c.changed() > 0 {
        (
            Outcome::Synced,
            format!("{what}: {changed} of {total} {unit} updated{skipped_note}{more}"),
        )
    } else {
        (
            Outcome::Unchanged,
            format!("{what}: all {total} {unit} already up to date{skipped_note}"),
        )
    };
}
