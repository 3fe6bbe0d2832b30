//! Deletes only what sync-routes wrote: the ledger gates every planned delete, the
//! request's budget bounds them, acknowledged writes are recorded, and `adopt` records
//! routes that are already right as ours.

use std::collections::HashMap;
use std::time::SystemTime;

use super::Syncer;
use crate::domain::ownership::{self, LedgerChange, LedgerEntry};
use crate::domain::plan::{OwnWrite, VpcPlan};
use crate::domain::ports::{Notifier, RouteTables};
use crate::domain::report::{
    DeleteBudgetExceeded, HeldBackRoute, Outcome, Report, TableActionTaken, TableReport,
};
use crate::domain::request::SyncRequest;

impl<E: RouteTables, N: Notifier> Syncer<E, N> {
    /// Deletes need ownership, and fit the request's budget: every planned delete that the
    /// ledger does not own (to the next hop the table still has) becomes a skip, and if more
    /// remain than the budget allows, none is made. `own` are this request's acknowledged
    /// writes, not yet recorded: they are ours too. Without a readable ledger no delete is
    /// made (a sweep still does everything else; a DeleteRoute event then fails, retried).
    pub(super) async fn gate_deletes(
        &self,
        plans: &mut [VpcPlan],
        own: &[OwnWrite],
        budget: &mut DeleteBudget,
        report: &mut Report,
    ) {
        let candidates = ownership::delete_candidates(plans);
        if candidates.is_empty() {
            return;
        }
        let calls = report.ledger.get_or_insert_with(Default::default);
        // The check after writing plans again: what this request already looked up is known.
        let unknown: Vec<ownership::RouteKey> = candidates
            .iter()
            .filter(|key| !budget.known.contains_key(*key))
            .cloned()
            .collect();
        let owned = match (&self.ledger, unknown.is_empty()) {
            (None, _) => Err("no ledger is configured (SYNC_LEDGER_TABLE)".to_owned()),
            (Some(_), true) => Ok(ownership::Owned::new()),
            (Some(ledger), false) => {
                calls.reads += 1;
                ledger.owned(&unknown).await.map_err(|e| e.to_string())
            }
        };
        match owned {
            Ok(found) => {
                for key in unknown {
                    let hop = found.get(&key).cloned();
                    budget.known.insert(key, hop);
                }
                let mut owned: ownership::Owned = budget
                    .known
                    .iter()
                    .filter_map(|(key, hop)| hop.clone().map(|hop| (key.clone(), hop)))
                    .collect();
                for write in own {
                    let key = (write.table_id.clone(), write.destination.clone());
                    match &write.after {
                        Some(after) => owned.insert(key, after.id.clone()),
                        None => owned.remove(&key),
                    };
                }
                let kept = ownership::require_ownership(plans, &owned);
                tracing::info!(
                    decision = "ownership",
                    deletes = candidates.len(),
                    owned = kept
                );
            }
            Err(error) => {
                calls.unavailable = true;
                let held = ownership::without_ledger(plans);
                tracing::warn!(decision = "ledger-unavailable", deletes = held, error = %error, "the ledger could not be read: no delete is made, everything else goes on");
            }
        }
        let held = if budget.per_destination {
            ownership::enforce_delete_budget_per_destination(plans, budget.max)
        } else {
            ownership::enforce_delete_budget(plans, budget.max.saturating_sub(budget.used))
        };
        match held {
            Some(held) => {
                tracing::warn!(
                    decision = "delete-budget-exceeded",
                    planned = held.len(),
                    max = budget.max,
                    "more deletes planned than the budget: none is made"
                );
                let exceeded =
                    report
                        .delete_budget_exceeded
                        .get_or_insert_with(|| DeleteBudgetExceeded {
                            max_deletes: budget.max,
                            planned: 0,
                            would_delete: Vec::new(),
                        });
                // The check after writing plans the same held-back deletes again: each is
                // listed once.
                for h in held {
                    let route = HeldBackRoute {
                        vpc_id: h.vpc_id,
                        route_table_id: h.table_id,
                        destination: h.destination.to_string(),
                        next_hop: h.next_hop.to_string(),
                    };
                    if !exceeded.would_delete.contains(&route) {
                        exceeded.planned += 1;
                        exceeded.would_delete.push(route);
                    }
                }
            }
            None => budget.used += ownership::delete_candidates(plans).len() as u32,
        }
    }

