//! A batch from the work queue (the SQS event source mapping), with in-memory adapters:
//! which records SQS is told to deliver again, and what goes back on the queue.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sync_routes::adapters::memory::{MemoryEc2, MemoryHandOff, MemoryNotifier};
use sync_routes::adapters::trigger;
use sync_routes::domain::plan::{
    Destination, Route, RouteOrigin, RouteState, RouteTable, Target, TargetKind,
};
use sync_routes::domain::sync::{AwsError, RetryClass, SyncSettings, Syncer, WriteError};
use sync_routes::handler::handle_batch;
use tokio::time::Instant;

const VPC: &str = "vpc-0000000000000000a";
const MAIN: &str = "rtb-00000000000000001";

fn tables(customs: usize) -> Vec<RouteTable> {
    let route = Route {
        destination: Destination::Cidr("10.1.0.0/16".parse().unwrap()),
        target: Target::new(TargetKind::NetworkInterface, "eni-1"),
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    };
    let mut tables = vec![RouteTable::new(MAIN, VPC, true, vec![route])];
    for i in 0..customs {
        tables.push(RouteTable::new(
            &format!("rtb-1{i:016x}"),
            VPC,
            false,
            vec![],
        ));
    }
    tables
}

fn manual(destination: &str) -> String {
    json!({"route-table-id": MAIN, "destination-cidr-block": destination}).to_string()
}

/// The event the event source mapping delivers, with these bodies as messages m0, m1 ...
fn batch(bodies: &[String]) -> String {
    let records: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("m{i}"),
                "receiptHandle": "h",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:SyncRoutesWork",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

fn failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn later(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// Bad input and refusals are final answers (the records are done); synced records are done.
#[tokio::test]
async fn only_records_that_failed_and_handed_nothing_on_are_delivered_again() {
    let ec2 = MemoryEc2::new(tables(2));
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default());
    let payload = batch(&[
        manual("10.1.0.0/16"),
        "not json".to_owned(),
        manual("10.9.0.0/16"), // not in the main table: refused
    ]);
    let event = trigger::sqs_batch(&payload).expect("an SQS batch");
    let response = handle_batch(&syncer, Some("us-east-1"), event, later(10)).await;
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(ec2.take_counts().2, 2, "the first record's two writes");

    // A write that fails for good: that record only is delivered again.
    *ec2.write_error.lock().unwrap() = Some(WriteError::Aws(AwsError {
        operation: "CreateRoute",
        code: Some("UnauthorizedOperation".into()),
        message: "no".into(),
        retry: RetryClass::Permanent,
    }));
    ec2.tables.lock().unwrap()[0].routes.push(Route {
        destination: Destination::Cidr("10.2.0.0/16".parse().unwrap()),
        target: Target::new(TargetKind::NetworkInterface, "eni-2"),
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    });
    let payload = batch(&[manual("10.1.0.0/16"), manual("10.2.0.0/16")]);
    let event = trigger::sqs_batch(&payload).unwrap();
    let response = handle_batch(&syncer, Some("us-east-1"), event, later(10)).await;
    assert_eq!(failures(&response), ["m1"]);
}

/// Records the deadline leaves unstarted go back on the queue as they came, and are not
/// delivered again by SQS (which would wait out the visibility timeout and count a receive).
#[tokio::test]
async fn records_the_deadline_leaves_go_back_on_the_queue_as_they_came() {
    let ec2 = MemoryEc2::new(tables(2));
    let hand_off = Arc::new(MemoryHandOff::default());
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default())
        .with_hand_off(hand_off.clone());
    let bodies = [manual("10.1.0.0/16"), manual("10.1.0.0/16")];
    let event = trigger::sqs_batch(&batch(&bodies)).unwrap();
    let response = handle_batch(&syncer, Some("us-east-1"), event, Instant::now()).await;
    assert!(failures(&response).is_empty());
    assert_eq!(*hand_off.resent.lock().unwrap(), bodies);
    assert_eq!(ec2.take_counts(), (0, 0, 0));
}

/// A record whose work goes on in a continuation succeeds even if a table failed: SQS
/// delivering it again would fork the work (the retry and the continuation both).
#[tokio::test]
async fn a_record_whose_work_continues_is_never_also_retried() {
    let mut ec2 = MemoryEc2::new(tables(20));
    ec2.write_latency = Duration::from_millis(30);
    let hand_off = Arc::new(MemoryHandOff::default());
    let settings = SyncSettings {
        max_concurrent_writes: 1,
        ..SyncSettings::default()
    };
    let syncer =
        Syncer::new(&ec2, None::<MemoryNotifier>, settings).with_hand_off(hand_off.clone());
    let event = trigger::sqs_batch(&batch(&[manual("10.1.0.0/16")])).unwrap();
    let response = handle_batch(
        &syncer,
        Some("us-east-1"),
        event,
        Instant::now() + Duration::from_millis(200),
    )
    .await;
    assert!(failures(&response).is_empty());
    assert_eq!(hand_off.requests.lock().unwrap().len(), 1, "continued once");
    assert_eq!(*hand_off.delays.lock().unwrap(), [Duration::ZERO]);
}

/// Not an SQS batch: a direct invocation with any other shape is handled as before.
#[test]
fn only_sqs_records_make_a_batch() {
    assert!(trigger::sqs_batch(&batch(&[manual("10.1.0.0/16")])).is_some());
    assert!(trigger::sqs_batch(&manual("10.1.0.0/16")).is_none());
    let sns_like = json!({"Records": [{"EventSource": "aws:sns"}]}).to_string();
    assert!(trigger::sqs_batch(&sns_like).is_none());
    assert!(trigger::sqs_batch("[]").is_none());
}
