//! The change notice: what a network engineer reads in the alert email. Pure formatting;
//! `adapters::sns` sends it.

use std::fmt::Write;

use crate::domain::report::{Outcome, Report};
use crate::domain::request::{RequestSource, SyncRequest};

/// SNS subjects must be ASCII, one line, under 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub subject: String,
    pub body: String,
    /// SNS message attributes, so subscriptions can filter on them.
    pub attributes: Vec<(&'static str, String)>,
}

/// One notice for a request that changed or failed something; none for a no-op, a dry
/// run that failed nothing, a refusal or an ignored event.
pub fn notice_for(report: &Report, request: &SyncRequest) -> Option<Notice> {
    let changed = report.counts.changed();
    let failed = report.counts.failed;
    let held_back = report.delete_budget_exceeded.as_ref();
    let ledger_failed = report.reason.as_deref() == Some("ledger-unavailable");
    if changed == 0 && failed == 0 && held_back.is_none() && !ledger_failed {
        return None;
    }
    // Failed with no table failed: the tables were still changing at the last check, or an
    // event could not be handed on; the request is retried, and the notice says it failed.
    let unfinished = failed == 0 && report.outcome == Outcome::Failed;
    let status = if failed > 0 || unfinished {
        "failed"
    } else if held_back.is_some() {
        "delete-budget-exceeded"
    } else {
        "synced"
    };
    let vpc = report.vpc_id.as_deref().unwrap_or("several VPCs");
    // A single-destination request names its route; a reconcile lists one per line.
    let route = report.destination.as_deref().map(|destination| {
        format!(
            "{destination} -> {}",
            report.target.as_deref().unwrap_or("(deleted)")
        )
    });
    let subject = match (&route, failed > 0) {
        _ if unfinished && ledger_failed => {
            format!("sync-routes FAILED in {vpc}: a deletion not copied, its ledger could not be read (retried)")
        }
        _ if unfinished => format!(
            "sync-routes FAILED in {vpc}: {changed} route changes made, not finished (retried)"
        ),
        // Needs a person: it leads the subject whatever else was synced.
        (_, false) if held_back.is_some() => format!(
            "sync-routes: {} deletes held back in {vpc}, more than the delete budget of {}",
            held_back.map_or(0, |h| h.planned),
            held_back.map_or(0, |h| h.max_deletes)
        ),
        (Some(route), true) => {
            format!("sync-routes FAILED in {vpc}: {route} ({failed} tables failed)")
        }
        (Some(route), false) => format!("sync-routes: {route} synced to {changed} tables in {vpc}"),
        (None, true) => format!("sync-routes FAILED in {vpc}: {failed} route changes failed"),
        (None, false) if changed == 1 => format!("sync-routes: 1 route change in {vpc}"),
        (None, false) => format!("sync-routes: {changed} route changes in {vpc}"),
    };

    let mut body = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(body, "{}", report.message);
    let _ = writeln!(body);
    if let Some(account) = &report.account {
        let region = report.region.as_deref().unwrap_or_default();
        let _ = writeln!(body, "Account:     {account} ({region})");
    }
    let _ = writeln!(body, "VPC:         {vpc}");
    if let Some(main) = &report.main_route_table_id {
        let _ = writeln!(body, "Main table:  {main}");
    }
    if let Some(route) = &route {
        let _ = writeln!(body, "Route:       {route}");
    }
    match &request.source {
        RequestSource::CloudTrail {
            event_name,
            event_id,
            caller,
            ..
        } => {
            let _ = writeln!(
                body,
                "Trigger:     {event_name} by {} (CloudTrail event {})",
                caller.as_deref().unwrap_or("unknown caller"),
                event_id.as_deref().unwrap_or("?")
            );
        }
        RequestSource::Schedule => {
            let _ = writeln!(body, "Trigger:     scheduled sweep");
        }
        RequestSource::Manual => {
            let _ = writeln!(body, "Trigger:     manual request");
        }
        RequestSource::Http => {
            let _ = writeln!(body, "Trigger:     HTTP request");
        }
        RequestSource::Watch => {
            let _ = writeln!(body, "Trigger:     sync-routes watch");
        }
        RequestSource::Batch { events, .. } => {
            let _ = writeln!(
                body,
                "Trigger:     {events} route events of one batch (CloudTrail), synced together"
            );
        }
        RequestSource::HandOff { hops } => {
            let _ = writeln!(
                body,
                "Trigger:     hand-off {hops} of a reconcile that needed more than one invocation"
            );
        }
    }
    let _ = writeln!(body);
    let _ = writeln!(body, "Custom route tables:");
    let mut last_vpc = None;
    for table in &report.tables {
        if route.is_none() && report.vpc_id.is_none() && last_vpc != Some(&table.vpc_id) {
            let _ = writeln!(body, " {}", table.vpc_id);
            last_vpc = Some(&table.vpc_id);
        }
        let before = table.before.as_deref().unwrap_or("(none)");
        let after = table.after.as_deref().unwrap_or("(none)");
        let _ = write!(
            body,
            "  {}  {:<13} ",
            table.route_table_id,
            table.action.name()
        );
        if route.is_none() {
            let _ = write!(
                body,
                "{:<18} ",
                table.destination.as_deref().unwrap_or("(all)")
            );
        }
        let _ = write!(body, "{before} -> {after}");
        if let Some(reason) = &table.reason {
            let _ = write!(body, "  ({reason})");
        }
        let _ = writeln!(body);
    }
    if let Some(held) = held_back {
        let _ = writeln!(
            body,
            "\nDeletes held back ({} planned, the budget is {}; none was made):",
            held.planned, held.max_deletes
        );
        for route in &held.would_delete {
            let _ = writeln!(
                body,
                "  {}  {}  {:<18} {}",
                route.vpc_id, route.route_table_id, route.destination, route.next_hop
            );
        }
        let _ = writeln!(
            body,
            "If these deletes are meant, run {{\"reconcile\": true, \"vpc-id\": \"vpc-...\", \"max-deletes\": {}}} for each VPC.",
            held.planned
        );
    }
    if failed > 0 {
        let _ = writeln!(
            body,
            "\nThe invocation failed so that Lambda retries it; if it keeps failing the event is kept in the failure queue."
        );
    }

    Some(Notice {
        subject: ascii_subject(&subject),
        body,
        attributes: vec![
            ("status", status.to_owned()),
            ("vpc_id", vpc.to_owned()),
            ("changed_tables", changed.to_string()),
            ("failed_tables", failed.to_string()),
        ]
        .into_iter()
        .chain(report.account.clone().map(|a| ("account", a)))
        .collect(),
    })
}

fn ascii_subject(subject: &str) -> String {
    let mut ascii: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    ascii.truncate(MAX_SUBJECT_CHARS);
    ascii
}
