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
use std::collections::BTreeMap;

use crate::domain::request::{NamedRoute, RequestSource, Subject, SyncRequest};
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
            return run_request(syncer, &request, deadline, message_id).await
        }
    };
    log_done(&report, message_id);
    emit_metrics(&report, None);
    report
}

/// Runs one request and logs and measures its report.
async fn run_request<E: RouteTables, N: Notifier>(
    syncer: &Syncer<E, N>,
    request: &SyncRequest,
    deadline: Instant,
    message_id: Option<&str>,
) -> Report {
    tracing::info!(
        decision = "sync",
        trigger = %request.source.name(),
        subject = ?request.subject,
        dry_run = request.dry_run,
    );
    let event_time = match &request.source {
        RequestSource::CloudTrail { event_time, .. } | RequestSource::Batch { event_time, .. } => {
            *event_time
        }
        _ => None,
    };
    let report = syncer.run(request, deadline).await;
    log_done(&report, message_id);
    emit_metrics(&report, event_time);
    report
}

/// Logs and measures a report made outside the engine (an organization's hub refusing an
/// account), as every report is.
pub fn finish(report: Report) -> Report {
    log_done(&report, None);
    emit_metrics(&report, None);
    report
}

fn log_done(report: &Report, message_id: Option<&str>) {
    let json = serde_json::to_string(report).unwrap_or_default();
    match message_id {
        Some(id) => {
            tracing::info!(message_id = id, outcome = report.outcome.name(), summary = %report.message, report = %json, "done")
        }
        None => {
            tracing::info!(outcome = report.outcome.name(), summary = %report.message, report = %json, "done")
        }
    }
}

/// Records of one batch handled at once. The events of one failover arrive together, and in
/// turn each would wait out the others' reads and writes; at once they share the process's
/// pacing of EC2's buckets, and the check after writing makes records of one VPC converge.
const RECORDS_AT_ONCE: usize = 4;

/// What one batch holds, once read: route events coalesced per main table, the rest alone.
enum Work {
    /// A record handled on its own, from its body.
    Record { id: String, body: String },
    /// Route events of several records for one main table: one request.
    Routes {
        ids: Vec<String>,
        request: SyncRequest,
    },
}

/// A batch from the work queue. Route events (CloudTrail CreateRoute, ReplaceRoute,
/// DeleteRoute) that name the same main table are coalesced into one request: one read of
/// the VPC, one plan for every destination they name, one notice (a failover's 26 routes
/// cost a read and a check, not 26 of each). Every other record is handled as a payload of
/// its own. Up to `RECORDS_AT_ONCE` of these run at a time, and the answer names the records
/// for SQS to deliver again: only those that failed and handed nothing on (work that goes
/// on in a continuation is never also retried, which would fork it; bad input and refusals
/// are final answers). Records the deadline leaves unstarted go back on the queue as they
/// came, rather than waiting out the visibility timeout and counting a receive against the
/// dead-letter queue.
pub async fn handle_batch<E: RouteTables, N: Notifier>(
    syncer: &Syncer<E, N>,
    region: Option<&str>,
    batch: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let mut work = Vec::new();
    let mut groups: BTreeMap<String, Vec<(String, SyncRequest, String)>> = BTreeMap::new();
    for record in batch.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.unwrap_or_default();
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_default();
        tracing::info!(decision = "record", message_id = %id, receives = %receives);
        match trigger::parse(&body, region) {
            Ok(Trigger::Sync(request)) => match coalescable(&request) {
                Some(table_id) => groups
                    .entry(table_id)
                    .or_default()
                    .push((id, request, body)),
                None => work.push(Work::Record { id, body }),
            },
            _ => work.push(Work::Record { id, body }),
        }
    }
    for (table_id, members) in groups {
        if members.len() == 1 {
            let (id, _, body) = members.into_iter().next().expect("one member");
            work.push(Work::Record { id, body });
            continue;
        }
        let ids = members.iter().map(|(id, _, _)| id.clone()).collect();
        work.push(Work::Routes {
            ids,
            request: coalesce(table_id, members.into_iter().map(|(_, r, _)| r).collect()),
        });
    }

    let failed: Vec<Vec<String>> = stream::iter(work)
        .map(|work| async move {
            if Instant::now() >= deadline {
                return put_back(syncer, work).await;
            }
            match work {
                Work::Record { id, body } => {
                    let report = handle_record(syncer, region, &body, deadline, Some(&id)).await;
                    if retry(&report) {
                        vec![id]
                    } else {
                        Vec::new()
                    }
                }
                Work::Routes { ids, request } => {
                    let names = ids.join(",");
                    let report = run_request(syncer, &request, deadline, Some(&names)).await;
                    if retry(&report) {
                        ids
                    } else {
                        Vec::new()
                    }
                }
            }
        })
        .buffer_unordered(RECORDS_AT_ONCE)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten() {
        response.add_failure(id);
    }
    response
}

