//! The handler against moto, through the EC2-faithful fault proxy: the routes in every
//! table afterwards, the calls made, the notice published.

mod common;

use common::*;
use serde_json::json;
use sync_routes::domain::report::{NoticeStatus, Outcome, TableActionTaken};

const DEST: &str = "10.100.0.0/16";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_in_the_main_table_reaches_all_four_custom_tables() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;

    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let report = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;

    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(actions(&report), vec![TableActionTaken::Created; 4]);
    assert_eq!(report.vpc_id.as_deref(), Some(vpc.id.as_str()));
    assert_eq!(
        report.main_route_table_id.as_deref(),
        Some(vpc.main.as_str())
    );
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[0].clone()); 4]
    );
    // Cold: the table alone (is it main? which VPC?), then the VPC's tables, then the VPC's
    // tables again to check the writes.
    assert_eq!(proxy.count("DescribeRouteTables"), 3);
    assert_eq!(proxy.count("CreateRoute"), 4);
    assert_eq!(proxy.count("ReplaceRoute"), 0);
    assert_eq!(report.notice, NoticeStatus::Disabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_followed_with_one_read_when_warm_and_duplicates_write_nothing() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;
    proxy.reset_counts();

    put_route(&ec2, &vpc.main, DEST, &vpc.enis[1]).await;
    let replace = cloudtrail_event("ReplaceRoute", &vpc.main, DEST, &vpc.enis[1]);
    let report = handle(&syncer, &replace).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(actions(&report), vec![TableActionTaken::Replaced; 4]);
    assert!(report
        .tables
        .iter()
        .all(|t| t.before.as_deref() == Some(vpc.enis[0].as_str())
            && t.after.as_deref() == Some(vpc.enis[1].as_str())));
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[1].clone()); 4]
    );
    assert_eq!(
        proxy.count("DescribeRouteTables"),
        2,
        "warm: one read per event, one more to check the writes"
    );
    assert_eq!(proxy.count("ReplaceRoute"), 4);

    proxy.reset_counts();
    let again = handle(&syncer, &replace).await;
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!(actions(&again), vec![TableActionTaken::Unchanged; 4]);
    assert_eq!(proxy.count("DescribeRouteTables"), 1);
    assert_eq!(proxy.writes(), 0, "a duplicate event writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_route_to_another_kind_of_next_hop_is_never_clobbered() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    put_gateway_route(&ec2, &vpc.customs[2], DEST, &vpc.igw).await;

    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let report = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;

    assert_eq!(report.outcome, Outcome::Synced);
    let skipped = &report.tables[2];
    assert_eq!(skipped.action, TableActionTaken::Skipped);
    assert_eq!(skipped.before.as_deref(), Some(vpc.igw.as_str()));
    assert!(skipped
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("different kind of next hop"));
    let targets = custom_targets(&ec2, &vpc, DEST).await;
    assert_eq!(
        targets[2].as_deref(),
        Some(vpc.igw.as_str()),
        "the IGW route is untouched"
    );
    for i in [0, 1, 3] {
        assert_eq!(targets[i].as_deref(), Some(vpc.enis[0].as_str()));
    }
    assert_eq!(proxy.writes(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_names_every_table_that_would_change_and_changes_none() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[1]).await;
    put_route(&ec2, &vpc.customs[0], DEST, &vpc.enis[0]).await;
    put_route(&ec2, &vpc.customs[1], DEST, &vpc.enis[1]).await;

    let request = json!({"vpc-id": vpc.id, "route-table-id": vpc.main,
                         "destination-cidr-block": DEST, "dry-run": true});
    let report = handle(&syncer, &request.to_string()).await;

    assert_eq!(report.outcome, Outcome::DryRun, "{report:#?}");
    assert!(report.dry_run);
    assert_eq!(
        actions(&report),
        vec![
            TableActionTaken::WouldReplace,
            TableActionTaken::Unchanged,
            TableActionTaken::WouldCreate,
            TableActionTaken::WouldCreate
        ]
    );
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![
            Some(vpc.enis[0].clone()),
            Some(vpc.enis[1].clone()),
            None,
            None
        ],
        "nothing changed"
    );
    // The writes were sent with DryRun=true (EC2 checks permissions) and nothing else.
    let sent: Vec<_> = proxy
        .params("CreateRoute")
        .into_iter()
        .chain(proxy.params("ReplaceRoute"))
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|p| p["DryRun"] == "true"), "{sent:?}");
    assert_eq!(
        proxy.count("DescribeRouteTables"),
        1,
        "a manual request names its VPC"
    );
    assert_eq!(report.notice, NoticeStatus::NotNeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ineligible_routes_are_refused_with_a_specific_reason_and_no_write() {
    let Scene { ec2, vpc, proxy, syncer, .. } = Scene::start(|vpc| json!({
        "strict_routes": true,
        "rewrite_routes": [
            {"route_table_id": vpc.main, "destination": "10.1.0.0/16", "state": "blackhole"},
            {"route_table_id": vpc.main, "destination": "10.2.0.0/16", "origin": "EnableVgwRoutePropagation"}
        ]
    })).await;
    put_route(&ec2, &vpc.main, "10.1.0.0/16", &vpc.enis[0]).await;
    put_route(&ec2, &vpc.main, "10.2.0.0/16", &vpc.enis[0]).await;
    put_gateway_route(&ec2, &vpc.main, "0.0.0.0/0", &vpc.igw).await;
    // Moto never blackholes nor propagates: the proxy rewrites what EC2 would report.

    let cases = [
        ("10.1.0.0/16", "route-not-active", "blackhole"),
        ("10.2.0.0/16", "propagated-route", "propagated"),
        ("0.0.0.0/0", "target-kind-not-allowed", "igw-"),
        ("10.0.0.0/16", "local-route", "local route"),
        (
            "10.9.0.0/16",
            "route-not-in-main-table",
            "no route for 10.9.0.0/16",
        ),
    ];
    for (cidr, code, words) in cases {
        let report = handle(
            &syncer,
            &cloudtrail_event("CreateRoute", &vpc.main, cidr, &vpc.enis[0]),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Refused, "{cidr}: {report:#?}");
        assert_eq!(report.reason.as_deref(), Some(code), "{cidr}");
        assert!(report.message.contains(words), "{cidr}: {}", report.message);
    }
    assert_eq!(proxy.writes(), 0);
    for table in &vpc.customs {
        assert_eq!(route_target(&ec2, table, "10.1.0.0/16").await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_of_our_own_write_costs_one_read_and_no_write() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    put_route(&ec2, &vpc.customs[0], DEST, &vpc.enis[0]).await;

    // Cold process: the one read of the table says it is not main.
    let cold = syncer;
    let echo = cloudtrail_event("CreateRoute", &vpc.customs[0], DEST, &vpc.enis[0]);
    let report = handle(&cold, &echo).await;
    assert_eq!(report.outcome, Outcome::Refused);
    assert_eq!(report.reason.as_deref(), Some("not-main-table"));
    assert_eq!((proxy.count("DescribeRouteTables"), proxy.writes()), (1, 0));

    // Warm process: one read of the VPC's tables, and still no write.
    proxy.reset_counts();
    let report = handle(&cold, &echo).await;
    assert_eq!(report.reason.as_deref(), Some("not-main-table"));
    assert!(
        report
            .message
            .contains(&format!("the main table is {}", vpc.main)),
        "{}",
        report.message
    );
    assert_eq!((proxy.count("DescribeRouteTables"), proxy.writes()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_answers_are_followed_to_the_last_table() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| json!({"strict_routes": true, "page_size": 2})).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;

    let request =
        json!({"vpc-id": vpc.id, "route-table-id": vpc.main, "destination-cidr-block": DEST});
    let report = handle(&syncer, &request.to_string()).await;

    assert_eq!(
        actions(&report),
        vec![TableActionTaken::Created; 4],
        "{report:#?}"
    );
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[0].clone()); 4]
    );
    assert_eq!(
        proxy.count("DescribeRouteTables"),
        6,
        "5 tables in pages of 2, for the read and for the check after writing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_notice_lists_every_table_with_before_and_after() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        topic,
    } = Scene::with_notices(|_| faithful()).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[1]).await;
    put_route(&ec2, &vpc.customs[0], DEST, &vpc.enis[0]).await;

    let report = handle(
        &syncer,
        &cloudtrail_event("ReplaceRoute", &vpc.main, DEST, &vpc.enis[1]),
    )
    .await;
    assert_eq!(report.notice, NoticeStatus::Published, "{report:#?}");

    let published = proxy.params("Publish");
    assert_eq!(published.len(), 1, "one notice per request");
    let notice = &published[0];
    assert_eq!(notice["TopicArn"], topic.as_str());
    let subject = notice["Subject"].as_str().unwrap();
    assert!(subject.len() < 100 && subject.is_ascii(), "{subject}");
    assert!(
        subject.contains(DEST) && subject.contains(&vpc.id),
        "{subject}"
    );
    let body = notice["Message"].as_str().unwrap();
    assert!(
        body.contains(&format!(
            "{}  replaced      {} -> {}",
            vpc.customs[0], vpc.enis[0], vpc.enis[1]
        )),
        "{body}"
    );
    for table in &vpc.customs[1..] {
        assert!(
            body.contains(&format!("{table}  created       (none) -> {}", vpc.enis[1])),
            "{body}"
        );
    }
    assert!(
        body.contains("ReplaceRoute by arn:aws:iam::123456789012:user/ops"),
        "{body}"
    );
    let attributes = notice.to_string();
    assert!(
        attributes.contains("\"status\"") && attributes.contains("\"synced\""),
        "{attributes}"
    );

    // A no-op publishes nothing.
    proxy.reset_counts();
    let again = handle(
        &syncer,
        &cloudtrail_event("ReplaceRoute", &vpc.main, DEST, &vpc.enis[1]),
    )
    .await;
    assert_eq!(again.notice, NoticeStatus::NotNeeded);
    assert_eq!(proxy.count("Publish"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_still_sync_when_sns_is_down() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::with_notices(|_| {
        json!({"strict_routes": true,
        "inject": [{"action": "Publish", "status": 500, "code": "InternalError", "times": -1}]})
    })
    .await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;

    let report = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;

    assert_eq!(report.outcome, Outcome::Synced);
    assert_eq!(report.notice, NoticeStatus::Failed);
    assert!(!report.is_failure(), "a lost notice does not fail the sync");
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[0].clone()); 4]
    );
    assert!(proxy.count("Publish") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_write_faults_are_retried_and_a_table_that_keeps_failing_fails_the_invocation() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::with_notices(|vpc| {
        json!({"strict_routes": true, "inject": [
            {"action": "CreateRoute", "status": 503, "code": "Unavailable", "times": 2,
             "match": {"RouteTableId": vpc.customs[0]}},
            {"action": "CreateRoute", "status": 500, "code": "InternalError", "times": -1,
             "match": {"RouteTableId": vpc.customs[1]}}
        ]})
    })
    .await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;

    let report = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;

    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    assert!(report.is_failure(), "Lambda must retry and keep the event");
    assert_eq!(
        actions(&report),
        vec![
            TableActionTaken::Created,
            TableActionTaken::Failed,
            TableActionTaken::Created,
            TableActionTaken::Created
        ]
    );
    assert!(report.tables[1]
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("InternalError"));
    let targets = custom_targets(&ec2, &vpc, DEST).await;
    assert_eq!(targets[1], None);
    for i in [0, 2, 3] {
        assert_eq!(
            targets[i].as_deref(),
            Some(vpc.enis[0].as_str()),
            "table {i}"
        );
    }
    let to = |table: &str| {
        proxy
            .params("CreateRoute")
            .iter()
            .filter(|p| p["RouteTableId"] == table)
            .count()
    };
    assert_eq!(to(&vpc.customs[0]), 3, "two faults, then success");
    assert_eq!(to(&vpc.customs[1]), 4, "four attempts, then reported");
    // The failure is in the notice too.
    assert_eq!(report.notice, NoticeStatus::Published);
    let notice = &proxy.params("Publish")[0];
    assert!(
        notice["Subject"]
            .as_str()
            .unwrap()
            .starts_with("sync-routes FAILED"),
        "{notice}"
    );

    // Lambda's retry of the same event finishes the job once the fault clears.
    proxy.configure(faithful());
    let retry = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;
    assert_eq!(retry.outcome, Outcome::Synced);
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[0].clone()); 4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_meets_an_existing_route_looks_again_before_replacing() {
    let Scene { ec2, vpc, proxy: _proxy, syncer, .. } = Scene::start(|vpc| json!({"strict_routes": true, "inject": [
        {"action": "CreateRoute", "delay_ms": 400, "times": 1, "match": {"RouteTableId": vpc.customs[0]}},
        {"action": "CreateRoute", "delay_ms": 400, "times": 1, "match": {"RouteTableId": vpc.customs[1]}}
    ]})).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    // While our CreateRoute to customs[0] is in flight, other tooling writes the same
    // destination there to another ENI; while the one to customs[1] is, to the IGW.

    let event = cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]);
    let (report, ()) = tokio::join!(handle(&syncer, &event), async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        put_route(&ec2, &vpc.customs[0], DEST, &vpc.enis[2]).await;
        put_gateway_route(&ec2, &vpc.customs[1], DEST, &vpc.igw).await;
    });

    assert_eq!(
        report.tables[0].action,
        TableActionTaken::Replaced,
        "{report:#?}"
    );
    assert_eq!(
        report.tables[1].action,
        TableActionTaken::Skipped,
        "{report:#?}"
    );
    let targets = custom_targets(&ec2, &vpc, DEST).await;
    assert_eq!(
        targets[0].as_deref(),
        Some(vpc.enis[0].as_str()),
        "the ENI route follows the main table"
    );
    assert_eq!(
        targets[1].as_deref(),
        Some(vpc.igw.as_str()),
        "the IGW route is never clobbered"
    );
    assert_eq!(report.outcome, Outcome::Synced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replace_on_a_route_deleted_meanwhile_creates_it() {
    let Scene { ec2, vpc, proxy: _proxy, syncer, .. } = Scene::start(|vpc| json!({"strict_routes": true, "inject": [
        {"action": "ReplaceRoute", "delay_ms": 400, "times": 1, "match": {"RouteTableId": vpc.customs[3]}}
    ]})).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[1]).await;
    for table in &vpc.customs {
        put_route(&ec2, table, DEST, &vpc.enis[0]).await;
    }

    let event = cloudtrail_event("ReplaceRoute", &vpc.main, DEST, &vpc.enis[1]);
    let (report, ()) = tokio::join!(handle(&syncer, &event), async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        ec2.delete_route()
            .route_table_id(&vpc.customs[3])
            .destination_cidr_block(DEST)
            .send()
            .await
            .expect("delete route");
    });

    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.tables[3].action, TableActionTaken::Created);
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[1].clone()); 4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicate_late_and_reordered_events_converge_on_the_main_table() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    // Two function processes, as Lambda runs concurrent invocations.
    let (one, two) = (syncer, common::syncer(&proxy, None).await);

    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let create = cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]);
    let (a, b) = tokio::join!(handle(&one, &create), handle(&two, &create));
    for report in [&a, &b] {
        assert!(!report.is_failure(), "{report:#?}");
    }
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[0].clone()); 4]
    );

    // The main table fails over twice; the events arrive late and out of order.
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[1]).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[2]).await;
    let to_c = cloudtrail_event("ReplaceRoute", &vpc.main, DEST, &vpc.enis[2]);
    let to_b = cloudtrail_event("ReplaceRoute", &vpc.main, DEST, &vpc.enis[1]);
    handle(&one, &to_c).await;
    let late = handle(&two, &to_b).await;
    handle(&one, &create).await;
    assert_eq!(
        late.target.as_deref(),
        Some(vpc.enis[2].as_str()),
        "the current state, not the event's"
    );
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[2].clone()); 4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_report_no_write_and_the_next_event_still_works() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let valid = cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]);
    let with = |path: &[&str], value: serde_json::Value| {
        let mut event: serde_json::Value = serde_json::from_str(&valid).unwrap();
        let mut at = &mut event;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        event.to_string()
    };
    let oversized = format!(
        "{{\"route-table-id\": \"{}\", \"pad\": \"{}\"}}",
        vpc.main,
        "x".repeat(300_000)
    );
    let cases: Vec<(&str, String, Outcome, &str)> = vec![
        ("empty", String::new(), Outcome::Rejected, "not JSON"),
        ("not JSON", "route please".into(), Outcome::Rejected, "not JSON"),
        ("a JSON array", "[1, 2]".into(), Outcome::Rejected, "neither an EventBridge event"),
        ("JSON of another shape", json!({"hello": "world"}).to_string(), Outcome::Rejected, "neither"),
        ("null detail", with(&["detail"], json!(null)), Outcome::Rejected, "detail is missing"),
        ("null requestParameters", with(&["detail", "requestParameters"], json!(null)), Outcome::Rejected, "requestParameters is missing"),
        ("null table id", with(&["detail", "requestParameters", "routeTableId"], json!(null)), Outcome::Rejected, "routeTableId is missing"),
        ("table id of the wrong type", with(&["detail", "requestParameters", "routeTableId"], json!(42)), Outcome::Rejected, "expected"),
        ("invalid table id", with(&["detail", "requestParameters", "routeTableId"], json!("rtb-XYZ")), Outcome::Rejected, "not a valid route table id"),
        ("invalid CIDR", with(&["detail", "requestParameters", "destinationCidrBlock"], json!("10.300.0.0/16")), Outcome::Rejected, "not a valid CIDR"),
        ("manual: host bits set", json!({"route-table-id": vpc.main, "destination-cidr-block": "10.100.0.1/16"}).to_string(), Outcome::Rejected, "did you mean 10.100.0.0/16"),
        ("failed call", with(&["detail", "errorCode"], json!("UnauthorizedOperation")), Outcome::Ignored, "failed"),
        ("another region", with(&["detail", "awsRegion"], json!("eu-west-1")), Outcome::Ignored, "region eu-west-1"),
        ("another API call", with(&["detail", "eventName"], json!("CreateVpc")), Outcome::Ignored, "is none of CreateRoute"),
        ("a deletion, deletes off", with(&["detail", "eventName"], json!("DeleteRoute")), Outcome::Ignored, "SYNC_PROPAGATE_DELETES=true"),
        ("reconcile: not a bool", json!({"reconcile": "yes"}).to_string(), Outcome::Rejected, "expected a boolean"),
        ("reconcile: invalid VPC id", json!({"reconcile": true, "vpc-id": "vpc-XYZ"}).to_string(), Outcome::Rejected, "not a valid VPC id"),
        ("reconcile: unknown VPC", json!({"reconcile": true, "vpc-id": "vpc-0123456789abcdef0"}).to_string(), Outcome::Refused, "has no route tables"),
        ("new table: unknown", with(&["detail", "eventName"], json!("CreateRouteTable")), Outcome::Rejected, "responseElements.routeTable.routeTableId is missing"),
        ("unknown table", with(&["detail", "requestParameters", "routeTableId"], json!("rtb-0123456789abcdef0")), Outcome::Refused, "does not exist"),
        ("manual: unknown VPC", json!({"vpc-id": "vpc-0123456789abcdef0", "route-table-id": vpc.main, "destination-cidr-block": DEST}).to_string(), Outcome::Refused, "is not in vpc-0123456789abcdef0"),
        ("manual: misspelt key", json!({"route-table-id": vpc.main, "destination_cidr_block": DEST}).to_string(), Outcome::Rejected, "unknown field"),
        ("manual: dry-run not a bool", json!({"route-table-id": vpc.main, "destination-cidr-block": DEST, "dry-run": "yes"}).to_string(), Outcome::Rejected, "expected a boolean"),
        ("oversized", oversized, Outcome::Rejected, "the limit is 262144"),
    ];
    for (case, payload, outcome, words) in &cases {
        let report = handle(&syncer, payload).await;
        assert_eq!(report.outcome, *outcome, "{case}: {report:#?}");
        assert!(
            report.message.contains(words),
            "{case}: {:?} lacks {words:?}",
            report.message
        );
        assert!(
            !report.is_failure(),
            "{case}: bad input is a final answer, not a retry"
        );
    }
    assert_eq!(proxy.writes(), 0, "no bad input writes a route");
    for table in &vpc.customs {
        assert_eq!(route_target(&ec2, table, DEST).await, None);
    }

    let report = handle(&syncer, &valid).await;
    assert_eq!(
        report.outcome,
        Outcome::Synced,
        "the same engine handles the next event"
    );
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        vec![Some(vpc.enis[0].clone()); 4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_keeps_failing_fails_the_invocation_without_writing() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| {
        json!({"inject": [{"action": "DescribeRouteTables", "status": 503, "code": "Unavailable", "times": -1}]})
    })
    .await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;

    let report = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;

    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    assert!(report.is_failure(), "Lambda must retry the event later");
    assert!(
        report
            .message
            .starts_with("could not read the route tables"),
        "{}",
        report.message
    );
    assert!(
        report
            .error
            .as_deref()
            .unwrap_or("")
            .contains("Unavailable"),
        "{report:#?}"
    );
    assert_eq!(
        proxy.count("DescribeRouteTables"),
        4,
        "a transient fault gets 4 attempts"
    );
    assert_eq!(proxy.writes(), 0);
}
