//! The reconcile engine: read the tables in scope, plan in pure code, write, read again
//! until a read finds nothing left to do, report, notify. Every trigger comes through
//! `Syncer::run`; AWS sits behind the ports of `domain::ports`, so that this file is tested
//! with in-memory fakes as well as against moto. The writes themselves are `domain::write`;
//! waiting out EC2's read lag is `sync::consistency`; the ledger's gate on deletes is
//! `sync::deletes`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::domain::notice;
use crate::domain::outcome::{ignored, merge_rewrite, refused, summarise};
use crate::domain::plan::{
    self, Action, Destination, Destinations, OwnWrite, Policy, Refusal, RouteTable, Scope, VpcPlan,
};
pub use crate::domain::ports::{
    AwsError, HandOff, Ledger, Notifier, RetryClass, RouteTables, RouteWrite, WriteError,
    WriteMode, WriteOutcome,
};
use crate::domain::report::{
    NoticeStatus, Outcome, RefusedRoute, Report, TableActionTaken, TableReport,
};
use crate::domain::request::{MainRoute, Subject, SyncRequest};
use crate::domain::write::{log_table, settled, WriteJob, Written};

pub use crate::domain::hand_off::MAX_HAND_OFFS;

mod consistency;
mod deletes;
use deletes::DeleteBudget;

/// Settings of the engine, parsed once from configuration.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub policy: Policy,
    /// Writes in flight at once for one request. Enough for every table of a typical VPC
    /// at once; bounded so a VPC with hundreds of tables does not empty EC2's bucket.
    pub max_concurrent_writes: usize,
    /// How fresh an event must be for a read that contradicts it to be waited out rather
    /// than believed (EC2's API is eventually consistent).
    pub fresh_event: Duration,
    /// The first pause before reading again; each later one doubles (1, 2, 4 s), as EC2's
    /// guide recommends ("starting with a couple of seconds").
    pub consistency_pause: Duration,
    /// Reads again at most this many times within one invocation; then the event is handed
    /// on (tried again later) as `waiting-for-ec2`.
    pub consistency_retries: u32,
    /// Reads after writing, at most, to check that the tables say what the main table says
    /// (another invocation may have written meanwhile). A quiet VPC needs one.
    pub max_check_reads: u32,
    /// `SYNC_MAX_DELETES`: a request that plans more deletes than this makes none of them.
    pub max_deletes: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            max_concurrent_writes: 16,
            fresh_event: Duration::from_secs(60),
            consistency_pause: Duration::from_secs(1),
            consistency_retries: 3,
            max_check_reads: 3,
            max_deletes: 10,
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
    pub(crate) hand_off: Option<Arc<dyn HandOff>>,
    /// With deletes on: the record of the routes sync-routes wrote, which alone it deletes.
    ledger: Option<Arc<dyn Ledger>>,
    /// An organization's hub: the account and region this engine works in, for reports,
    /// logs and notices.
    place: Option<(String, String)>,
    /// `watch`: work the deadline leaves is carried on by the next pass, not handed off.
    pub(crate) next_pass_continues: bool,
    /// Set to stop starting writes (`watch` on SIGINT): those in flight finish.
    stop: Arc<std::sync::atomic::AtomicBool>,
    settings: SyncSettings,
    vpc_of_table: Mutex<HashMap<String, String>>,
    /// When each (main table, destination) last had an event that a read confirmed: a read
    /// that contradicts an older event but matches a newer one shows the newer change.
    confirmed: Mutex<HashMap<(String, Destination), SystemTime>>,
}

/// Why loading the tables ended the request early.
enum Stop {
    Refused(Refusal),
    Ignored {
        code: &'static str,
        message: String,
    },
    /// A fresh event that EC2's reads still contradict after backing off.
    Waiting(String),
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
    /// Events of a coalesced batch whose reads still contradict them: handed on alone.
    waiting: Vec<SyncRequest>,
}

impl<E: RouteTables, N: Notifier> Syncer<E, N> {
    pub fn new(ec2: E, notifier: Option<N>, settings: SyncSettings) -> Self {
        Self {
            ec2,
            notifier,
            hand_off: None,
            ledger: None,
            place: None,
            next_pass_continues: false,
            stop: Arc::default(),
            settings,
            vpc_of_table: Mutex::new(HashMap::new()),
            confirmed: Mutex::new(HashMap::new()),
        }
    }

