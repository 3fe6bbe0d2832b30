//! Every trigger beyond a single route, end to end against moto through the EC2-faithful
//! fault proxy: prefix-list routes, a new table, a main-table move, a manual reconcile, the
//! scheduled sweep, the scope settings, opt-in deletes, gateway tables and what EC2 reports
//! that moto does not (firewall endpoints in GatewayId, Route Server routes).

mod common;

use common::*;
use serde_json::json;
use sync_routes::domain::report::{NoticeStatus, Outcome, TableActionTaken};

const DEST: &str = "10.100.0.0/16";

fn sample(name: &str) -> String {
    std::fs::read_to_string(repo().join("events").join(name)).expect("sample event")
}

/// VMware Cloud on AWS in managed prefix list mode: `pl- -> ENI` in the main table reaches
/// every custom table (written with DestinationPrefixListId), and re-points with the edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_list_route_is_synced_like_a_cidr_and_follows_the_edge() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    let pl = prefix_list(&ec2).await;
    put_prefix_list_route(&ec2, &vpc.main, &pl, &vpc.enis[0]).await;
    let event = |eni: &str| {
        cloudtrail(
            "CreateRoute",
            json!({"routeTableId": vpc.main, "destinationPrefixListId": pl, "networkInterfaceId": eni}),
            json!({"_return": true}),
        )
    };

    let report = handle(&syncer, &event(&vpc.enis[0])).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.destination.as_deref(), Some(pl.as_str()));
    assert_eq!(actions(&report), vec![TableActionTaken::Created; 4]);
    assert_eq!(
        custom_targets(&ec2, &vpc, &pl).await,
        vec![Some(vpc.enis[0].clone()); 4]
    );
    let written = proxy.params("CreateRoute");
    assert!(written.iter().all(
        |p| p["DestinationPrefixListId"] == pl.as_str() && p["DestinationCidrBlock"].is_null()
    ));

    // The edge moves: VMC re-points the route at another ENI.
    put_prefix_list_route(&ec2, &vpc.main, &pl, &vpc.enis[1]).await;
    let report = handle(&syncer, &event(&vpc.enis[1])).await;
    assert_eq!(actions(&report), vec![TableActionTaken::Replaced; 4]);
    assert!(report.message.contains(&pl), "{}", report.message);
    assert_eq!(
        custom_targets(&ec2, &vpc, &pl).await,
        vec![Some(vpc.enis[1].clone()); 4]
    );
}

/// CreateRouteTable: the new table gets every eligible route of the main table in one
/// pass; the other tables are not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_table_is_backfilled_from_the_main_table() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    let pl = prefix_list(&ec2).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    put_route(&ec2, &vpc.main, "10.101.0.0/16", &vpc.enis[1]).await;
    put_prefix_list_route(&ec2, &vpc.main, &pl, &vpc.enis[2]).await;
    put_gateway_route(&ec2, &vpc.main, "0.0.0.0/0", &vpc.igw).await;
    let new = ec2
        .create_route_table()
        .vpc_id(&vpc.id)
        .send()
        .await
        .unwrap()
        .route_table
        .and_then(|t| t.route_table_id)
        .unwrap();

    let event = cloudtrail(
        "CreateRouteTable",
        json!({"vpcId": vpc.id}),
        json!({"routeTable": {"routeTableId": new, "vpcId": vpc.id}}),
    );
    let report = handle(&syncer, &event).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.created, 3);
    assert_eq!(
        proxy.count("DescribeRouteTables"),
        2,
        "one read of the VPC, one to check the writes"
    );
    assert_eq!(
        proxy.writes(),
        3,
        "the ENI routes only: 0.0.0.0/0 -> igw is not eligible"
    );
    assert_eq!(
        route_target(&ec2, &new, DEST).await,
        Some(vpc.enis[0].clone())
    );
    assert_eq!(
        route_target(&ec2, &new, "10.101.0.0/16").await,
        Some(vpc.enis[1].clone())
    );
    assert_eq!(
        route_target(&ec2, &new, &pl).await,
        Some(vpc.enis[2].clone())
    );
    assert_eq!(route_target(&ec2, &new, "0.0.0.0/0").await, None);
    assert_eq!(custom_targets(&ec2, &vpc, DEST).await, vec![None; 4]);

    // The sample event names a table this emulator does not have: refused, nothing written.
    proxy.reset_counts();
    let sample = handle(&syncer, &sample("cloudtrail-create-route-table.json")).await;
    assert_eq!(sample.outcome, Outcome::Refused, "{sample:#?}");
    assert_eq!(sample.reason.as_deref(), Some("unknown-table"));
    assert_eq!(proxy.writes(), 0);
}

