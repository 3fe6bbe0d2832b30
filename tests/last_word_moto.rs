//! The last word wins, end to end against moto behind the EC2-faithful fault proxy: two
//! engines (two function processes) on one VPC during a failback, reads that lag the
//! writes, a table deleted between the read and the write, and gateway endpoint routes.
//! Each test checks the routes in moto afterwards, the calls made and the notices sent.

mod common;

use std::time::{Duration, SystemTime};

use common::{
    custom_targets, handle, moto_ec2, prefix_list, put_route, route_target, sns_topic,
    syncer_with_env, Proxy, Vpc,
};
use serde_json::{json, Value};
use sync_routes::domain::report::{Outcome, TableActionTaken};

const DEST: &str = "10.100.0.0/16";

/// A CloudTrail ReplaceRoute record made `age` ago.
fn replace_event(table: &str, eni: &str, age: Duration) -> String {
    let time = chrono::DateTime::<chrono::Utc>::from(SystemTime::now() - age).to_rfc3339();
    let mut event: Value = serde_json::from_str(&common::cloudtrail(
        "ReplaceRoute",
        json!({"routeTableId": table, "destinationCidrBlock": DEST, "networkInterfaceId": eni}),
        json!({"_return": true}),
    ))
    .unwrap();
    event["time"] = time.clone().into();
    event["detail"]["eventTime"] = time.into();
    event.to_string()
}

const OLD: Duration = Duration::from_secs(3600);

/// Every table, main and custom, routes DEST to `eni` (written straight into moto).
async fn all_on(ec2: &aws_sdk_ec2::Client, vpc: &Vpc, eni: &str) {
    put_route(ec2, &vpc.main, DEST, eni).await;
    for table in &vpc.customs {
        put_route(ec2, table, DEST, eni).await;
    }
}

/// Subjects of the notices the function published through the proxy.
fn published(proxy: &Proxy) -> Vec<String> {
    proxy
        .params("Publish")
        .iter()
        .map(|p| p["Subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Issue 19's failback through the real SDK: process A moves 8 tables to eni-B one write
/// at a time, each ReplaceRoute taking 150 ms (a throttled account). After its second
/// write the health check fails back to eni-A and process B handles that event while A is
/// still writing eni-B into the rest. Every table ends on eni-A, and neither report fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failback_during_a_failover_ends_on_the_last_word_with_two_processes() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build_with(&ec2, 8).await;
    let (eni_a, eni_b) = (vpc.enis[0].clone(), vpc.enis[1].clone());
    all_on(&ec2, &vpc, &eni_a).await;
    let proxy = Proxy::start();
    proxy.configure(json!({
        "strict_routes": true,
        "inject": [{"action": "ReplaceRoute", "delay_ms": 150, "times": -1}],
    }));
    let env = [("SYNC_MAX_CONCURRENT_WRITES", "1")];
    let a = syncer_with_env(&proxy, &env).await;
    let b = syncer_with_env(&proxy, &env).await;

    put_route(&ec2, &vpc.main, DEST, &eni_b).await; // the failover
    let failover_event = replace_event(&vpc.main, &eni_b, OLD);
    let failover = handle(&a, &failover_event);
    let failback_event = replace_event(&vpc.main, &eni_a, OLD);
    let failback = async {
        // A's read, then two 150 ms writes.
        tokio::time::sleep(Duration::from_millis(400)).await;
        put_route(&ec2, &vpc.main, DEST, &eni_a).await;
        handle(&b, &failback_event).await
    };
    let (report_a, mut report_b) = tokio::join!(failover, failback);
    // B can chase A's stale writes for its three checks and end `failed` ("still changing":
    // with no hand-off here); Lambda then retries the event, as here.
    if report_b.is_failure() {
        assert!(report_b.message.contains("run it again"), "{report_b:#?}");
        report_b = handle(&b, &failback_event).await;
    }

    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(eni_a.clone()); 8],
        "every table on the main table's last word\nA: {report_a:#?}\nB: {report_b:#?}"
    );
    assert!(!report_a.is_failure() && !report_b.is_failure());
    assert_eq!(
        report_a.target.as_deref(),
        Some(eni_a.as_str()),
        "{report_a:#?}"
    );
    assert!(
        report_a.calls.describe_route_tables >= 2,
        "A read again after writing: {:?}",
        report_a.calls
    );
    assert!(
        report_a
            .tables
            .iter()
            .any(|t| t.reason.as_deref().unwrap_or("").contains("written again")),
        "A's report says it wrote some tables again: {report_a:#?}"
    );
}

