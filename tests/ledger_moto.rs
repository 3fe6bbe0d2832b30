//! Deletes only what it wrote (issue 16), end to end against moto (EC2 and DynamoDB) through
//! the EC2-faithful fault proxy: the engine as the Lambda builds it from its environment,
//! with the ledger in a real DynamoDB table of moto's.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use serde_json::{json, Value};
use sync_routes::domain::report::{Outcome, TableActionTaken};
use sync_routes::runtime::AwsSyncer;

const DEST: &str = "10.100.0.0/16";
/// A DMZ table's own route, which the main table never had.
const OWN: &str = "10.50.0.0/16";

/// Every item of the ledger as (table, destination, next hop, request).
async fn ledger_items(table: &str) -> Vec<(String, String, String, String)> {
    let scan = dynamodb()
        .await
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan the ledger");
    let text = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut items: Vec<_> = scan
        .items()
        .iter()
        .map(|item| {
            (
                text(item, "RouteTableId"),
                text(item, "Destination"),
                text(item, "NextHop"),
                text(item, "Request"),
            )
        })
        .collect();
    items.sort();
    items
}

/// The engine with deletes on, scoped to the test's VPC: moto is shared by every test, and
/// a sweep would otherwise reconcile the other tests' VPCs too.
async fn with_deletes(proxy: &Proxy, vpc: &str, ledger: &str, topic: Option<&str>) -> AwsSyncer {
    let mut env = vec![
        ("SYNC_VPC_IDS", vpc),
        ("SYNC_DESTINATIONS", "10.0.0.0/8"),
        ("SYNC_PROPAGATE_DELETES", "true"),
        ("SYNC_LEDGER_TABLE", ledger),
    ];
    if let Some(topic) = topic {
        env.push(("SNS_TOPIC_ARN", topic));
    }
    syncer_with_env(proxy, &env).await
}

fn deleted(main: &str, cidr: &str) -> String {
    cloudtrail(
        "DeleteRoute",
        json!({"routeTableId": main, "destinationCidrBlock": cidr}),
        json!({"_return": true}),
    )
}

async fn delete_route(ec2: &aws_sdk_ec2::Client, table: &str, cidr: &str) {
    ec2.delete_route()
        .route_table_id(table)
        .destination_cidr_block(cidr)
        .send()
        .await
        .expect("delete route");
}

fn codes(report: &sync_routes::domain::report::Report) -> Vec<(TableActionTaken, Option<String>)> {
    report
        .tables
        .iter()
        .map(|t| (t.action, t.code.clone()))
        .collect()
}

/// A VPC whose main table routes `DEST` to its first ENI, copied by sync-routes (deletes on,
/// with its own ledger): the start of most tests here.
struct Copied {
    ec2: aws_sdk_ec2::Client,
    vpc: Vpc,
    proxy: Proxy,
    ledger: String,
    syncer: AwsSyncer,
    created: sync_routes::domain::report::Report,
}

async fn copied_by_sync_routes() -> Copied {
    let Scene {
        ec2, vpc, proxy, ..
    } = Scene::start(|_| faithful()).await;
    let ledger = ledger_table().await;
    let syncer = with_deletes(&proxy, &vpc.id, &ledger, None).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let created = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;
    Copied {
        ec2,
        vpc,
        proxy,
        ledger,
        syncer,
        created,
    }
}