/// ReplaceRouteTableAssociation of the main association: the VPC follows the new main
/// table. A subnet's association change is ignored, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_main_table_move_is_followed_and_a_subnet_move_is_ignored() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    // The new main table (today customs[0]) already holds the routes it will serve.
    put_route(&ec2, &vpc.customs[0], DEST, &vpc.enis[1]).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let main_association = ec2
        .describe_route_tables()
        .route_table_ids(&vpc.main)
        .send()
        .await
        .unwrap()
        .route_tables()[0]
        .associations()
        .iter()
        .find(|a| a.main() == Some(true))
        .and_then(|a| a.route_table_association_id().map(str::to_owned))
        .unwrap();

    // First a subnet's association: nothing to do, one read.
    let subnet_move = cloudtrail(
        "ReplaceRouteTableAssociation",
        json!({"associationId": "rtbassoc-0123456789abcdef0", "routeTableId": vpc.customs[1]}),
        json!({"newAssociationId": "rtbassoc-0123456789abcdef1"}),
    );
    let report = handle(&syncer, &subnet_move).await;
    assert_eq!(report.outcome, Outcome::Ignored, "{report:#?}");
    assert_eq!(report.reason.as_deref(), Some("subnet-association-change"));
    assert!(
        report.message.contains("subnet association"),
        "{}",
        report.message
    );
    assert_eq!((proxy.count("DescribeRouteTables"), proxy.writes()), (1, 0));

    ec2.replace_route_table_association()
        .association_id(&main_association)
        .route_table_id(&vpc.customs[0])
        .send()
        .await
        .unwrap();
    proxy.reset_counts();
    let main_move = cloudtrail(
        "ReplaceRouteTableAssociation",
        json!({"associationId": main_association, "routeTableId": vpc.customs[0]}),
        json!({"newAssociationId": "rtbassoc-0123456789abcdef2"}),
    );
    let report = handle(&syncer, &main_move).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(
        report.main_route_table_id.as_deref(),
        Some(vpc.customs[0].as_str())
    );
    // The old main table is a custom table now, and follows too.
    for table in [&vpc.main, &vpc.customs[1], &vpc.customs[2], &vpc.customs[3]] {
        assert_eq!(
            route_target(&ec2, table, DEST).await,
            Some(vpc.enis[1].clone()),
            "{table}"
        );
    }
}

