//! How a request ended, for people and scripts: the report's outcome and one-line message
//! from its counts, refusals and ignored events as reports, and a pair written again by the
//! check after writing merged into its first entry. Pure: no I/O.

use crate::domain::plan::{self, Destinations, Refusal, Scope, VpcPlan};
use crate::domain::report::{Outcome, Report, TableActionTaken, TableReport};

/// A later pass wrote a pair again: its entry now says where the table ended, from where it
/// started. A pair that the later pass found already right keeps its first entry.
pub(crate) fn merge_rewrite(report: &mut Report, entry: TableReport) {
    let existing = report.tables.iter_mut().find(|t| {
        t.vpc_id == entry.vpc_id
            && t.route_table_id == entry.route_table_id
            && t.destination == entry.destination
    });
    match existing {
        Some(_) if entry.action == TableActionTaken::Unchanged => {}
        Some(existing) => {
            report.counts.remove(existing.action);
            report.counts.add(entry.action);
            let first_before = existing.before.take();
            let why = entry.reason.clone();
            *existing = TableReport {
                before: first_before,
                reason: Some(match why {
                    Some(why) => {
                        format!("written again, the main table changed during the sync: {why}")
                    }
                    None => "written again: the main table changed during the sync".to_owned(),
                }),
                ..entry
            };
        }
        None => {
            report.counts.add(entry.action);
            report.tables.push(entry);
        }
    }
}

pub(crate) fn refused(mut report: Report, refusal: &Refusal) -> Report {
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

pub(crate) fn ignored(mut report: Report, code: &'static str, message: String) -> Report {
    report.outcome = Outcome::Ignored;
    report.reason = Some(code.to_owned());
    report.message = message;
    tracing::info!(decision = "ignored", reason = code, summary = %report.message);
    report
}

/// Sets the outcome and the one-line message from the counts.
/// `carried_by` says who continues deferred work: "a new invocation", "the next pass".
pub(crate) fn summarise(report: &mut Report, plans: &[VpcPlan], scope: &Scope, carried_by: &str) {
    let named = match &scope.destinations {
        Destinations::One(destination) => Some(destination),
        Destinations::Some(_) | Destinations::All => None,
    };
    let several = match &scope.destinations {
        Destinations::Some(destinations) => Some(destinations.len()),
        _ => None,
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
        ([plan], None) if several.is_some() => (
            format!(
                "{} routes of {}",
                several.unwrap_or_default(),
                plan.main_table_id
            ),
            "routes in custom tables",
            total,
        ),
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
    let refused_note = match report.refused.len() {
        0 => String::new(),
        n => format!(
            "; {n} refused ({})",
            report
                .refused
                .iter()
                .map(|r| format!("{}: {}", r.destination, r.reason))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let skipped_note = format!("{skipped_note}{refused_note}");
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
                "{what}: {} updated, {} handed on to {carried_by} (the deadline came first){skipped_note}",
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
    } else if total == 0 && !report.refused.is_empty() {
        // Every destination the batch named was refused: as final an answer as one refusal.
        report.reason = report.refused.first().map(|r| r.reason.clone());
        (
            Outcome::Refused,
            format!("{what}: nothing to sync{refused_note}"),
        )
    } else {
        (
            Outcome::Unchanged,
            format!("{what}: all {total} {unit} already up to date{skipped_note}"),
        )
    };
}
