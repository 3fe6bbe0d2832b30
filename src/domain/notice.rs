//! The change notice: what a network engineer reads in the alert email. Pure formatting;
//! `adapters::sns` sends it.

use std::fmt::Write;

use crate::domain::report::Report;
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
    let changed = report.changed_tables().count();
    let failed = report.failed_tables().count();
    if changed == 0 && failed == 0 {
        return None;
    }
    let status = if failed > 0 { "failed" } else { "synced" };
    let vpc = report.vpc_id.as_deref().unwrap_or("unknown VPC");
    let route = format!(
        "{} -> {}",
        report.destination.as_deref().unwrap_or("?"),
        report.target.as_deref().unwrap_or("?")
    );
    let subject = if failed > 0 {
        format!("sync-routes FAILED in {vpc}: {route} ({failed} tables failed)")
    } else {
        format!("sync-routes: {route} synced to {changed} tables in {vpc}")
    };

    let mut body = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(body, "{}", report.message);
    let _ = writeln!(body);
    let _ = writeln!(body, "VPC:         {vpc}");
    let _ = writeln!(
        body,
        "Main table:  {}",
        report.main_route_table_id.as_deref().unwrap_or("?")
    );
    let _ = writeln!(body, "Route:       {route}");
    if let RequestSource::CloudTrail {
        event_name,
        event_id,
        caller,
    } = &request.source
    {
        let _ = writeln!(
            body,
            "Trigger:     {event_name} by {} (CloudTrail event {})",
            caller.as_deref().unwrap_or("unknown caller"),
            event_id.as_deref().unwrap_or("?")
        );
    } else {
        let _ = writeln!(body, "Trigger:     manual request");
    }
    let _ = writeln!(body);
    let _ = writeln!(body, "Custom route tables:");
    for table in &report.tables {
        let before = table.before.as_deref().unwrap_or("(none)");
        let after = table.after.as_deref().unwrap_or("(none)");
        let _ = write!(
            body,
            "  {}  {:<13} {before} -> {after}",
            table.route_table_id,
            table.action.name()
        );
        if let Some(reason) = &table.reason {
            let _ = write!(body, "  ({reason})");
        }
        let _ = writeln!(body);
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
        ],
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
