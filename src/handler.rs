//! One invocation, whatever runs it (the Lambda runtime or `sync-routes invoke FILE`):
//! payload in, report out. Never panics and never writes a route for bad input.

use tokio::time::Instant;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;

use crate::adapters::emf;
use crate::adapters::trigger::{self, Trigger};
use crate::domain::report::{Outcome, Report};
use crate::domain::request::RequestSource;
use crate::domain::sync::{Notifier, RouteTables, Syncer};

/// Handles one payload. `region` is the function's own (events from elsewhere are
/// ignored); `deadline` bounds every retry.
pub async fn handle<E: RouteTables, N: Notifier>(
    syncer: &Syncer<E, N>,
    region: Option<&str>,
    payload: &str,
    deadline: Instant,
) -> Report {
    let mut event_time = None;
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
            if let RequestSource::CloudTrail { event_time: t, .. } = &request.source {
                event_time = *t;
            }
            syncer.run(&request, deadline).await
        }
    };
    let json = serde_json::to_string(&report).unwrap_or_default();
    tracing::info!(outcome = report.outcome.name(), summary = %report.message, report = %json, "done");
    emit_metrics(&report, event_time);
    report
}

/// One embedded-metric-format line per request, on stderr with the logs (stdout is the
/// report's, for `invoke`), in one write so it never interleaves with a log line.
/// Metrics are part of the log: `RUST_LOG=off` (or a level above info) turns them off too.
fn emit_metrics(report: &Report, event_time: Option<std::time::SystemTime>) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sync-routes".into());
    let line = emf::metrics_line(report, event_time, std::time::SystemTime::now(), &function);
    let mut text = line.to_string();
    text.push('\n');
    // A lost metric line is not worth failing a sync over.
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
}

/// The HTTP answer to an API Gateway proxy event: the report as the body, with a status a
/// client of the original tool can act on. Never a Lambda error: API Gateway would turn it
/// into an opaque 502 of its own.
pub fn http_response(report: &Report) -> ApiGatewayProxyResponse {
    let status = match report.outcome {
        Outcome::Synced | Outcome::Unchanged | Outcome::DryRun => 200,
        // The writes go on in a new invocation: accepted, not done.
        Outcome::Progressing | Outcome::WaitingForEc2 => 202,
        // A VPC outside SYNC_VPC_IDS is as final an answer as a refusal.
        Outcome::Refused | Outcome::Ignored => 422,
        Outcome::Rejected => 400,
        Outcome::Failed => 502,
    };
    let mut headers = aws_lambda_events::http::HeaderMap::new();
    headers.insert(
        aws_lambda_events::http::header::CONTENT_TYPE,
        aws_lambda_events::http::HeaderValue::from_static("application/json"),
    );
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(
        serde_json::to_string(report).unwrap_or_default(),
    ));
    response
}
