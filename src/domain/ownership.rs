//! Deletes only what sync-routes wrote. EC2 cannot tell a copy from a route that a person or
//! Terraform made (both have origin `CreateRoute`), so the engine keeps a ledger of the
//! routes it wrote (`ports::Ledger`, DynamoDB in production), and these pure rules turn a
//! plan's deletes into skips unless the ledger owns them, and hold every delete back when a
//! request plans more than its budget. Pure: the ledger's answer comes in as a map.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::domain::plan::{Action, Destination, RoutePlan, SkipReason, Target, VpcPlan};

/// A route in a custom table: (route table id, destination).
pub type RouteKey = (String, Destination);

/// What the ledger holds for routes sync-routes wrote: the next hop it wrote (its id).
pub type Owned = HashMap<RouteKey, String>;

/// One route sync-routes wrote (or adopted), as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub vpc_id: String,
    pub table_id: String,
    pub destination: Destination,
    pub next_hop: Target,
    pub written_at: SystemTime,
    /// What caused the write: `CreateRoute event <id>`, `schedule`, `adopt` ...
    pub request: String,
}

/// A change to the ledger: a route written (or adopted) is recorded, a route deleted leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerChange {
    Record(LedgerEntry),
    Forget(RouteKey),
}

impl LedgerChange {
    pub fn key(&self) -> RouteKey {
        match self {
            LedgerChange::Record(entry) => (entry.table_id.clone(), entry.destination.clone()),
            LedgerChange::Forget(key) => key.clone(),
        }
    }
}

/// A delete that the budget held back, for the report and the notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBack {
    pub vpc_id: String,
    pub table_id: String,
    pub destination: Destination,
    pub next_hop: Target,
}

/// Every delete the plans ask for, as the ledger keys whose ownership decides it.
pub fn delete_candidates(plans: &[VpcPlan]) -> Vec<RouteKey> {
    deletes(plans)
        .map(|(_, destination, table_id, _)| (table_id.to_owned(), destination.clone()))
        .collect()
}

/// Keeps a delete only where the ledger says sync-routes wrote that route, to the next hop
/// the table still has (a route re-pointed by hand since is someone else's now). Every
/// other delete becomes `not-written-by-sync-routes`. Returns how many deletes remain.
pub fn require_ownership(plans: &mut [VpcPlan], owned: &Owned) -> u32 {
    let mut kept = 0;
    for_each_delete(plans, |_, destination, table_id, before| {
        let key = (table_id.to_owned(), destination.clone());
        if owned.get(&key) == Some(&before.id) {
            kept += 1;
            None
        } else {
            Some(SkipReason::NotWrittenBySyncRoutes {
                destination: destination.clone(),
                existing: before.clone(),
            })
        }
    });
    kept
}

/// The ledger could not be read: no delete is made (ownership unknown is not ownership).
/// Returns how many deletes were held back.
pub fn without_ledger(plans: &mut [VpcPlan]) -> u32 {
    let mut held = 0;
    for_each_delete(plans, |_, destination, _, before| {
        held += 1;
        Some(SkipReason::LedgerUnavailable {
            destination: destination.clone(),
            existing: before.clone(),
        })
    });
    held
}

/// A request deletes at most `max` routes: with more planned, it deletes none of them (a
/// mistaken main-table move or an emptied main table would otherwise empty every custom
/// table). Returns the deletes held back, if any; `None` when the plans fit the budget.
pub fn enforce_delete_budget(plans: &mut [VpcPlan], max: u32) -> Option<Vec<HeldBack>> {
    let planned = deletes(plans).count() as u32;
    if planned <= max {
        return None;
    }
    let mut held = Vec::new();
    for plan in plans {
        for route in &mut plan.routes {
            hold_deletes(&plan.vpc_id, route, planned, max, &mut held);
        }
    }
    Some(held)
}