/// A copy sync-routes wrote goes with the main table's route; a copy re-pointed by hand since
/// stays (`not-written-by-sync-routes`), and so does the DMZ table's own route at the sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_copy_goes_and_what_it_did_not_write_stays() {
    let Copied {
        ec2,
        vpc,
        proxy,
        ledger,
        syncer,
        created,
    } = copied_by_sync_routes().await;
    assert_eq!(created.outcome, Outcome::Synced, "{created:#?}");
    let items = ledger_items(&ledger).await;
    assert_eq!(items.len(), 4, "{items:?}");
    for ((table, destination, next_hop, request), custom) in items.iter().zip({
        let mut sorted = vpc.customs.clone();
        sorted.sort();
        sorted
    }) {
        assert_eq!(
            (table, destination.as_str(), next_hop),
            (&custom, DEST, &vpc.enis[0])
        );
        assert_eq!(
            request,
            "CreateRoute event 8d3a1c52-0b7e-4f0a-9c1d-5e6f7a8b9c0d"
        );
    }
    assert_eq!(proxy.count("BatchWriteItem"), 1);
    assert_eq!(
        proxy.count("BatchGetItem"),
        0,
        "nothing to delete, nothing read"
    );

    // A person re-points the copy in table 1, and a DMZ table has its own route.
    put_route(&ec2, &vpc.customs[1], DEST, &vpc.enis[1]).await;
    put_route(&ec2, &vpc.customs[2], OWN, &vpc.enis[2]).await;
    delete_route(&ec2, &vpc.main, DEST).await;
    proxy.reset_counts();
    let report = handle(&syncer, &deleted(&vpc.main, DEST)).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.deleted, 3);
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        [None, Some(vpc.enis[1].clone()), None, None]
    );
    let repointed = report
        .tables
        .iter()
        .find(|t| t.route_table_id == vpc.customs[1])
        .unwrap();
    assert_eq!(
        (repointed.action, repointed.code.as_deref()),
        (
            TableActionTaken::Skipped,
            Some("not-written-by-sync-routes")
        )
    );
    assert_eq!(proxy.count("DeleteRoute"), 3);
    assert_eq!(proxy.count("BatchGetItem"), 1);
    // The deleted copies left the ledger; the re-pointed one's old record is all that is left.
    let left = ledger_items(&ledger).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, vpc.customs[1]);

    // The sweep: the DMZ table's own route and the re-pointed copy both stay.
    let sweep = handle(&syncer, &sample_sweep()).await;
    assert!(!sweep.is_failure(), "{sweep:#?}");
    assert_eq!(sweep.counts.deleted, 0, "{sweep:#?}");
    assert_eq!(
        route_target(&ec2, &vpc.customs[2], OWN).await,
        Some(vpc.enis[2].clone())
    );
    assert_eq!(
        route_target(&ec2, &vpc.customs[1], DEST).await,
        Some(vpc.enis[1].clone())
    );
    assert!(sweep
        .tables
        .iter()
        .all(|t| t.code.as_deref() == Some("not-written-by-sync-routes")));
}

fn sample_sweep() -> String {
    std::fs::read_to_string(repo().join("events").join("scheduled-sweep.json"))
        .expect("sample sweep event")
}

/// Twelve owned copies of a route the main table lost: more than the budget of 10, so none
/// is deleted, and the report and the notice say so; a reconcile with `max-deletes` does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_overrun_deletes_nothing_and_says_so() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build_with(&ec2, 12).await;
    let proxy = Proxy::start();
    proxy.configure(faithful());
    let topic = sns_topic().await;
    let ledger = ledger_table().await;
    let syncer = with_deletes(&proxy, &vpc.id, &ledger, Some(&topic)).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    let created = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, DEST, &vpc.enis[0]),
    )
    .await;
    assert_eq!(created.counts.created, 12, "{created:#?}");
    delete_route(&ec2, &vpc.main, DEST).await;
    proxy.reset_counts();

    let report = handle(&syncer, &deleted(&vpc.main, DEST)).await;
    assert!(!report.is_failure(), "{report:#?}");
    assert_eq!(report.reason.as_deref(), Some("delete-budget-exceeded"));
    assert_eq!(proxy.count("DeleteRoute"), 0);
    assert!(custom_targets(&ec2, &vpc, DEST)
        .await
        .iter()
        .all(|t| t.as_deref() == Some(vpc.enis[0].as_str())));
    let exceeded = report.delete_budget_exceeded.as_ref().unwrap();
    assert_eq!((exceeded.max_deletes, exceeded.planned), (10, 12));
    assert_eq!(exceeded.would_delete.len(), 12);
    assert!(codes(&report)
        .iter()
        .all(|(a, c)| *a == TableActionTaken::Skipped
            && c.as_deref() == Some("delete-budget-exceeded")));
    assert_eq!(proxy.count("Publish"), 1, "one notice says so");
    let published = &proxy.params("Publish")[0];
    let subject = published["Subject"].as_str().unwrap_or_default();
    assert!(subject.contains("12 deletes held back"), "{published}");

    let meant = json!({"reconcile": true, "vpc-id": vpc.id, "max-deletes": 12}).to_string();
    let report = handle(&syncer, &meant).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.counts.deleted, 12);
    assert!(custom_targets(&ec2, &vpc, DEST)
        .await
        .iter()
        .all(Option::is_none));
    assert!(ledger_items(&ledger).await.is_empty());
}

