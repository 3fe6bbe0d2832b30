//! The executor: makes the writes a plan asks for, at most `max_concurrent_writes` at once,
//! and says how each ended. EC2 may disagree with our read (another writer, a duplicate
//! event in flight, a table deleted since): the table is then read again and re-decided by
//! the same pure rule, which still refuses to clobber a route of another kind.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::domain::ownership;
use crate::domain::plan::{self, Action, Destination, OwnWrite, RouteTable, Target, VpcPlan};
use crate::domain::ports::{
    Notifier, RetryClass, RouteTables, RouteWrite, WriteError, WriteMode, WriteOutcome,
};
use crate::domain::report::{TableActionTaken, TableReport};
use crate::domain::sync::Syncer;

/// One write to make: a destination in one table, as planned.
#[derive(Clone, Copy)]
pub(crate) struct WriteJob<'a> {
    pub vpc_id: &'a str,
    pub destination: &'a Destination,
    pub target: Option<&'a Target>,
    pub table_id: &'a str,
    pub action: &'a Action,
}

/// How one (destination, table) pair ended: its report entry, the calls it took, and the
/// write EC2 acknowledged, if one was made.
pub(crate) struct Written {
    pub entry: TableReport,
    pub calls: WriteCalls,
    pub own: Option<OwnWrite>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteCalls {
    pub reads: u32,
    pub writes: u32,
}

/// Why a pair was not written as planned: a stable code and a sentence.
pub(crate) struct Why {
    pub code: String,
    pub reason: String,
}

impl Why {
    pub fn new(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

/// How one write attempt went.
enum Attempt {
    Done(TableActionTaken),
    Failed(Why),
    /// Throttled until the deadline, or not started before it: hand it on.
    Deferred(Why),
    /// EC2 says the table changed since it was read: read it again and re-decide.
    LookAgain,
}

impl<E: RouteTables, N: Notifier> Syncer<E, N> {
    /// Writes every pair of `plans` that needs it, concurrently, in no particular order.
    pub(crate) async fn write_plans(
        &self,
        plans: &[VpcPlan],
        dry_run: bool,
        deadline: Instant,
    ) -> Vec<Written> {
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
        stream::iter(jobs)
            .map(|job| self.write_table(job, dry_run, deadline, &fresh))
            .buffer_unordered(self.settings().max_concurrent_writes.max(1))
            .collect()
            .await
    }

    /// Writes one destination in one table. `RouteAlreadyExists` on create and a missing
    /// route on replace or delete mean "look again"; a missing table means it was deleted
    /// since the read, which is reported as skipped once a read confirms it.
    async fn write_table(
        &self,
        job: WriteJob<'_>,
        dry_run: bool,
        deadline: Instant,
        fresh: &Mutex<HashMap<String, RouteTable>>,
    ) -> Written {
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
        let mut own = None;
        let entry = loop {
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
            let (mode, before) = match &action {
                Action::Replace { before } => (WriteMode::Replace, Some(before.clone())),
                Action::Delete { before } => (WriteMode::Delete, Some(before.clone())),
                // Action::Create; `settled` took the others.
                _ => (WriteMode::Create, None),
            };
            let before_text = before.as_ref().map(ToString::to_string);
            // Once asked to stop (`watch` on SIGINT) or past the deadline, no write starts.
            if self.stop_flag().load(Ordering::Relaxed) {
                break deferred(
                    &job,
                    before_text,
                    Why::new("stopped", "not written: stopped"),
                );
            }
            if Instant::now() >= deadline {
                break deferred(
                    &job,
                    before_text,
                    Why::new("deadline", "not written: the deadline came first"),
                );
            }
            let write = RouteWrite {
                table_id: job.table_id.to_owned(),
                destination: job.destination.clone(),
                target: job.target.cloned(),
                mode,
                dry_run,
            };
            calls.writes += 1;
            let attempt = match self.ec2().write_route(&write, deadline).await {
                Ok(outcome) => Attempt::Done(taken(mode, outcome)),
                Err(
                    WriteError::AlreadyExists | WriteError::NotFound | WriteError::TableNotFound,
                ) if redecisions < MAX_REDECISIONS => Attempt::LookAgain,
                // The retry loop gives a throttle back only when the deadline is near: the
                // bucket is slow, not broken, so the write is handed on, not failed.
                Err(WriteError::Aws(error)) if error.retry == RetryClass::Throttled => {
                    Attempt::Deferred(Why::new(
                        "throttled",
                        format!(
                            "not written: still throttled at the deadline ({})",
                            error.code.as_deref().unwrap_or("throttled")
                        ),
                    ))
                }
                Err(WriteError::Aws(error)) if error.retry == RetryClass::Deadline => {
                    Attempt::Deferred(Why::new("deadline", "not written: the deadline came first"))
                }
                Err(WriteError::Aws(error)) => Attempt::Failed(Why::new(
                    error.code.clone().unwrap_or_else(|| "write-failed".into()),
                    error.to_string(),
                )),
                Err(error) => Attempt::Failed(Why::new("write-failed", error.to_string())),
            };
            match attempt {
                Attempt::Done(taken) => {
                    if taken.is_change() {
                        own = Some(OwnWrite {
                            vpc_id: job.vpc_id.to_owned(),
                            table_id: job.table_id.to_owned(),
                            destination: job.destination.clone(),
                            before,
                            after: job.target.cloned(),
                        });
                    }
                    break table_report(&job, taken, before_text, None);
                }
                Attempt::Deferred(why) => break deferred(&job, before_text, why),
                Attempt::Failed(why) => {
                    break table_report(&job, TableActionTaken::Failed, before_text, Some(why))
                }
                Attempt::LookAgain => {
                    redecisions += 1;
                    calls.reads += 1;
                    action = match self.ec2().table(job.table_id, deadline).await {
                        Ok(Some(table)) => {
                            let action = self.redecide(&table, &job);
                            lock(fresh).insert(table.id.clone(), table);
                            action
                        }
                        // Deleted since the read: nothing of it is left to sync.
                        Ok(None) => {
                            self.forget(job.table_id);
                            break table_report(
                                &job,
                                TableActionTaken::Skipped,
                                before_text,
                                Some(Why::new(
                                    "table-deleted",
                                    "the table was deleted during the sync",
                                )),
                            );
                        }
                        Err(error) => {
                            break table_report(
                                &job,
                                TableActionTaken::Failed,
                                before_text,
                                Some(Why::new(
                                    error.code.clone().unwrap_or_else(|| "read-failed".into()),
                                    error.to_string(),
                                )),
                            )
                        }
                    };
                    tracing::info!(decision = "redecide", table = job.table_id, destination = %job.destination, action = ?action, "the table changed since it was read");
                }
            }
        };
        log_table(&entry, dry_run);
        Written { entry, calls, own }
    }

    /// The same pure rule as the plan, for one pair, against a fresher copy of its table.
    fn redecide(&self, table: &RouteTable, job: &WriteJob<'_>) -> Action {
        match job.target {
            Some(target) => plan::plan_table(table, job.destination, target),
            // A delete's ownership was checked against the next hop it planned to remove.
            None => ownership::redecided_delete(
                plan::plan_delete(table, job.destination, &self.settings().policy),
                job.action,
                job.destination,
            ),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

pub(crate) fn table_report(
    job: &WriteJob<'_>,
    action: TableActionTaken,
    before: Option<String>,
    why: Option<Why>,
) -> TableReport {
    let after = match action {
        TableActionTaken::Failed | TableActionTaken::Skipped | TableActionTaken::Deferred => {
            before.clone()
        }
        _ => job.target.map(ToString::to_string),
    };
    let (code, reason) = match why {
        Some(Why { code, reason }) => (Some(code), Some(reason)),
        None => (None, None),
    };
    TableReport {
        vpc_id: job.vpc_id.to_owned(),
        route_table_id: job.table_id.to_owned(),
        destination: Some(job.destination.to_string()),
        action,
        before,
        after,
        code,
        reason,
    }
}

fn deferred(job: &WriteJob<'_>, before: Option<String>, why: Why) -> TableReport {
    table_report(job, TableActionTaken::Deferred, before, Some(why))
}

/// The report of a pair that needs no write (unchanged, or skipped with its reason), or
/// `None` for a write.
pub(crate) fn settled(job: &WriteJob<'_>) -> Option<TableReport> {
    let (taken, before, why) = match job.action {
        Action::Unchanged => (
            TableActionTaken::Unchanged,
            job.target.map(ToString::to_string),
            None,
        ),
        Action::Skip(reason) => (
            TableActionTaken::Skipped,
            Some(reason.existing()),
            Some(Why::new(reason.code(), reason.to_string())),
        ),
        Action::Create | Action::Replace { .. } | Action::Delete { .. } => return None,
    };
    Some(table_report(job, taken, before, why))
}

/// One log line per table decision, with the before and after.
pub(crate) fn log_table(table: &TableReport, dry_run: bool) {
    tracing::info!(
        decision = table.action.name(),
        vpc = %table.vpc_id,
        table = %table.route_table_id,
        destination = table.destination.as_deref(),
        before = table.before.as_deref(),
        after = table.after.as_deref(),
        code = table.code.as_deref(),
        reason = table.reason.as_deref(),
        dry_run,
    );
}
