//! The sync itself: read the VPC's tables once, plan in pure code, write concurrently,
//! notify. AWS sits behind two small ports (`RouteTables`, `Notifier`) so that this file is
//! tested with in-memory fakes as well as against moto.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures::stream::{self, StreamExt};
use ipnet::IpNet;
use tokio::time::Instant;

use crate::domain::notice::{self, Notice};
use crate::domain::plan::{self, Action, Plan, Policy, RouteTable, Target};
use crate::domain::report::{NoticeStatus, Outcome, Report, TableActionTaken, TableReport};
use crate::domain::request::SyncRequest;

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
/// under us since we read it; the sync re-decides that table rather than guess.
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWrite {
    pub table_id: String,
    pub destination: IpNet,
    pub target: Target,
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
    /// Every route table of the VPC, in one call (following pages if EC2 pages).
    fn vpc_tables(
        &self,
        vpc_id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<RouteTable>, AwsError>> + Send;
    fn write_route(
        &self,
        write: &RouteWrite,
        deadline: Instant,
    ) -> impl Future<Output = Result<WriteOutcome, WriteError>> + Send;
}

/// The notice port (SNS in production).
pub trait Notifier: Sync {
    fn publish(&self, notice: &Notice) -> impl Future<Output = Result<(), String>> + Send;
}

/// Settings of the engine, parsed once from configuration.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub policy: Policy,
    /// Writes in flight at once for one request. Enough for every table of a typical VPC
    /// at once; bounded so a VPC with hundreds of tables does not empty EC2's bucket.
    pub max_concurrent_writes: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            max_concurrent_writes: 16,
        }
    }
}

/// A table never moves to another VPC, so table -> VPC is cached for the life of the
/// process: a warm function reads the VPC's tables exactly once per event.
const VPC_CACHE_LIMIT: usize = 10_000;

/// The sync engine. Built once per process; `sync` is called once per request.
pub struct Syncer<E, N> {
    ec2: E,
    notifier: Option<N>,
    settings: SyncSettings,
    vpc_of_table: Mutex<HashMap<String, String>>,
}

/// Why loading the tables ended the request early.
enum LoadStop {
    Refused(plan::Refusal),
    Failed(AwsError),
}

impl From<AwsError> for LoadStop {
    fn from(error: AwsError) -> Self {
        LoadStop::Failed(error)
    }
}

impl<E: RouteTables, N: Notifier> Syncer<E, N> {
    pub fn new(ec2: E, notifier: Option<N>, settings: SyncSettings) -> Self {
        Self {
            ec2,
            notifier,
            settings,
            vpc_of_table: Mutex::new(HashMap::new()),
        }
    }