/// Routes from before deletes were on are not in the ledger: adopt records exactly those
/// equal to the main table's (a dry run records nothing), and then they follow its deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_records_exactly_the_equal_routes() {
    let Scene {
        ec2, vpc, proxy, ..
    } = Scene::start(|_| faithful()).await;
    let ledger = ledger_table().await;
    let syncer = with_deletes(&proxy, &vpc.id, &ledger, None).await;
    put_route(&ec2, &vpc.main, DEST, &vpc.enis[0]).await;
    put_route(&ec2, &vpc.customs[0], DEST, &vpc.enis[0]).await; // equal
    put_route(&ec2, &vpc.customs[1], DEST, &vpc.enis[1]).await; // another next hop
    put_route(&ec2, &vpc.customs[2], OWN, &vpc.enis[2]).await; // the table's own
    let adopt = |dry: bool| {
        json!({"reconcile": true, "adopt": true, "vpc-id": vpc.id, "dry-run": dry}).to_string()
    };

    let dry = handle(&syncer, &adopt(true)).await;
    assert_eq!(dry.outcome, Outcome::DryRun, "{dry:#?}");
    assert_eq!(codes(&dry), [(TableActionTaken::WouldAdopt, None)]);
    assert!(ledger_items(&ledger).await.is_empty());

    let done = handle(&syncer, &adopt(false)).await;
    assert_eq!(done.outcome, Outcome::Synced, "{done:#?}");
    assert_eq!(proxy.writes(), 0, "adopt writes no route");
    assert_eq!(
        ledger_items(&ledger).await,
        [(
            vpc.customs[0].clone(),
            DEST.to_owned(),
            vpc.enis[0].clone(),
            "adopt".to_owned()
        )]
    );

    // Adopted, it now follows the main table's delete; the others stay.
    delete_route(&ec2, &vpc.main, DEST).await;
    let report = handle(&syncer, &deleted(&vpc.main, DEST)).await;
    assert_eq!(report.counts.deleted, 1, "{report:#?}");
    assert_eq!(
        custom_targets(&ec2, &vpc, DEST).await,
        [None, Some(vpc.enis[1].clone()), None, None]
    );
}