/// A table Terraform deletes between the function's read and its write: `skipped` with code
/// `table-deleted`; the other tables are synced; no FAILED notice.
#[tokio::test]
async fn a_table_deleted_between_the_read_and_the_write_is_skipped() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let topic = sns_topic().await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let proxy = Proxy::start();
    proxy.configure(json!({
        "strict_routes": true,
        "delete_before_write": [{"route_table_id": vpc.customs[2]}],
    }));
    let syncer = syncer_with_env(&proxy, &[("SNS_TOPIC_ARN", topic.as_str())]).await;
    let event = common::cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]);
    let report = handle(&syncer, &event).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    let deleted = report
        .tables
        .iter()
        .find(|t| t.route_table_id == vpc.customs[2])
        .unwrap();
    assert_eq!(deleted.action, TableActionTaken::Skipped);
    assert_eq!(deleted.code.as_deref(), Some("table-deleted"));
    assert_eq!(report.counts.created, 3);
    for (i, table) in vpc.customs.iter().enumerate() {
        let want = (i != 2).then(|| vpc.enis[0].clone());
        assert_eq!(route_target(&ec2, table, DEST).await, want, "{table}");
    }
    let subjects = published(&proxy);
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert!(!subjects[0].contains("FAILED"), "{subjects:?}");
}

/// The failover script's ReplaceRoute in the main table, through EC2 (the proxy), so that
/// it lags like any other write.
async fn fail_over_through_ec2(proxy: &Proxy, vpc: &Vpc, eni: &str) {
    aws_sdk_ec2::Client::new(&common::sdk_config(&proxy.url).await)
        .replace_route()
        .route_table_id(&vpc.main)
        .destination_cidr_block(DEST)
        .network_interface_id(eni)
        .send()
        .await
        .unwrap();
}

/// EC2's reads lag its writes by 2 s (the fault proxy's read-lag mode): a fresh ReplaceRoute
/// is read again with back-off until the read shows it, then synced; nothing is written
/// from the stale read.
#[tokio::test]
async fn a_fresh_event_is_synced_once_the_lagging_read_shows_it() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let (eni_a, eni_b) = (vpc.enis[0].clone(), vpc.enis[1].clone());
    all_on(&ec2, &vpc, &eni_a).await;
    let proxy = Proxy::start();
    proxy.configure(json!({"strict_routes": true, "read_lag_s": 2}));
    let syncer = syncer_with_env(&proxy, &[]).await;
    fail_over_through_ec2(&proxy, &vpc, &eni_b).await;
    // Counted by difference: a reset would also forget the write that still lags.
    let (reads, replaces) = (
        proxy.count("DescribeRouteTables"),
        proxy.count("ReplaceRoute"),
    );
    let report = handle(&syncer, &replace_event(&vpc.main, &eni_b, Duration::ZERO)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.replaced, 4);
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(eni_b.clone()); 4]
    );
    // A cold event: the table alone, its VPC (lagging), again at 1 s (lagging) and at 3 s,
    // and the check after writing.
    assert_eq!(
        proxy.count("DescribeRouteTables") - reads,
        5,
        "{:?}",
        report.calls
    );
    assert_eq!(
        proxy.count("ReplaceRoute") - replaces,
        4,
        "no write from the stale reads"
    );
}

