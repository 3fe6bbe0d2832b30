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

/// A CloudTrail CreateRoute event of `destination -> eni` in the main table, made at
/// `time` (RFC 3339).
fn create_route(destination: &str, eni: &str, time: &str) -> String {
    json!({
        "version": "0", "id": "e", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2", "account": "123456789012", "time": time, "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventSource": "ec2.amazonaws.com", "eventName": "CreateRoute",
            "awsRegion": "us-east-1", "eventTime": time, "eventID": format!("id-{destination}"),
            "userIdentity": {"arn": "arn:aws:sts::123456789012:assumed-role/Failover/x"},
            "requestParameters": {"routeTableId": MAIN, "destinationCidrBlock": destination,
                                  "networkInterfaceId": eni},
            "responseElements": {"_return": true}
        }
    })
    .to_string()
}

const AN_HOUR_AGO: &str = "2026-01-01T00:00:00Z";

fn main_routes(ec2: &MemoryEc2, routes: &[(&str, Target)]) {
    let mut tables = ec2.tables.lock().unwrap();
    for (destination, target) in routes {
        tables[0].routes.push(Route {
            destination: Destination::Cidr(destination.parse().unwrap()),
            target: target.clone(),
            state: RouteState::Active,
            origin: RouteOrigin::CreateRoute,
        });
    }
}

/// A failover's route events, delivered together, are one request: one read of the VPC,
/// one plan for all their destinations, one check, one notice. A destination the rules
/// refuse is refused on its own, without failing the record or the others.
#[tokio::test]
async fn route_events_of_one_main_table_are_coalesced() {
    let ec2 = MemoryEc2::new(tables(3));
    let eni = |id: &str| Target::new(TargetKind::NetworkInterface, id);
    main_routes(
        &ec2,
        &[
            ("10.2.0.0/16", eni("eni-2")),
            ("10.3.0.0/16", eni("eni-2")),
            ("10.4.0.0/16", eni("eni-2")),
            (
                "10.5.0.0/16",
                Target::new(TargetKind::InternetGateway, "igw-1"),
            ),
        ],
    );
    let notices = MemoryNotifier::default();
    let syncer = Syncer::new(&ec2, Some(&notices), SyncSettings::default());
    let bodies: Vec<String> = ["10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16", "10.5.0.0/16"]
        .iter()
        .map(|d| create_route(d, "eni-2", AN_HOUR_AGO))
        .collect();
    let event = trigger::sqs_batch(&batch(&bodies)).unwrap();
    let response = handle_batch(&syncer, Some("us-east-1"), event, later(10)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        ec2.take_counts(),
        (1, 2, 9),
        "cold: the table once, the VPC once and once to check; 3 routes x 3 tables"
    );
    let sent = notices.sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "one notice for the batch");
    assert!(
        sent[0].subject.contains("9 route changes"),
        "{}",
        sent[0].subject
    );
    assert!(
        sent[0].body.contains("4 route events of one batch"),
        "{}",
        sent[0].body
    );
    for table in ec2.snapshot().iter().filter(|t| !t.is_main) {
        assert_eq!(
            table.routes.len(),
            3,
            "{}: the ENI routes, not the igw one",
            table.id
        );
    }
}