/// SQS should deliver the record(s) again: failed, and nothing handed on.
fn retry(report: &Report) -> bool {
    report.is_failure() && report.calls.hand_offs == 0
}

/// The main table of a CloudTrail route event (not a dry run): the events of one failover,
/// which are coalesced per main table.
fn coalescable(request: &SyncRequest) -> Option<String> {
    match (&request.subject, &request.source) {
        (Subject::Route { table_id, .. }, RequestSource::CloudTrail { .. }) if !request.dry_run => {
            Some(table_id.clone())
        }
        _ => None,
    }
}

/// One request for the route events of several records on one main table, in the order
/// they came; each keeps what its event expects and its own source.
fn coalesce(table_id: String, requests: Vec<SyncRequest>) -> SyncRequest {
    let events = requests.len() as u32;
    let mut event_time: Option<std::time::SystemTime> = None;
    let mut routes = Vec::with_capacity(requests.len());
    for request in requests {
        if let RequestSource::CloudTrail {
            event_time: Some(t),
            ..
        } = &request.source
        {
            event_time = Some(event_time.map_or(*t, |e| e.min(*t)));
        }
        if let Subject::Route {
            destination,
            expected,
            ..
        } = request.subject
        {
            routes.push(NamedRoute {
                destination,
                expected,
                source: request.source,
            });
        }
    }
    SyncRequest {
        subject: Subject::Routes {
            table_id,
            vpc_id: None,
            routes,
        },
        dry_run: false,
        source: RequestSource::Batch { events, event_time },
    }
}

/// Work the deadline left unstarted goes back on the queue as it came; the ids of what
/// could not be put back, for SQS to deliver again.
async fn put_back<E: RouteTables, N: Notifier>(syncer: &Syncer<E, N>, work: Work) -> Vec<String> {
    let (ids, bodies): (Vec<String>, Vec<String>) = match work {
        Work::Record { id, body } => (vec![id], vec![body]),
        Work::Routes { ids, request } => match trigger::hand_off_payload(&request_alone(request)) {
            Some(body) => (ids, vec![body]),
            None => return ids,
        },
    };
    let Some(port) = syncer.hand_off_port() else {
        tracing::warn!(decision = "record-retried", message_ids = %ids.join(","), error = "no queue to put it back on");
        return ids;
    };
    for body in &bodies {
        if let Err(error) = port.resend(body).await {
            tracing::warn!(decision = "record-retried", message_ids = %ids.join(","), error = %error);
            return ids;
        }
    }
    for id in &ids {
        tracing::info!(decision = "resent", message_id = %id, "the deadline came before this record");
    }
    Vec::new()
}

/// A coalesced request as a continuation that reads again (its events' expectations are
/// judged by the read it makes, as for any hand-off).
fn request_alone(request: SyncRequest) -> SyncRequest {
    SyncRequest {
        source: RequestSource::HandOff { hops: 0 },
        ..request
    }
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