    pub async fn sync(&self, request: &SyncRequest, deadline: Instant) -> Report {
        let mut report = Report::new(Outcome::Failed, String::new());
        report.route_table_id = Some(request.route_table_id.clone());
        report.destination = Some(request.destination.to_string());
        report.dry_run = request.dry_run;
        report.vpc_id = request.vpc_id.clone();

        let tables = match self.load(request, deadline, &mut report).await {
            Ok(tables) => tables,
            Err(LoadStop::Refused(refusal)) => return refused(report, &refusal),
            Err(LoadStop::Failed(error)) => {
                report.message = format!(
                    "could not read the route tables for {}: {error}",
                    request.route_table_id
                );
                report.error = Some(error.to_string());
                return report;
            }
        };

        let plan = match plan::plan(
            &tables,
            &request.route_table_id,
            request.destination,
            &self.settings.policy,
        ) {
            Ok(plan) => plan,
            Err(refusal) => return refused(report, &refusal),
        };
        report.vpc_id = Some(plan.vpc_id.clone());
        report.main_route_table_id = Some(plan.main_table_id.clone());
        report.target = Some(plan.target.to_string());

        report.tables = self
            .apply(&plan, request.dry_run, deadline, &mut report)
            .await;
        summarise(&mut report, &plan);

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

    /// Reads the VPC's tables: one call when the table's VPC is known (manual request, or
    /// cached), two when cold. The cold read of the table alone also ends the echo of our
    /// own writes to a custom table after one call.
    async fn load(
        &self,
        request: &SyncRequest,
        deadline: Instant,
        report: &mut Report,
    ) -> Result<Vec<RouteTable>, LoadStop> {
        let known_vpc = request
            .vpc_id
            .clone()
            .or_else(|| self.cached_vpc(&request.route_table_id));
        let vpc_id = match known_vpc {
            Some(vpc) => vpc,
            None => {
                report.calls.describe_route_tables += 1;
                let Some(table) = self.ec2.table(&request.route_table_id, deadline).await? else {
                    return Err(LoadStop::Refused(plan::Refusal::UnknownTable {
                        table: request.route_table_id.clone(),
                    }));
                };
                self.remember(&table.id, &table.vpc_id);
                report.vpc_id = Some(table.vpc_id.clone());
                if !table.is_main {
                    return Err(LoadStop::Refused(plan::Refusal::NotMainTable {
                        table: table.id,
                        vpc: table.vpc_id,
                        main: None,
                    }));
                }
                table.vpc_id
            }
        };
        report.calls.describe_route_tables += 1;
        let tables = self.ec2.vpc_tables(&vpc_id, deadline).await?;
        if !tables.iter().any(|t| t.id == request.route_table_id) {
            self.forget(&request.route_table_id);
            let refusal = if request.vpc_id.is_some() {
                plan::Refusal::TableNotInVpc {
                    table: request.route_table_id.clone(),
                    vpc: vpc_id,
                }
            } else {
                plan::Refusal::UnknownTable {
                    table: request.route_table_id.clone(),
                }
            };
            return Err(LoadStop::Refused(refusal));
        }
        for table in &tables {
            self.remember(&table.id, &table.vpc_id);
        }
        Ok(tables)
    }

    /// Writes every table that needs it, at most `max_concurrent_writes` at once, and
    /// reports every table, written or not, in table-id order.
    async fn apply(
        &self,
        plan: &Plan,
        dry_run: bool,
        deadline: Instant,
        report: &mut Report,
    ) -> Vec<TableReport> {
        let writes = stream::iter(plan.writes())
            .map(|table| self.write_table(plan, &table.table_id, &table.action, dry_run, deadline))
            .buffer_unordered(self.settings.max_concurrent_writes.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut tables: Vec<TableReport> = Vec::with_capacity(plan.actions.len());
        for (table_report, calls) in writes {
            report.calls.describe_route_tables += calls.reads;
            report.calls.route_writes += calls.writes;
            tables.push(table_report);
        }
        for table in &plan.actions {
            if let Some(settled) = settled(&table.table_id, &table.action, plan) {
                log_table(plan, &settled, dry_run);
                tables.push(settled);
            }
        }
        tables.sort_by(|a, b| a.route_table_id.cmp(&b.route_table_id));
        tables
    }

    /// Writes one table. EC2 may disagree with our read (another writer, a duplicate
    /// event in flight): `RouteAlreadyExists` on create and a missing route on replace
    /// both mean "look again", so the table is re-read and re-decided by the same pure
    /// rule, which still refuses to clobber a route of another kind.
    async fn write_table(
        &self,
        plan: &Plan,
        table_id: &str,
        action: &Action,
        dry_run: bool,
        deadline: Instant,
    ) -> (TableReport, WriteCalls) {
        const MAX_REDECISIONS: u32 = 3;
        let mut calls = WriteCalls::default();
        let mut action = action.clone();
        let mut redecisions = 0;
        let result = loop {
            if let Some(mut settled) = settled(table_id, &action, plan) {
                if settled.action == TableActionTaken::Unchanged {
                    settled.reason = Some("already in place (written concurrently)".into());
                }
                break settled;
            }
            let (mode, before) = match &action {
                Action::Replace { before } => (WriteMode::Replace, Some(before.to_string())),
                // Action::Create; `settled` took the others.
                _ => (WriteMode::Create, None),
            };
            let write = RouteWrite {
                table_id: table_id.to_owned(),
                destination: plan.destination,
                target: plan.target.clone(),
                mode,
                dry_run,
            };
            calls.writes += 1;
            let attempt = match (self.ec2.write_route(&write, deadline).await, mode) {
                (Ok(WriteOutcome::Written), WriteMode::Create) => {
                    Attempt::Done(TableActionTaken::Created)
                }
                (Ok(WriteOutcome::Written), WriteMode::Replace) => {
                    Attempt::Done(TableActionTaken::Replaced)
                }
                (Ok(WriteOutcome::DryRunPassed), WriteMode::Create) => {
                    Attempt::Done(TableActionTaken::WouldCreate)
                }
                (Ok(WriteOutcome::DryRunPassed), WriteMode::Replace) => {
                    Attempt::Done(TableActionTaken::WouldReplace)
                }
                (Err(WriteError::AlreadyExists | WriteError::NotFound), _)
                    if redecisions < MAX_REDECISIONS =>
                {
                    Attempt::LookAgain
                }
                (Err(error), _) => Attempt::Failed(error.to_string()),
            };
            match attempt {
                Attempt::Done(taken) => break table_report(table_id, taken, plan, before, None),
                Attempt::Failed(error) => {
                    break table_report(
                        table_id,
                        TableActionTaken::Failed,
                        plan,
                        before,
                        Some(error),
                    )
                }
                Attempt::LookAgain => {
                    redecisions += 1;
                    calls.reads += 1;
                    action = match self.ec2.table(table_id, deadline).await {
                        Ok(Some(table)) => plan::plan_table(&table, plan.destination, &plan.target),
                        Ok(None) => {
                            break table_report(
                                table_id,
                                TableActionTaken::Failed,
                                plan,
                                before,
                                Some("the table was deleted during the sync".into()),
                            )
                        }
                        Err(error) => {
                            break table_report(
                                table_id,
                                TableActionTaken::Failed,
                                plan,
                                before,
                                Some(error.to_string()),
                            )
                        }
                    };
                    tracing::info!(decision = "redecide", table = table_id, destination = %plan.destination, action = ?action, "the table changed since it was read");
                }
            }
        };
        log_table(plan, &result, dry_run);
        (result, calls)
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

/// How one write to a table went.
enum Attempt {
    Done(TableActionTaken),
    Failed(String),
    /// EC2 says the table changed since it was read: read it again and re-decide.
    LookAgain,
}

#[derive(Debug, Default, Clone, Copy)]
struct WriteCalls {
    reads: u32,
    writes: u32,
}

fn table_report(
    table_id: &str,
    action: TableActionTaken,
    plan: &Plan,
    before: Option<String>,
    reason: Option<String>,
) -> TableReport {
    let after = match action {
        TableActionTaken::Failed | TableActionTaken::Skipped => before.clone(),
        _ => Some(plan.target.to_string()),
    };
    TableReport {
        route_table_id: table_id.to_owned(),
        action,
        before,
        after,
        reason,
    }
}

/// The report of a table that needs no write (unchanged, or skipped with its reason), or
/// `None` for a create or replace.
fn settled(table_id: &str, action: &Action, plan: &Plan) -> Option<TableReport> {
    let (taken, before, reason) = match action {
        Action::Unchanged => (
            TableActionTaken::Unchanged,
            Some(plan.target.to_string()),
            None,
        ),
        Action::Skip(reason) => (
            TableActionTaken::Skipped,
            skipped_target(reason),
            Some(reason.to_string()),
        ),
        Action::Create | Action::Replace { .. } => return None,
    };
    Some(table_report(table_id, taken, plan, before, reason))
}

/// One log line per table decision, with the before and after.
fn log_table(plan: &Plan, table: &TableReport, dry_run: bool) {
    tracing::info!(
        decision = table.action.name(),
        table = %table.route_table_id,
        destination = %plan.destination,
        before = table.before.as_deref(),
        after = table.after.as_deref(),
        reason = table.reason.as_deref(),
        dry_run,
    );
}

fn skipped_target(reason: &plan::SkipReason) -> Option<String> {
    match reason {
        plan::SkipReason::ConflictingTarget { existing, .. }
        | plan::SkipReason::PropagatedRouteInTable { existing, .. } => Some(existing.to_string()),
        plan::SkipReason::LocalRouteInTable { .. } => Some("local".to_owned()),
    }
}

fn refused(mut report: Report, refusal: &plan::Refusal) -> Report {
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

/// Sets the outcome and the one-line message from the per-table results.
fn summarise(report: &mut Report, plan: &Plan) {
    let count = |action| report.tables.iter().filter(|t| t.action == action).count();
    let failed = count(TableActionTaken::Failed);
    let changed = count(TableActionTaken::Created) + count(TableActionTaken::Replaced);
    let would = count(TableActionTaken::WouldCreate) + count(TableActionTaken::WouldReplace);
    let skipped = count(TableActionTaken::Skipped);
    let total = report.tables.len();
    let route = format!("{} -> {}", plan.destination, plan.target);
    let skipped_note = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    (report.outcome, report.message) = if failed > 0 {
        (
            Outcome::Failed,
            format!("{route}: {failed} of {total} custom tables failed, {changed} updated{skipped_note}"),
        )
    } else if report.dry_run {
        (
            Outcome::DryRun,
            format!(
                "dry run, {route}: {would} of {total} custom tables would change{skipped_note}"
            ),
        )
    } else if changed > 0 {
        (
            Outcome::Synced,
            format!("{route}: {changed} of {total} custom tables updated{skipped_note}"),
        )
    } else {
        (
            Outcome::Unchanged,
            format!("{route}: all {total} custom tables already up to date{skipped_note}"),
        )
    };
}