/// Reads that lag longer than the back-off: the event is `waiting-for-ec2`, nothing is
/// written, and the invocation does not fail (it is handed on, on Lambda).
#[tokio::test]
async fn a_fresh_event_that_ec2_still_contradicts_waits_and_writes_nothing() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let (eni_a, eni_b) = (vpc.enis[0].clone(), vpc.enis[1].clone());
    all_on(&ec2, &vpc, &eni_a).await;
    let proxy = Proxy::start();
    proxy.configure(json!({"strict_routes": true, "read_lag_s": 30}));
    let syncer = syncer_with_env(&proxy, &[]).await;
    fail_over_through_ec2(&proxy, &vpc, &eni_b).await;
    let (reads, writes) = (proxy.count("DescribeRouteTables"), proxy.writes());
    let report = handle(&syncer, &replace_event(&vpc.main, &eni_b, Duration::ZERO)).await;
    assert_eq!(report.outcome, Outcome::WaitingForEc2, "{report:#?}");
    assert!(!report.is_failure());
    assert_eq!(proxy.writes() - writes, 0);
    assert_eq!(
        proxy.count("DescribeRouteTables") - reads,
        5,
        "the table, its VPC, and three more reads of the VPC"
    );
    assert_eq!(custom_targets(&ec2, &vpc, DEST).await, vec![Some(eni_a); 4]);
}