    /// A flag that, once set, stops the engine from starting new writes; the ones in flight
    /// finish and the rest is reported deferred.
    pub fn stop_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.stop.clone()
    }

    /// Lets a request that meets its deadline (or waits for EC2) hand the rest on to a new
    /// invocation instead of failing.
    pub fn with_hand_off(mut self, hand_off: Arc<dyn HandOff>) -> Self {
        self.hand_off = Some(hand_off);
        self
    }

    /// Deletes (with `propagate_deletes`) only what this ledger says sync-routes wrote, and
    /// records every route it writes there. Without one, no delete is ever made.
    pub fn with_ledger(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Names the account and region this engine works in (a hub's own or a member's).
    pub fn in_account(mut self, account: &str, region: &str) -> Self {
        self.place = Some((account.to_owned(), region.to_owned()));
        self
    }

    /// For `watch`: the next pass reads again and carries on whatever the deadline left, so
    /// deferred work is progress, never a failure.
    pub fn continued_by_next_pass(mut self) -> Self {
        self.next_pass_continues = true;
        self
    }

    /// The notices' port, for an organization's hub to share among its engines.
    pub fn notifier(&self) -> Option<&N> {
        self.notifier.as_ref()
    }

    /// The ledger, for an organization's hub to share among its engines.
    pub fn ledger(&self) -> Option<&Arc<dyn Ledger>> {
        self.ledger.as_ref()
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    pub(crate) fn ec2(&self) -> &E {
        &self.ec2
    }

    /// Where unfinished work goes, if anywhere (the handler puts back the records of a batch
    /// it could not start).
    pub fn hand_off_port(&self) -> Option<&Arc<dyn HandOff>> {
        self.hand_off.as_ref()
    }

    /// Reconciles what `request` names and reports every decision.
    pub async fn run(&self, request: &SyncRequest, deadline: Instant) -> Report {
        let mut report = Report::new(Outcome::Failed, String::new());
        report.trigger = Some(request.source.name());
        report.dry_run = request.dry_run;
        if let Some((account, region)) = &self.place {
            report.account = Some(account.clone());
            report.region = Some(region.clone());
        }
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
            Subject::Routes {
                table_id, vpc_id, ..
            } => {
                report.route_table_id = Some(table_id.clone());
                report.vpc_id = vpc_id.clone();
            }
            Subject::NewTable { table_id, vpc_id } => {
                report.route_table_id = Some(table_id.clone());
                report.vpc_id = Some(vpc_id.clone());
            }
            Subject::Association { table_id } => report.route_table_id = Some(table_id.clone()),
            Subject::Reconcile { vpc_id, .. } => report.vpc_id = vpc_id.clone(),
            Subject::Adopt { vpc_id } => {
                report.vpc_id = vpc_id.clone();
                if self.ledger.is_none() {
                    return refused(report, &Refusal::NoLedger);
                }
            }
        }
        let throttled_before = self.ec2.throttled_calls();

        let loaded = match self.load(request, deadline, &mut report).await {
            Ok(loaded) => loaded,
            Err(Stop::Refused(refusal)) => return refused(report, &refusal),
            Err(Stop::Ignored { code, message }) => return ignored(report, code, message),
            Err(Stop::Waiting(message)) => {
                report.calls.throttled = self.ec2.throttled_calls() - throttled_before;
                return self.wait_for_ec2(request, report, message).await;
            }
            Err(Stop::Failed(error)) => {
                report.message = format!("could not read the route tables: {error}");
                report.error = Some(error.to_string());
                report.calls.throttled = self.ec2.throttled_calls() - throttled_before;
                return report;
            }
        };

        // Events of a coalesced batch that EC2's reads do not show yet go on alone.
        let mut waiting_dropped = false;
        for waiting in &loaded.waiting {
            waiting_dropped |= !self.hand_on_waiting(waiting, &mut report).await;
        }
        let named = match &loaded.scope.destinations {
            Destinations::One(destination) => Some(destination.clone()),
            Destinations::Some(_) | Destinations::All => None,
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
        if let Subject::Adopt { .. } = request.subject {
            return self.adopt(&plans, request.dry_run, report).await;
        }
        if let [plan] = plans.as_slice() {
            report.vpc_id = Some(plan.vpc_id.clone());
            report.main_route_table_id = Some(plan.main_table_id.clone());
            for (destination, refusal) in &plan.refused {
                tracing::info!(decision = "refused", destination = %destination, reason = refusal.code(), summary = %refusal);
                report.refused.push(RefusedRoute {
                    destination: destination.to_string(),
                    reason: refusal.code().to_owned(),
                    message: refusal.to_string(),
                });
            }
        }

        let mut budget = DeleteBudget {
            max: match request.subject {
                Subject::Reconcile {
                    max_deletes: Some(max),
                    ..
                } => max,
                _ => self.settings.max_deletes,
            },
            used: 0,
            per_destination: matches!(loaded.scope.destinations, Destinations::Some(_)),
            known: HashMap::new(),
        };
        self.gate_deletes(&mut plans, &[], &mut budget, &mut report)
            .await;
        let mut own = self
            .apply(
                &plans,
                request.dry_run,
                named.as_ref(),
                deadline,
                &mut report,
            )
            .await;
        // Another invocation may have written these tables meanwhile (a failback during a
        // failover, a duplicate event, a sweep): read again until a read finds nothing to do.
        let mut unchecked = BTreeSet::new();
        if !own.is_empty() && report.counts.deferred == 0 {
            unchecked = self
                .converge(
                    &loaded.scope,
                    &mut plans,
                    &mut own,
                    &mut budget,
                    deadline,
                    &mut report,
                )
                .await;
        }
        self.record_own_writes(request, &own, &mut report).await;
        if let ([plan], Some(named)) = (plans.as_slice(), &named) {
            report.target = plan
                .routes
                .iter()
                .find(|r| r.destination == *named)
                .and_then(|r| r.target.as_ref())
                .map(ToString::to_string);
        }
        let mut check_dropped = false;
        if report.counts.deferred > 0 || !unchecked.is_empty() {
            let unchecked_vpcs = !unchecked.is_empty();
            check_dropped = !self.hand_on(request, &mut report, unchecked).await && unchecked_vpcs;
        }
        report.calls.throttled = self.ec2.throttled_calls() - throttled_before;
        let carried_by = match (&self.hand_off, self.next_pass_continues) {
            (None, true) => "the next pass",
            _ => "a new invocation",
        };
        summarise(&mut report, &plans, &loaded.scope, carried_by);
        self.tell_held_back_deletes(request, &mut report);
        if waiting_dropped {
            report.outcome = Outcome::Failed;
            report.message.push_str(
                "; some of its events are not shown by EC2's reads yet, and could not be handed on: run it again",
            );
        }
        if check_dropped {
            // The tables were still changing at the last read and nobody reads them again:
            // not "synced", so that a person or a retry does.
            report.outcome = Outcome::Failed;
            report.message.push_str(
                "; the tables were still changing at the last read and checking them again could not be handed on: run it again",
            );
        }
        self.notify(request, &mut report).await;
        report
    }

    async fn notify(&self, request: &SyncRequest, report: &mut Report) {
        let Some(notice) = notice::notice_for(report, request) else {
            return;
        };
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

    /// After writing: reads the VPCs written to again (one call), believes the writes EC2
    /// acknowledged where the read still shows what they replaced (`believe_own_writes`),
    /// plans again and writes what that plan asks for, until a read finds nothing to do.
    /// That is what makes the last word win: whichever invocation ends last has read the
    /// tables after every write it made, and put right what any other invocation (working
    /// from an older read) wrote over them. Returns the VPCs it could not check before the
    /// deadline or `max_check_reads`: their check is handed on.
    async fn converge(
        &self,
        scope: &Scope,
        plans: &mut [VpcPlan],
        own: &mut Vec<OwnWrite>,
        budget: &mut DeleteBudget,
        deadline: Instant,
        report: &mut Report,
    ) -> BTreeSet<String> {
        let mut dirty: BTreeSet<String> = own.iter().map(|w| w.vpc_id.clone()).collect();
        let mut reads = 0;
        while !dirty.is_empty() {
            if reads >= self.settings.max_check_reads || Instant::now() >= deadline {
                tracing::warn!(decision = "check-handed-on", vpcs = ?dirty, reads, "the tables were still changing; checking them again is handed on");
                return dirty;
            }
            reads += 1;
            report.calls.describe_route_tables += 1;
            let vpcs: Vec<String> = dirty.iter().cloned().collect();
            let tables = match self.ec2.vpc_tables(&vpcs, deadline).await {
                Ok(tables) => tables,
                Err(error) => {
                    tracing::warn!(decision = "check-handed-on", vpcs = ?dirty, error = %error, "the read after writing failed");
                    return dirty;
                }
            };
            let mut by_vpc: BTreeMap<String, Vec<RouteTable>> = BTreeMap::new();
            for table in tables {
                by_vpc.entry(table.vpc_id.clone()).or_default().push(table);
            }
            // A write that failed for good in this request is the retry's to make, not the
            // check's (it would fail the same way, and read as a change during the sync).
            let failed: BTreeSet<(String, String, String)> = report
                .tables
                .iter()
                .filter(|t| t.action == TableActionTaken::Failed)
                .map(|t| {
                    (
                        t.vpc_id.clone(),
                        t.destination.clone().unwrap_or_default(),
                        t.route_table_id.clone(),
                    )
                })
                .collect();
            let mut again = Vec::new();
            for vpc in &dirty {
                // A VPC deleted meanwhile has nothing left to check.
                let Some(mut tables) = by_vpc.remove(vpc) else {
                    continue;
                };
                let believed = plan::believe_own_writes(&mut tables, own);
                match plan::reconcile(&tables, scope, &self.settings.policy) {
                    Ok(mut fresh) => {
                        self.gate_deletes(std::slice::from_mut(&mut fresh), own, budget, report)
                            .await;
                        if let Some(slot) = plans.iter_mut().find(|p| p.vpc_id == *vpc) {
                            *slot = fresh.clone();
                        }
                        let mut fresh = fresh;
                        for route in &mut fresh.routes {
                            for table in &mut route.actions {
                                let key = (
                                    vpc.clone(),
                                    route.destination.to_string(),
                                    table.table_id.clone(),
                                );
                                if table.action.is_write() && failed.contains(&key) {
                                    table.action = Action::Unchanged;
                                }
                            }
                        }
                        let writes = fresh.writes().count();
                        tracing::info!(decision = "checked", vpc = %vpc, pass = reads, believed, writes);
                        if writes > 0 {
                            again.push(fresh);
                        }
                    }
                    // The destination left the main table, or the table was deleted: the
                    // request's own rules say nothing more is to be written.
                    Err(refusal) => {
                        tracing::info!(decision = "checked", vpc = %vpc, pass = reads, reason = refusal.code(), summary = %refusal)
                    }
                }
            }
            if again.is_empty() {
                return BTreeSet::new();
            }
            tracing::info!(
                decision = "converge",
                pass = reads,
                "the tables changed while syncing: writing again"
            );
            dirty.clear();
            for written in self.write_plans(&again, false, deadline).await {
                report.calls.describe_route_tables += written.calls.reads;
                report.calls.route_writes += written.calls.writes;
                if let Some(write) = written.own {
                    dirty.insert(write.vpc_id.clone());
                    own.push(write);
                }
                merge_rewrite(report, written.entry);
            }
            if report.counts.deferred > 0 {
                return BTreeSet::new(); // handed on with the deferred tables
            }
        }
        BTreeSet::new()
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
                let (vpc, mut tables) = self
                    .main_table_vpc_tables(table_id, vpc_id.as_ref(), deadline, report)
                    .await?;
                if let Some(expected) = expected {
                    tables = self
                        .settle_read(
                            &vpc,
                            table_id,
                            destination,
                            expected,
                            request,
                            tables,
                            deadline,
                            report,
                        )
                        .await?;
                }
                Ok(Loaded {
                    vpcs: vec![tables],
                    scope: Scope::destination(destination.clone()),
                    waiting: Vec::new(),
                })
            }
            Subject::Routes {
                table_id,
                vpc_id,
                routes,
            } => {
                let (vpc, tables) = self
                    .main_table_vpc_tables(table_id, vpc_id.as_ref(), deadline, report)
                    .await?;
                let (tables, waiting, _) = self
                    .settle_routes(&vpc, table_id, routes, tables, deadline, report)
                    .await?;
                let waiting_destinations: BTreeSet<&Destination> =
                    waiting.iter().map(|w| &w.destination).collect();
                let destinations = routes
                    .iter()
                    .map(|r| &r.destination)
                    .filter(|d| !waiting_destinations.contains(d))
                    // A deletion is copied only with deletes on.
                    .filter(|d| {
                        policy.propagate_deletes
                            || !routes.iter().any(|r| {
                                r.destination == **d && r.expected == Some(MainRoute::Gone)
                            })
                    })
                    .cloned()
                    .collect();
                Ok(Loaded {
                    vpcs: vec![tables],
                    scope: Scope {
                        destinations: Destinations::Some(destinations),
                        tables: plan::Tables::AllCustom,
                    },
                    waiting: waiting
                        .iter()
                        .map(|w| w.alone(table_id, Some(vpc.clone()), request.dry_run))
                        .collect(),
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
                    waiting: Vec::new(),
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
                        waiting: Vec::new(),
                    }),
                    Some(table) => Err(subnet_association(table)),
                    None => Err(Refusal::UnknownTable {
                        table: table_id.clone(),
                    }
                    .into()),
                }
            }
            Subject::Reconcile {
                vpc_id: Some(vpc), ..
            }
            | Subject::Adopt { vpc_id: Some(vpc) } => {
                self.check_vpc(vpc)?;
                let tables = self.read_vpc(vpc, deadline, report).await?;
                if tables.is_empty() {
                    return Err(Refusal::UnknownVpc { vpc: vpc.clone() }.into());
                }
                Ok(Loaded {
                    vpcs: vec![tables],
                    scope: Scope::vpc(),
                    waiting: Vec::new(),
                })
            }
            Subject::Reconcile { vpc_id: None, .. } | Subject::Adopt { vpc_id: None } => {
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
                    waiting: Vec::new(),
                })
            }
        }
    }

    /// The VPC and its tables, for an event that names `table_id` as the main table: refused
    /// when the table is unknown, in another VPC, or not the main table.
    async fn main_table_vpc_tables(
        &self,
        table_id: &str,
        vpc_id: Option<&String>,
        deadline: Instant,
        report: &mut Report,
    ) -> Result<(String, Vec<RouteTable>), Stop> {
        let vpc = match vpc_id.cloned().or_else(|| self.cached_vpc(table_id)) {
            Some(vpc) => vpc,
            None => self.main_table_vpc(table_id, deadline, report).await?,
        };
        self.check_vpc(&vpc)?;
        let tables = self.read_vpc(&vpc, deadline, report).await?;
        let Some(table) = tables.iter().find(|t| t.id == *table_id) else {
            self.forget(table_id);
            return Err(Stop::Refused(if vpc_id.is_some() {
                Refusal::TableNotInVpc {
                    table: table_id.to_owned(),
                    vpc,
                }
            } else {
                Refusal::UnknownTable {
                    table: table_id.to_owned(),
                }
            }));
        };
        // Main-ness is never cached: ReplaceRouteTableAssociation moves it any time.
        if !table.is_main {
            return Err(Refusal::NotMainTable {
                table: table_id.to_owned(),
                vpc,
                main: tables.iter().find(|t| t.is_main).map(|t| t.id.clone()),
            }
            .into());
        }
        Ok((vpc, tables))
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

    /// Writes every (destination, table) pair that needs it and reports them all in plan
    /// order; returns the writes EC2 acknowledged.
    async fn apply(
        &self,
        plans: &[VpcPlan],
        dry_run: bool,
        named: Option<&Destination>,
        deadline: Instant,
        report: &mut Report,
    ) -> Vec<OwnWrite> {
        let mut own = Vec::new();
        let mut written: HashMap<(String, String, String), TableReport> = HashMap::new();
        for Written {
            entry,
            calls,
            own: acknowledged,
        } in self.write_plans(plans, dry_run, deadline).await
        {
            report.calls.describe_route_tables += calls.reads;
            report.calls.route_writes += calls.writes;
            own.extend(acknowledged);
            let key = (
                entry.vpc_id.clone(),
                entry.destination.clone().unwrap_or_default(),
                entry.route_table_id.clone(),
            );
            written.insert(key, entry);
        }

        for plan in plans {
            for (table_id, skip) in &plan.skipped_tables {
                let table = TableReport {
                    vpc_id: plan.vpc_id.clone(),
                    route_table_id: table_id.clone(),
                    destination: named.map(ToString::to_string),
                    action: TableActionTaken::Skipped,
                    before: None,
                    after: None,
                    code: Some(skip.code().to_owned()),
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
        own
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

    pub(crate) fn forget(&self, table_id: &str) {
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

fn subnet_association(table: &RouteTable) -> Stop {
    Stop::Ignored {
        code: "subnet-association-change",
        message: format!(
            "{} is not the main route table of {}: a subnet association changed, which changes no route",
            table.id, table.vpc_id
        ),
    }
}