    /// Records what this request wrote: a route created or replaced is owned, a route
    /// deleted leaves the ledger. A record that fails leaves the route unowned (never
    /// deleted: the safe side), logged and counted (`LedgerWriteFailures`).
    pub(super) async fn record_own_writes(
        &self,
        request: &SyncRequest,
        own: &[OwnWrite],
        report: &mut Report,
    ) {
        let Some(ledger) = &self.ledger else {
            return;
        };
        if own.is_empty() {
            return;
        }
        // In the order they were made: the ledger keeps the last change of a route.
        let now = SystemTime::now();
        let changes: Vec<LedgerChange> = own
            .iter()
            .map(|write| match &write.after {
                Some(after) => LedgerChange::Record(LedgerEntry {
                    vpc_id: write.vpc_id.clone(),
                    table_id: write.table_id.clone(),
                    destination: write.destination.clone(),
                    next_hop: after.clone(),
                    written_at: now,
                    request: request.cause_of(&write.destination),
                }),
                None => LedgerChange::Forget((write.table_id.clone(), write.destination.clone())),
            })
            .collect();
        let calls = report.ledger.get_or_insert_with(Default::default);
        calls.writes += 1;
        if let Err(error) = ledger.apply(&changes).await {
            calls.write_failures += error.failed;
            tracing::error!(decision = "ledger-write-failed", failed = error.failed, error = %error, "written routes not recorded stay unowned: they are never deleted");
        }
    }

    /// The report and the notice say what the budget held back; a DeleteRoute event whose
    /// delete could not consult the ledger fails, so that it is retried.
    pub(super) fn tell_held_back_deletes(&self, request: &SyncRequest, report: &mut Report) {
        if let Some(exceeded) = &report.delete_budget_exceeded {
            report.message.push_str(&format!(
                "; {} deletes held back, none made: more than the delete budget ({}, SYNC_MAX_DELETES)",
                exceeded.planned, exceeded.max_deletes
            ));
            report
                .reason
                .get_or_insert_with(|| "delete-budget-exceeded".to_owned());
        }
        if report.ledger.is_some_and(|l| l.unavailable) && request.subject.names_a_deletion() {
            report.outcome = Outcome::Failed;
            report.reason = Some("ledger-unavailable".to_owned());
            report.message.push_str(
                "; the deletion was not copied: the ledger of sync-routes' own routes could not be read (retried)",
            );
        }
    }

    /// `{"reconcile": true, "adopt": true}`: records as written by sync-routes every custom
    /// route that equals the main table's (what sync-routes would have written), and nothing
    /// else; writes and deletes no route. A dry run records nothing.
    pub(super) async fn adopt(
        &self,
        plans: &[VpcPlan],
        dry_run: bool,
        mut report: Report,
    ) -> Report {
        let adoptable = ownership::adoptable(plans);
        let action = if dry_run {
            TableActionTaken::WouldAdopt
        } else {
            TableActionTaken::Adopted
        };
        for (vpc_id, table_id, destination, target) in &adoptable {
            report.counts.add(action);
            report.tables.push(TableReport {
                vpc_id: vpc_id.clone(),
                route_table_id: table_id.clone(),
                destination: Some(destination.to_string()),
                action,
                before: Some(target.to_string()),
                after: Some(target.to_string()),
                code: None,
                reason: None,
            });
        }
        let what = match plans {
            [plan] => format!("adopt in {}", plan.vpc_id),
            _ => format!("adopt in {} VPCs", plans.len()),
        };
        let n = adoptable.len();
        if dry_run {
            report.outcome = Outcome::DryRun;
            report.message = format!("dry run, {what}: {n} routes equal the main table's and would be recorded as written by sync-routes");
            return report;
        }
        report.outcome = if n > 0 {
            Outcome::Synced
        } else {
            Outcome::Unchanged
        };
        report.message = format!(
            "{what}: {n} routes equal the main table's, recorded as written by sync-routes"
        );
        let Some(ledger) = &self.ledger else {
            return report; // refused before reading: see `run`
        };
        if n == 0 {
            return report;
        }
        let now = SystemTime::now();
        let changes: Vec<LedgerChange> = adoptable
            .into_iter()
            .map(|(vpc_id, table_id, destination, next_hop)| {
                LedgerChange::Record(LedgerEntry {
                    vpc_id,
                    table_id,
                    destination,
                    next_hop,
                    written_at: now,
                    request: "adopt".to_owned(),
                })
            })
            .collect();
        let calls = report.ledger.get_or_insert_with(Default::default);
        calls.writes += 1;
        if let Err(error) = ledger.apply(&changes).await {
            calls.write_failures += error.failed;
            report.outcome = Outcome::Failed;
            report.error = Some(error.to_string());
            report.message =
                format!("{what}: could not record every route ({error}); run it again");
        }
        report
    }
}

/// A request's delete budget: `SYNC_MAX_DELETES`, or a reconcile's `max-deletes`, spent by
/// the first plan and the check's plans after it.
pub(super) struct DeleteBudget {
    pub(super) max: u32,
    pub(super) used: u32,
    /// A coalesced batch of route events: each destination (each event) has the budget.
    pub(super) per_destination: bool,
    /// The ledger's answers so far (`None`: not owned), so each route is looked up once.
    pub(super) known: HashMap<ownership::RouteKey, Option<String>>,
}