/// An S3 gateway endpoint's route reads like a GWLB endpoint route (`pl- -> vpce-`, origin
/// CreateRoute). With `vpc-endpoint` routes synced, the GWLB route is copied (written with
/// `VpcEndpointId`) and the gateway endpoint's is not, after one DescribeVpcEndpoints that
/// the next sweep does not repeat. A request naming it is refused with its reason.
#[tokio::test]
async fn gateway_endpoint_routes_are_never_copied_and_gwlb_routes_are() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let s3 = ec2
        .create_vpc_endpoint()
        .vpc_id(&vpc.id)
        .service_name("com.amazonaws.us-east-1.s3")
        .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::Gateway)
        .route_table_ids(&vpc.main)
        .send()
        .await
        .unwrap()
        .vpc_endpoint
        .unwrap();
    let gwlb = ec2
        .create_vpc_endpoint()
        .vpc_id(&vpc.id)
        .service_name("com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0")
        .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::GatewayLoadBalancer)
        .send()
        .await
        .unwrap()
        .vpc_endpoint
        .unwrap();
    let gwlb_id = gwlb.vpc_endpoint_id.unwrap();
    let inspected = prefix_list(&ec2).await;
    ec2.create_route()
        .route_table_id(&vpc.main)
        .destination_prefix_list_id(&inspected)
        .vpc_endpoint_id(&gwlb_id)
        .send()
        .await
        .unwrap();
    let s3_list = ec2
        .describe_route_tables()
        .route_table_ids(&vpc.main)
        .send()
        .await
        .unwrap()
        .route_tables()[0]
        .routes()
        .iter()
        .find(|r| r.gateway_id() == s3.vpc_endpoint_id.as_deref())
        .and_then(|r| r.destination_prefix_list_id())
        .expect("moto shows the gateway endpoint's route in the main table")
        .to_owned();

    let proxy = Proxy::start();
    proxy.configure(json!({"strict_routes": true}));
    let syncer = syncer_with_env(
        &proxy,
        &[
            ("SYNC_TARGET_KINDS", "network-interface,vpc-endpoint"),
            ("SYNC_VPC_IDS", vpc.id.as_str()),
        ],
    )
    .await;
    let reconcile = json!({"reconcile": true, "vpc-id": vpc.id}).to_string();
    let report = handle(&syncer, &reconcile).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.failed, 0);
    let created: Vec<(String, String)> = proxy
        .params("CreateRoute")
        .iter()
        .map(|p| {
            (
                p["DestinationPrefixListId"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                p["VpcEndpointId"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        created,
        vec![(inspected.clone(), gwlb_id.clone()); 4],
        "only the GWLB route"
    );
    assert_eq!(proxy.count("DescribeVpcEndpoints"), 1);
    for table in &vpc.customs {
        assert_eq!(route_target(&ec2, table, &s3_list).await, None, "{table}");
        assert_eq!(
            route_target(&ec2, table, &inspected).await.as_deref(),
            Some(gwlb_id.as_str())
        );
    }

    proxy.reset_counts();
    let again = handle(&syncer, &reconcile).await;
    assert_eq!(again.outcome, Outcome::Unchanged, "{again:#?}");
    assert_eq!(
        proxy.count("DescribeVpcEndpoints"),
        0,
        "the endpoint types are known"
    );

    let named =
        json!({"route-table-id": vpc.main, "destination-prefix-list-id": s3_list}).to_string();
    let refused = handle(&syncer, &named).await;
    assert_eq!(refused.outcome, Outcome::Refused, "{refused:#?}");
    assert_eq!(refused.reason.as_deref(), Some("gateway-endpoint-route"));
    assert_eq!(proxy.writes(), 0);

    // With the default kinds the endpoint types are never asked for.
    let default = syncer_with_env(&proxy, &[]).await;
    proxy.reset_counts();
    handle(&default, &reconcile).await;
    assert_eq!(proxy.count("DescribeVpcEndpoints"), 0);
}

/// Terraform destroys a whole VPC during a sweep (the fault proxy deletes its tables and the
/// VPC just before the sweep's first write there): that VPC's pairs are skipped as
/// `table-deleted`, the other VPC is synced, and the sweep succeeds with no FAILED notice.
#[tokio::test]
async fn a_vpc_deleted_during_a_sweep_fails_nothing() {
    let ec2 = moto_ec2().await;
    let doomed = Vpc::build_with(&ec2, 2).await;
    let kept = Vpc::build_with(&ec2, 2).await;
    let topic = sns_topic().await;
    put_route(&ec2, &doomed.main, DEST, &doomed.enis[0]).await;
    put_route(&ec2, &kept.main, DEST, &kept.enis[0]).await;
    let proxy = Proxy::start();
    proxy.configure(json!({
        "strict_routes": true,
        "delete_before_write": [{"vpc_id": doomed.id}],
    }));
    let scope = format!("{},{}", doomed.id, kept.id);
    let syncer = syncer_with_env(
        &proxy,
        &[
            ("SNS_TOPIC_ARN", topic.as_str()),
            ("SYNC_VPC_IDS", scope.as_str()),
        ],
    )
    .await;
    let sweep =
        std::fs::read_to_string(common::repo().join("events/scheduled-sweep.json")).unwrap();
    let report = handle(&syncer, &sweep).await;
    assert!(!report.is_failure(), "{report:#?}");
    assert_eq!(report.counts.failed, 0);
    let of = |vpc: &Vpc| {
        report
            .tables
            .iter()
            .filter(|t| t.vpc_id == vpc.id)
            .map(|t| (t.action, t.code.clone()))
            .collect::<Vec<_>>()
    };
    assert!(
        of(&doomed)
            .iter()
            .all(|(a, c)| *a == TableActionTaken::Skipped && c.as_deref() == Some("table-deleted")),
        "{report:#?}"
    );
    assert_eq!(of(&kept), vec![(TableActionTaken::Created, None); 2]);
    assert_eq!(
        custom_targets(&ec2, &kept, DEST).await,
        vec![Some(kept.enis[0].clone()); 2]
    );
    assert_eq!(proxy.calls()["deleted_vpcs"], json!([doomed.id]));
    let subjects = published(&proxy);
    assert!(
        subjects.iter().all(|s| !s.contains("FAILED")),
        "{subjects:?}"
    );
}