/// The ledger down (DynamoDB answering 500 through the fault proxy): a DeleteRoute event
/// deletes nothing and fails, so it is retried; a write whose record fails stays unowned and
/// counted; with the ledger back, the retried event deletes only what is owned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_outage_deletes_nothing_and_fails_the_delete_event() {
    let Copied {
        ec2,
        vpc,
        proxy,
        syncer,
        created,
        ..
    } = copied_by_sync_routes().await;
    assert_eq!(created.counts.created, 4);
    let outage = |action: &str| -> Value {
        json!({"action": action, "service": "dynamodb", "status": 500,
               "code": "InternalServerError", "message": "ledger down", "times": -1})
    };
    let mut config = faithful();
    config["inject"] = json!([outage("BatchGetItem"), outage("BatchWriteItem")]);
    proxy.configure(config);

    // A second route, written while the ledger cannot record it: unowned, counted.
    put_route(&ec2, &vpc.main, "10.101.0.0/16", &vpc.enis[1]).await;
    let unrecorded = handle(
        &syncer,
        &cloudtrail_event("CreateRoute", &vpc.main, "10.101.0.0/16", &vpc.enis[1]),
    )
    .await;
    assert_eq!(unrecorded.outcome, Outcome::Synced, "{unrecorded:#?}");
    assert_eq!(unrecorded.ledger.unwrap().write_failures, 4);

    delete_route(&ec2, &vpc.main, DEST).await;
    delete_route(&ec2, &vpc.main, "10.101.0.0/16").await;
    proxy.reset_counts();
    let report = handle(&syncer, &deleted(&vpc.main, DEST)).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    assert!(report.is_failure(), "retried");
    assert_eq!(report.reason.as_deref(), Some("ledger-unavailable"));
    assert_eq!(proxy.count("DeleteRoute"), 0);
    assert!(codes(&report)
        .iter()
        .all(|(_, c)| c.as_deref() == Some("ledger-unavailable")));

    // The sweep does everything else: here nothing else, and no delete, no failure.
    let sweep = handle(&syncer, &sample_sweep()).await;
    assert!(!sweep.is_failure(), "{sweep:#?}");
    assert_eq!(proxy.count("DeleteRoute"), 0);

    // The ledger is back; Lambda retries the event: the owned copies go, the unrecorded stay.
    proxy.configure(faithful());
    let retried = handle(&syncer, &deleted(&vpc.main, DEST)).await;
    assert_eq!(retried.outcome, Outcome::Synced, "{retried:#?}");
    assert_eq!(retried.counts.deleted, 4);
    let sweep = handle(&syncer, &sample_sweep()).await;
    assert_eq!(sweep.counts.deleted, 0, "{sweep:#?}");
    assert!(custom_targets(&ec2, &vpc, "10.101.0.0/16")
        .await
        .iter()
        .all(|t| t.as_deref() == Some(vpc.enis[1].as_str())));
}

/// The ledger port's contract, on DynamoDB: changes apply in order and the last change of a
/// route wins (BatchWriteItem refuses a request naming one key twice), in chunks of 25, and
/// ownership is read back in chunks of 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_ledger_keeps_the_last_change_of_a_route_across_chunks() {
    use sync_routes::adapters::dynamodb::DynamoLedger;
    use sync_routes::domain::ownership::{LedgerChange, LedgerEntry};
    use sync_routes::domain::plan::{Destination, Target, TargetKind};
    use sync_routes::domain::ports::Ledger;

    let table = ledger_table().await;
    let ledger = DynamoLedger::new(dynamodb().await, table.clone());
    let key = |i: usize| {
        (
            format!("rtb-{i:017x}"),
            Destination::Cidr(DEST.parse().unwrap()),
        )
    };
    let record = |i: usize, hop: &str| {
        LedgerChange::Record(LedgerEntry {
            vpc_id: "vpc-0a1b2c3d4e5f60000".into(),
            table_id: key(i).0,
            destination: key(i).1,
            next_hop: Target::new(TargetKind::NetworkInterface, hop),
            written_at: std::time::SystemTime::now(),
            request: "test".into(),
        })
    };
    // 120 routes, the first 10 written twice and the next 10 written then forgotten.
    let mut changes: Vec<LedgerChange> = (0..120).map(|i| record(i, "eni-1")).collect();
    changes.extend((0..10).map(|i| record(i, "eni-2")));
    changes.extend((10..20).map(|i| LedgerChange::Forget(key(i))));
    ledger.apply(&changes).await.expect("applied");
    let keys: Vec<_> = (0..120).map(key).collect();
    let owned = ledger.owned(&keys).await.expect("read");
    assert_eq!(owned.len(), 110);
    assert_eq!(owned[&key(0)], "eni-2");
    assert_eq!(owned[&key(119)], "eni-1");
    assert!(!owned.contains_key(&key(15)));
}