/// As `enforce_delete_budget`, for the route events of one batch coalesced into one request:
/// each event is still a request of its own to whoever made the call, so each destination
/// has the whole budget (coalescing must not change what is deleted).
pub fn enforce_delete_budget_per_destination(
    plans: &mut [VpcPlan],
    max: u32,
) -> Option<Vec<HeldBack>> {
    let mut held = Vec::new();
    for plan in plans {
        for route in &mut plan.routes {
            let planned = route
                .actions
                .iter()
                .filter(|t| matches!(t.action, Action::Delete { .. }))
                .count() as u32;
            if planned > max {
                hold_deletes(&plan.vpc_id, route, planned, max, &mut held);
            }
        }
    }
    (!held.is_empty()).then_some(held)
}

fn hold_deletes(
    vpc_id: &str,
    route: &mut RoutePlan,
    planned: u32,
    max: u32,
    held: &mut Vec<HeldBack>,
) {
    for table in &mut route.actions {
        if let Action::Delete { before } = &table.action {
            held.push(HeldBack {
                vpc_id: vpc_id.to_owned(),
                table_id: table.table_id.clone(),
                destination: route.destination.clone(),
                next_hop: before.clone(),
            });
            table.action = Action::Skip(SkipReason::DeleteBudgetExceeded {
                destination: route.destination.clone(),
                existing: before.clone(),
                vpc: vpc_id.to_owned(),
                planned,
                max,
            });
        }
    }
}

/// `{"reconcile": true, "adopt": true}`: every custom route in scope that equals the main
/// table's route (same destination, same next hop: exactly what sync-routes would have
/// written), and nothing else.
pub fn adoptable(plans: &[VpcPlan]) -> Vec<(String, String, Destination, Target)> {
    plans
        .iter()
        .flat_map(|plan| {
            plan.routes.iter().flat_map(move |route| {
                route
                    .actions
                    .iter()
                    .filter_map(move |table| match (&table.action, &route.target) {
                        (Action::Unchanged, Some(target)) => Some((
                            plan.vpc_id.clone(),
                            table.table_id.clone(),
                            route.destination.clone(),
                            target.clone(),
                        )),
                        _ => None,
                    })
            })
        })
        .collect()
}

/// A delete re-decided against a fresher read (the table changed under the write): it may
/// go ahead only while the table still has the next hop whose ownership was checked.
pub fn redecided_delete(fresh: Action, checked: &Action, destination: &Destination) -> Action {
    match (fresh, checked) {
        (Action::Delete { before }, Action::Delete { before: owned }) if before != *owned => {
            Action::Skip(SkipReason::NotWrittenBySyncRoutes {
                destination: destination.clone(),
                existing: before,
            })
        }
        (fresh, _) => fresh,
    }
}

/// (VPC, destination, table, next hop) of every planned delete.
fn deletes(plans: &[VpcPlan]) -> impl Iterator<Item = (&str, &Destination, &str, &Target)> {
    plans.iter().flat_map(|plan| {
        plan.routes.iter().flat_map(move |route| {
            route
                .actions
                .iter()
                .filter_map(move |table| match &table.action {
                    Action::Delete { before } => Some((
                        plan.vpc_id.as_str(),
                        &route.destination,
                        table.table_id.as_str(),
                        before,
                    )),
                    _ => None,
                })
        })
    })
}

/// Calls `decide` for every planned delete; where it returns a reason, the delete becomes
/// that skip.
fn for_each_delete(
    plans: &mut [VpcPlan],
    mut decide: impl FnMut(&str, &Destination, &str, &Target) -> Option<SkipReason>,
) {
    for plan in plans {
        for route in &mut plan.routes {
            for table in &mut route.actions {
                if let Action::Delete { before } = &table.action {
                    if let Some(skip) =
                        decide(&plan.vpc_id, &route.destination, &table.table_id, before)
                    {
                        table.action = Action::Skip(skip);
                    }
                }
            }
        }
    }
}
