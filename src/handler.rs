//! One invocation, whatever runs it (the Lambda runtime or `sync-routes invoke FILE`):
//! payload in, report out. Never panics and never writes a route for bad input.

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

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
    handle_record(syncer, region, payload, deadline, None).await
}

/// As `handle`, for one record of a batch: its log lines name the record's message id.
async fn handle_record<E: RouteTables, N: Notifier>(
    syncer: &Syncer<E, N>,
    region: Option<&str>,
    payload: &str,
    deadline: Instant,
    message_id: Option<&str>,
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
    match message_id {
        Some(id) => {
            tracing::info!(message_id = id, outcome = report.outcome.name(), summary = %report.message, report = %json, "done")
        }
        None => {
            tracing::info!(outcome = report.outcome.name(), summary = %report.message, report = %json, "done")
        }
    }
    emit_metrics(&report, event_time);
    report
}

/// Records of one batch handled at once. The events of one failover arrive together, and in
/// turn each would wait out the others' reads and writes; at once they share the process's
/// pacing of EC2's buckets, and the check after writing makes records of one VPC converge.
const RECORDS_AT_ONCE: usize = 4;

/// A batch from the work queue: each record's body is handled as a payload of its own (up to
/// `RECORDS_AT_ONCE` at a time), and the answer names the records for SQS to deliver again. Only a record that
/// failed and handed nothing on is one of those: work that goes on in a continuation is
/// never also retried (that would fork it), and bad input or a refusal is a final answer.
/// A record the deadline leaves unstarted goes back on the queue as it came, rather than
/// waiting out the visibility timeout and counting a receive against the dead-letter queue.
pub async fn handle_batch<E: RouteTables, N: Notifier>(
    syncer: &Syncer<E, N>,
    region: Option<&str>,
    batch: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let outcomes: Vec<Option<String>> = stream::iter(batch.records)
        .map(|record| async move {
            let id = record.message_id.clone().unwrap_or_default();
            let body = record.body.unwrap_or_default();
            let receives = record
                .attributes
                .get("ApproximateReceiveCount")
                .cloned()
                .unwrap_or_default();
            if Instant::now() >= deadline {
                let resent = match syncer.hand_off_port() {
                    Some(port) => port.resend(&body).await,
                    None => Err("no queue to put it back on".to_owned()),
                };
                return match resent {
                    Ok(()) => {
                        tracing::info!(decision = "resent", message_id = %id, "the deadline came before this record");
                        None
                    }
                    Err(error) => {
                        tracing::warn!(decision = "record-retried", message_id = %id, error = %error);
                        Some(id)
                    }
                };
            }
            tracing::info!(decision = "record", message_id = %id, receives = %receives);
            let report = handle_record(syncer, region, &body, deadline, Some(&id)).await;
            (report.is_failure() && report.calls.hand_offs == 0).then_some(id)
        })
        .buffer_unordered(RECORDS_AT_ONCE)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for id in outcomes.into_iter().flatten() {
        response.add_failure(id);
    }
    response
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