/// A manual reconcile and the scheduled sweep repair what a lost event left behind, write
/// only the drift, report every change by VPC, destination and table, and send one notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_and_sweep_repair_drift_and_nothing_else() {
    let Scene {
        ec2,
        vpc,
        proxy,
        topic,
        ..
    } = Scene::with_notices(|_| faithful()).await;
    let other = Vpc::build_with(&ec2, 2).await;
    // Both VPCs in scope: another test's VPCs in the same moto stay out of this sweep.
    let vpcs = format!("{},{}", vpc.id, other.id);
    let syncer = syncer_with_env(
        &proxy,
        &[
            ("SYNC_VPC_IDS", vpcs.as_str()),
            ("SNS_TOPIC_ARN", topic.as_str()),
        ],
    )
    .await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    put_route(&ec2, &vpc.main, "10.101.0.0/16", &vpc.enis[1]).await;
    for table in &vpc.customs[..3] {
        put_route(&ec2, table, DEST, &vpc.enis[0]).await;
        put_route(&ec2, table, "10.101.0.0/16", &vpc.enis[1]).await;
    }
    // Drift: customs[3] never got the routes, customs[0] still has an old next hop.
    put_route(&ec2, &vpc.customs[0], "10.101.0.0/16", &vpc.enis[2]).await;
    put_route(&ec2, &other.main, DEST, &other.enis[0]).await;

    // A dry run first: every change named, none made, no notice.
    let dry = handle(
        &syncer,
        &json!({"reconcile": true, "vpc-id": vpc.id, "dry-run": true}).to_string(),
    )
    .await;
    assert_eq!(dry.outcome, Outcome::DryRun, "{dry:#?}");
    assert_eq!(dry.counts.would_change, 3);
    assert_eq!(dry.notice, NoticeStatus::NotNeeded);
    assert_eq!(route_target(&ec2, &vpc.customs[3], DEST).await, None);

    proxy.reset_counts();
    let report = handle(
        &syncer,
        &json!({"reconcile": true, "vpc-id": vpc.id}).to_string(),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(proxy.count("DescribeRouteTables"), 2, "a read, and a check");
    assert_eq!(
        (proxy.count("CreateRoute"), proxy.count("ReplaceRoute")),
        (2, 1)
    );
    let changes: Vec<_> = report
        .tables
        .iter()
        .map(|t| {
            (
                t.route_table_id.as_str(),
                t.destination.as_deref().unwrap(),
                t.action,
            )
        })
        .collect();
    assert_eq!(changes.len(), 3, "only the changes are listed: {changes:?}");
    assert!(changes.contains(&(
        vpc.customs[0].as_str(),
        "10.101.0.0/16",
        TableActionTaken::Replaced
    )));
    assert!(changes.contains(&(vpc.customs[3].as_str(), DEST, TableActionTaken::Created)));
    assert_eq!(report.counts.unchanged, 5);
    let notice = &proxy.params("Publish")[0];
    assert!(
        notice["Subject"]
            .as_str()
            .unwrap()
            .contains("3 route changes"),
        "{notice}"
    );

    // The sweep: both VPCs in one read; only the other VPC has drift left.
    proxy.reset_counts();
    let sweep = handle(&syncer, &sample("scheduled-sweep.json")).await;
    assert_eq!(sweep.outcome, Outcome::Synced, "{sweep:#?}");
    assert_eq!(sweep.counts.vpcs, 2);
    assert_eq!(
        proxy.count("DescribeRouteTables"),
        2,
        "one read for every VPC in scope, one check of the VPC written"
    );
    let check = &proxy.params("DescribeRouteTables")[1];
    assert_eq!(check["Filter.1.Value.1"], other.id.as_str(), "{check}");
    assert!(check.get("Filter.1.Value.2").is_none(), "{check}");
    assert_eq!(proxy.writes(), 2);
    assert!(sweep.tables.iter().all(|t| t.vpc_id == other.id));
    assert_eq!(
        custom_targets(&ec2, &other, DEST).await,
        vec![Some(other.enis[0].clone()); 2]
    );
    assert_eq!(
        proxy.count("Publish"),
        1,
        "one summary per sweep that changed something"
    );

    // Nothing left: no write, no notice.
    proxy.reset_counts();
    let again = handle(&syncer, &sample("scheduled-sweep.json")).await;
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!((proxy.writes(), proxy.count("Publish")), (0, 0));
}

/// Scope: SYNC_DESTINATIONS admits routes inside its CIDRs; a table tagged
/// sync-routes:skip=true and a gateway route table are never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_scope_moves() {
    let Scene {
        ec2, vpc, proxy, ..
    } = Scene::start(|_| faithful()).await;
    let syncer = syncer_with_env(&proxy, &[("SYNC_DESTINATIONS", "10.100.0.0/14")]).await;
    ec2.create_tags()
        .resources(&vpc.customs[1])
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("sync-routes:skip")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.associate_route_table()
        .route_table_id(&vpc.customs[2])
        .gateway_id(&vpc.igw)
        .send()
        .await
        .unwrap();
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    put_route(&ec2, &vpc.main, "192.168.0.0/16", &vpc.enis[0]).await;

    let outside = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, "192.168.0.0/16", &vpc.enis[0]),
    )
    .await;
    assert_eq!(outside.outcome, Outcome::Refused, "{outside:#?}");
    assert_eq!(outside.reason.as_deref(), Some("destination-out-of-scope"));

    let report = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    let reasons: Vec<_> = report
        .tables
        .iter()
        .map(|t| (t.action, t.reason.clone().unwrap_or_default()))
        .collect();
    assert_eq!(reasons[1].0, TableActionTaken::Skipped);
    assert!(
        reasons[1].1.contains("sync-routes:skip=true"),
        "{reasons:?}"
    );
    assert_eq!(reasons[2].0, TableActionTaken::Skipped);
    assert!(reasons[2].1.contains("gateway route table"), "{reasons:?}");
    let mut written: Vec<_> = proxy
        .params("CreateRoute")
        .iter()
        .map(|p| p["RouteTableId"].as_str().unwrap().to_owned())
        .collect();
    written.sort();
    assert_eq!(written, [vpc.customs[0].clone(), vpc.customs[3].clone()]);

    // A sweep keeps to the same scope.
    proxy.reset_counts();
    let sweep = handle(
        &syncer,
        &json!({"reconcile": true, "vpc-id": vpc.id}).to_string(),
    )
    .await;
    assert_eq!(sweep.outcome, Outcome::Unchanged, "{sweep:#?}");
    assert_eq!(proxy.writes(), 0);
    assert_eq!(
        route_target(&ec2, &vpc.customs[0], "192.168.0.0/16").await,
        None
    );
}