/// Events of two main tables make two requests; a single event stays a request of its own.
#[tokio::test]
async fn each_main_table_is_its_own_request() {
    let mut all = tables(1);
    all.push(RouteTable::new(
        "rtb-20000000000000000",
        "vpc-0000000000000000b",
        true,
        vec![],
    ));
    all.push(RouteTable::new(
        "rtb-20000000000000001",
        "vpc-0000000000000000b",
        false,
        vec![],
    ));
    let ec2 = MemoryEc2::new(all);
    let eni = Target::new(TargetKind::NetworkInterface, "eni-2");
    main_routes(
        &ec2,
        &[("10.2.0.0/16", eni.clone()), ("10.3.0.0/16", eni.clone())],
    );
    ec2.tables.lock().unwrap()[2].routes.push(Route {
        destination: Destination::Cidr("10.9.0.0/16".parse().unwrap()),
        target: eni,
        state: RouteState::Active,
        origin: RouteOrigin::CreateRoute,
    });
    let notices = MemoryNotifier::default();
    let syncer = Syncer::new(&ec2, Some(&notices), SyncSettings::default());
    let other =
        create_route("10.9.0.0/16", "eni-2", AN_HOUR_AGO).replace(MAIN, "rtb-20000000000000000");
    let bodies = [
        create_route("10.2.0.0/16", "eni-2", AN_HOUR_AGO),
        other,
        create_route("10.3.0.0/16", "eni-2", AN_HOUR_AGO),
    ];
    let event = trigger::sqs_batch(&batch(&bodies)).unwrap();
    let response = handle_batch(&syncer, Some("us-east-1"), event, later(10)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(notices.sent.lock().unwrap().len(), 2, "one per main table");
    assert_eq!(ec2.take_counts().2, 3);
}

/// A fresh event of the batch that EC2's reads do not show yet is never decided from that
/// read: it is handed on alone (waiting once more), and the others are synced at once.
#[tokio::test]
async fn a_waiting_event_of_a_batch_goes_on_alone() {
    let ec2 = MemoryEc2::new(tables(2));
    let eni = Target::new(TargetKind::NetworkInterface, "eni-2");
    main_routes(&ec2, &[("10.2.0.0/16", eni)]);
    let hand_off = Arc::new(MemoryHandOff::default());
    let settings = SyncSettings {
        consistency_pause: Duration::from_millis(10),
        ..SyncSettings::default()
    };
    let syncer =
        Syncer::new(&ec2, None::<MemoryNotifier>, settings).with_hand_off(hand_off.clone());
    let now = chrono::Utc::now().to_rfc3339();
    let bodies = [
        create_route("10.2.0.0/16", "eni-2", &now),
        // The main table does not show this one yet.
        create_route("10.3.0.0/16", "eni-3", &now),
    ];
    let event = trigger::sqs_batch(&batch(&bodies)).unwrap();
    let response = handle_batch(&syncer, Some("us-east-1"), event, later(10)).await;
    assert!(failures(&response).is_empty());
    let handed = hand_off.requests.lock().unwrap().clone();
    assert_eq!(handed.len(), 1, "{handed:?}");
    assert!(
        matches!(&handed[0].subject, sync_routes::domain::request::Subject::Route { destination, .. }
            if destination.to_string() == "10.3.0.0/16"),
        "{handed:?}"
    );
    assert!(matches!(
        handed[0].source,
        sync_routes::domain::request::RequestSource::CloudTrail { waits: 1, .. }
    ));
    for table in ec2.snapshot().iter().filter(|t| !t.is_main) {
        assert_eq!(table.routes.len(), 1, "10.2.0.0/16 synced, 10.3.0.0/16 not");
    }
}

/// Coalesced events that the deadline leaves unstarted go back on the queue as one message
/// naming all their destinations, which parses back to one request for the main table.
#[tokio::test]
async fn a_coalesced_batch_the_deadline_leaves_goes_back_as_one_message() {
    let ec2 = MemoryEc2::new(tables(2));
    let hand_off = Arc::new(MemoryHandOff::default());
    let syncer = Syncer::new(&ec2, None::<MemoryNotifier>, SyncSettings::default())
        .with_hand_off(hand_off.clone());
    let bodies = [
        create_route("10.2.0.0/16", "eni-2", AN_HOUR_AGO),
        create_route("10.3.0.0/16", "eni-2", AN_HOUR_AGO),
    ];
    let event = trigger::sqs_batch(&batch(&bodies)).unwrap();
    let response = handle_batch(&syncer, Some("us-east-1"), event, Instant::now()).await;
    assert!(failures(&response).is_empty());
    let resent = hand_off.resent.lock().unwrap().clone();
    assert_eq!(resent.len(), 1, "{resent:?}");
    let back: serde_json::Value = serde_json::from_str(&resent[0]).unwrap();
    assert_eq!(back["route-table-id"], MAIN);
    assert_eq!(back["destinations"], json!(["10.2.0.0/16", "10.3.0.0/16"]));
    match trigger::parse(&resent[0], Some("us-east-1")).unwrap() {
        trigger::Trigger::Sync(request) => assert!(matches!(
            request.subject,
            sync_routes::domain::request::Subject::Routes { ref routes, .. } if routes.len() == 2
        )),
        other => panic!("{other:?}"),
    }
    assert_eq!(ec2.take_counts(), (0, 0, 0));
}
