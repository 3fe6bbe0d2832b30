//! One invocation, whatever runs it (the Lambda runtime or `sync-routes invoke FILE`):
//! payload in, report out. Never panics and never writes a route for bad input.

use tokio::time::Instant;

use crate::adapters::trigger::{self, Trigger};
use crate::domain::report::{Outcome, Report};
use crate::domain::sync::{Notifier, RouteTables, Syncer};

/// Handles one payload. `region` is the function's own (events from elsewhere are
/// ignored); `deadline` bounds every retry.
pub async fn handle<E: RouteTables, N: Notifier>(
    syncer: &Syncer<E, N>,
    region: Option<&str>,
    payload: &str,
    deadline: Instant,
) -> Report {
    let report = match trigger::parse(payload, region) {
        Err(error) => {
            tracing::warn!(decision = "rejected", error = %error);
            Report::without_plan(Outcome::Rejected, "invalid-input", error.to_string())
        }
        Ok(Trigger::Ignore(why)) => {
            tracing::info!(decision = "ignored", reason = %why);
            Report::without_plan(Outcome::Ignored, "not-applicable", why)
        }
        Ok(Trigger::Sync(request)) => {
            tracing::info!(
                decision = "sync",
                trigger = %request.source.name(),
                subject = ?request.subject,
                dry_run = request.dry_run,
            );
            syncer.run(&request, deadline).await
        }
    };
    let json = serde_json::to_string(&report).unwrap_or_default();
    tracing::info!(outcome = report.outcome.name(), summary = %report.message, report = %json, "done");
    report
}