/// Opt-in deletes: a DeleteRoute on the main table removes our copies, and only ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_route_leaves_the_custom_tables_only_when_deletes_are_on() {
    let Scene {
        ec2,
        vpc,
        proxy,
        syncer,
        ..
    } = Scene::start(|_| faithful()).await;
    let ledger = ledger_table().await;
    let on = syncer_with_env(
        &proxy,
        &[
            ("SYNC_DESTINATIONS", "10.0.0.0/8"),
            ("SYNC_PROPAGATE_DELETES", "true"),
            ("SYNC_LEDGER_TABLE", &ledger),
        ],
    )
    .await;
    put_gateway_route(&ec2, &vpc.customs[3], DEST, &vpc.igw).await;
    // sync-routes copies the route (and records the copies), then the main table loses it.
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let created = handle(
        &on,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;
    assert_eq!(created.counts.created, 3, "{created:#?}");
    ec2.delete_route()
        .route_table_id(&vpc.main)
        .destination_cidr_block(DEST)
        .send()
        .await
        .expect("delete the main route");
    proxy.reset_counts();
    let deleted = cloudtrail(
        "DeleteRoute",
        json!({"routeTableId": vpc.main, "destinationCidrBlock": DEST}),
        json!({"_return": true}),
    );
    let off = handle(&syncer, &deleted).await;
    assert_eq!(off.outcome, Outcome::Ignored, "{off:#?}");
    assert_eq!(proxy.writes(), 0);

    let report = handle(&on, &deleted).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(
        actions(&report),
        [
            TableActionTaken::Deleted,
            TableActionTaken::Deleted,
            TableActionTaken::Deleted,
            TableActionTaken::Skipped
        ]
    );
    assert_eq!(proxy.count("DeleteRoute"), 3);
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        [None, None, None, Some(vpc.igw.clone())]
    );
    let again = handle(&on, &deleted).await;
    assert_eq!(again.outcome, Outcome::Unchanged, "{again:#?}");
}

/// What EC2 reports and moto does not, through the proxy: a custom table's firewall
/// endpoint (GatewayId vpce-) is another kind than the main table's internet gateway, and a
/// VPC Route Server route is not ours; neither is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_route_server_routes_are_never_clobbered() {
    let Scene {
        ec2, vpc, proxy, ..
    } = Scene::start(|_| faithful()).await;
    let syncer = syncer_with_env(
        &proxy,
        &[(
            "SYNC_TARGET_KINDS",
            "network-interface,internet-gateway,vpc-endpoint",
        )],
    )
    .await;
    put_gateway_route(&ec2, &vpc.main, "0.0.0.0/0", &vpc.igw).await;
    put_gateway_route(&ec2, &vpc.customs[0], "0.0.0.0/0", &vpc.igw).await;
    put_route(&ec2, &vpc.customs[1], "0.0.0.0/0", &vpc.enis[0]).await;
    proxy.configure(json!({
        "strict_routes": true,
        "rewrite_routes": [
            {"route_table_id": vpc.customs[0], "destination": "0.0.0.0/0", "gateway_id": "vpce-0123456789abcdef0"},
            {"route_table_id": vpc.customs[1], "destination": "0.0.0.0/0", "origin": "Advertisement"},
        ]
    }));
    let event = cloudtrail(
        "CreateRoute",
        json!({"routeTableId": vpc.main, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": vpc.igw}),
        json!({"_return": true}),
    );
    let report = handle(&syncer, &event).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    let reasons: Vec<_> = report
        .tables
        .iter()
        .map(|t| (t.action, t.reason.clone().unwrap_or_default()))
        .collect();
    assert_eq!(reasons[0].0, TableActionTaken::Skipped);
    assert!(
        reasons[0]
            .1
            .contains("vpce-0123456789abcdef0 (vpc-endpoint)"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, TableActionTaken::Skipped);
    assert!(reasons[1].1.contains("origin Advertisement"), "{reasons:?}");
    assert_eq!(&actions(&report)[2..], [TableActionTaken::Created; 2]);
    let mut written: Vec<_> = proxy
        .params("CreateRoute")
        .iter()
        .map(|p| {
            (
                p["RouteTableId"].as_str().unwrap().to_owned(),
                p["GatewayId"].to_string(),
            )
        })
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            (vpc.customs[2].clone(), json!(vpc.igw).to_string()),
            (vpc.customs[3].clone(), json!(vpc.igw).to_string())
        ]
    );
    assert_eq!(proxy.count("ReplaceRoute"), 0);
}
