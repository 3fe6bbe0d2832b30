//! An organization's hub (issue 18), end to end against moto through the fault proxy: VPCs in
//! the hub's account and in a member account (moto's `sts.assume_role` into another account
//! acts in that account, on one server). A member's event is synced in the member; the sweep
//! covers both; a member whose role cannot be assumed, or an account outside the list, fails
//! alone and names the account and the role.

mod common;

use aws_credential_types::Credentials;
use common::*;
use serde_json::{json, Value};
use sync_routes::config::Config;
use sync_routes::domain::report::Outcome;
use sync_routes::fleet::Fleet;
use sync_routes::runtime;

const HUB: &str = "123456789012"; // moto's own account
const MEMBER: &str = "222222222222";
/// In SYNC_MEMBER_ACCOUNTS, but its role cannot be assumed (the proxy refuses it).
const BROKEN: &str = "333333333333";
const DEST: &str = "10.100.0.0/16";

fn role(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/sync-routes-member")
}

/// An EC2 client acting in `account`, straight to moto (for fixtures and assertions).
async fn ec2_in(account: &str) -> aws_sdk_ec2::Client {
    let sts = aws_sdk_sts_client().await;
    let assumed = sts
        .assume_role()
        .role_arn(role(account))
        .role_session_name("fixture")
        .send()
        .await
        .expect("assume the member role in moto");
    let c = assumed.credentials().expect("credentials");
    let credentials = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "fixture",
    );
    let config = sdk_config(moto_url())
        .await
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .build();
    aws_sdk_ec2::Client::new(&config)
}

async fn aws_sdk_sts_client() -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&sdk_config(moto_url()).await)
}

/// The function as an organization's hub, talking to the proxy, scoped to these VPCs (moto
/// is shared with every other test).
async fn hub(proxy: &Proxy, vpcs: &[&str]) -> Fleet {
    hub_with(proxy, vpcs, None).await
}

/// As `hub`, on Lambda with this work queue (`SYNC_QUEUE_URL`) when given.
async fn hub_with(proxy: &Proxy, vpcs: &[&str], queue: Option<&str>) -> Fleet {
    let vpc_ids = vpcs.join(",");
    let mut env = vec![
        ("SYNC_MEMBER_ROLE_NAME", "sync-routes-member"),
        ("SYNC_ACCOUNT_ID", HUB),
        ("SYNC_MEMBER_EXTERNAL_ID", "sync-routes-test-id"),
        ("SYNC_MEMBER_ACCOUNTS", "222222222222,333333333333"),
        ("SYNC_VPC_IDS", vpc_ids.as_str()),
    ];
    if let Some(queue) = queue {
        env.push(("SYNC_QUEUE_URL", queue));
    }
    let config = Config::from_lookup(|name| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .expect("valid configuration");
    let shared = sdk_config(&proxy.url).await;
    let (home, region) = match queue {
        Some(_) => runtime::build_for_lambda_with(&config, &shared),
        None => runtime::build_with(&config, &shared),
    };
    Fleet::new(home, region, &config, shared)
}

/// A CloudTrail CreateRoute event of `account`, as the member's rule forwards it.
fn event_of(account: &str, table: &str, eni: &str) -> String {
    let mut event: Value =
        serde_json::from_str(&cloudtrail_event("CreateRoute", table, DEST, eni)).unwrap();
    event["account"] = account.into();
    event["detail"]["recipientAccountId"] = account.into();
    event.to_string()
}

/// The proxy refuses the broken account's role, as STS does for a wrong external id.
fn refusing_the_broken_role() -> Value {
    let mut config = faithful();
    config["inject"] = json!([{
        "action": "AssumeRole", "service": "sts", "status": 403, "code": "AccessDenied",
        "message": "not authorized to perform sts:AssumeRole", "times": -1,
        "match": {"RoleArn": role(BROKEN)}
    }]);
    config
}

/// A VPC in the hub's account and one in the member's, each main table routing `DEST` to
/// its first ENI, and the hub (the broken member's role refused).
struct TwoAccounts {
    hub_ec2: aws_sdk_ec2::Client,
    home: Vpc,
    member_ec2: aws_sdk_ec2::Client,
    member: Vpc,
    /// Keep it bound (`proxy: _proxy`): the proxy stops when dropped.
    proxy: Proxy,
    fleet: Fleet,
}

async fn two_accounts() -> TwoAccounts {
    two_accounts_with(None).await
}

async fn two_accounts_with(queue: Option<&str>) -> TwoAccounts {
    let hub_ec2 = moto_ec2().await;
    let home = Vpc::build_with(&hub_ec2, 1).await;
    let member_ec2 = ec2_in(MEMBER).await;
    let member = Vpc::build_with(&member_ec2, 1).await;
    put_route(&hub_ec2, &home.main, DEST, &home.enis[0]).await;
    put_route(&member_ec2, &member.main, DEST, &member.enis[0]).await;
    let proxy = Proxy::start();
    proxy.configure(refusing_the_broken_role());
    let fleet = hub_with(&proxy, &[&home.id, &member.id], queue).await;
    TwoAccounts {
        hub_ec2,
        home,
        member_ec2,
        member,
        proxy,
        fleet,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_event_is_synced_in_the_member_and_its_role_is_assumed_once() {
    let member_ec2 = ec2_in(MEMBER).await;
    let member = Vpc::build_with(&member_ec2, 2).await;
    let proxy = Proxy::start();
    proxy.configure(faithful());
    let fleet = hub(&proxy, &[&member.id]).await;
    put_route(&member_ec2, &member.main, DEST, &member.enis[0]).await;

    let report = fleet
        .handle(&event_of(MEMBER, &member.main, &member.enis[0]), deadline())
        .await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    assert_eq!(report.account.as_deref(), Some(MEMBER));
    assert_eq!(report.counts.created, 2);
    assert_eq!(
        custom_targets(&member_ec2, &member, DEST).await,
        [Some(member.enis[0].clone()), Some(member.enis[0].clone())]
    );
    let assumed = proxy.params("AssumeRole");
    assert_eq!(assumed.len(), 1);
    assert_eq!(assumed[0]["RoleArn"], role(MEMBER));
    assert_eq!(assumed[0]["ExternalId"], "sync-routes-test-id");

    // Another event: the credentials are kept until they near expiry.
    put_route(&member_ec2, &member.main, DEST, &member.enis[1]).await;
    let again = fleet
        .handle(
            &event_of(MEMBER, &member.main, &member.enis[1]).replace("CreateRoute", "ReplaceRoute"),
            deadline(),
        )
        .await;
    assert_eq!(again.outcome, Outcome::Synced, "{again:#?}");
    assert_eq!(proxy.count("AssumeRole"), 1);
    // The hub's own tables were never read for it: the member's were.
    assert_eq!(
        custom_targets(&member_ec2, &member, DEST).await,
        [Some(member.enis[1].clone()), Some(member.enis[1].clone())]
    );
}

/// The scheduled sweep covers the hub's own account and each member account (run here, as
/// there is no queue); the member whose role is refused fails alone, named with its role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_covers_both_accounts_and_a_refused_role_fails_alone() {
    let TwoAccounts {
        hub_ec2,
        home,
        member_ec2,
        member,
        fleet,
        proxy: _proxy,
    } = two_accounts().await;

    let sweep = std::fs::read_to_string(repo().join("events/scheduled-sweep.json")).unwrap();
    let report = fleet.handle(&sweep, deadline()).await;
    assert_eq!(report.account.as_deref(), Some(HUB));
    assert_eq!(report.counts.created, 1, "the hub's own table: {report:#?}");
    assert_eq!(
        custom_targets(&hub_ec2, &home, DEST).await,
        [Some(home.enis[0].clone())]
    );
    assert_eq!(
        custom_targets(&member_ec2, &member, DEST).await,
        [Some(member.enis[0].clone())],
        "the member's table"
    );
    let accounts: Vec<(&str, &str)> = report
        .accounts
        .iter()
        .map(|a| (a.account.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(accounts, [(MEMBER, "synced"), (BROKEN, "failed")]);
    let broken = &report.accounts[1].message;
    assert!(
        broken.contains(BROKEN) && broken.contains(&role(BROKEN)),
        "names the account and the role: {broken}"
    );
    // Failed so that the schedule's retry sweeps again; what was done stays done.
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
}

/// An event from an account outside SYNC_MEMBER_ACCOUNTS, or whose role is refused: it
/// fails, names the account and the role, assumes nothing it may not, writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_outside_the_list_or_a_refused_role_fails_that_work_only() {
    let proxy = Proxy::start();
    proxy.configure(refusing_the_broken_role());
    let fleet = hub(&proxy, &["vpc-0a1b2c3d4e5f60000"]).await;
    let outside = fleet
        .handle(
            &event_of(
                "444444444444",
                "rtb-0a1b2c3d4e5f60001",
                "eni-0a1b2c3d4e5f60002",
            ),
            deadline(),
        )
        .await;
    assert_eq!(outside.outcome, Outcome::Failed, "{outside:#?}");
    assert_eq!(outside.account.as_deref(), Some("444444444444"));
    assert!(
        outside.message.contains("444444444444")
            && outside.message.contains("not in SYNC_MEMBER_ACCOUNTS")
            && outside.message.contains(&role("444444444444")),
        "{}",
        outside.message
    );
    assert_eq!(proxy.count("AssumeRole"), 0);

    let refused = fleet
        .handle(
            &event_of(BROKEN, "rtb-0a1b2c3d4e5f60001", "eni-0a1b2c3d4e5f60002"),
            deadline(),
        )
        .await;
    assert_eq!(refused.outcome, Outcome::Failed, "{refused:#?}");
    assert!(
        refused.message.contains(&role(BROKEN)) && refused.message.contains("AccessDenied"),
        "{}",
        refused.message
    );
    // The hub's own account in another region is a separate deployment's, not the hub's.
    let mut elsewhere: Value = serde_json::from_str(&event_of(
        HUB,
        "rtb-0a1b2c3d4e5f60001",
        "eni-0a1b2c3d4e5f60002",
    ))
    .unwrap();
    elsewhere["region"] = "eu-west-1".into();
    elsewhere["detail"]["awsRegion"] = "eu-west-1".into();
    let other_region = fleet.handle(&elsewhere.to_string(), deadline()).await;
    assert_eq!(other_region.outcome, Outcome::Failed, "{other_region:#?}");
    assert!(
        other_region
            .message
            .contains("only in its own region us-east-1"),
        "{}",
        other_region.message
    );
    // A payload that names no valid place is rejected, naming the field; nothing is read.
    let mut bad: Value = serde_json::from_str(&event_of(
        MEMBER,
        "rtb-0a1b2c3d4e5f60001",
        "eni-0a1b2c3d4e5f60002",
    ))
    .unwrap();
    bad["account"] = "2222".into();
    let rejected = fleet.handle(&bad.to_string(), deadline()).await;
    assert_eq!(rejected.outcome, Outcome::Rejected, "{rejected:#?}");
    assert!(rejected.message.contains("account"), "{}", rejected.message);
    assert_eq!(proxy.count("DescribeRouteTables"), 0);
    assert_eq!(proxy.writes(), 0);
}

/// A batch of the work queue holding the hub's, a member's and a refused member's events:
/// only the refused member's record comes back as a batch item failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fails_only_the_records_of_the_refused_account() {
    let TwoAccounts {
        hub_ec2,
        home,
        member_ec2,
        member,
        fleet,
        proxy: _proxy,
    } = two_accounts().await;
    let record = |id: &str, body: String| json!({"messageId": id, "body": body, "eventSource": "aws:sqs", "attributes": {}});
    let batch: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(json!({
        "Records": [
            record("hub", event_of(HUB, &home.main, &home.enis[0])),
            record("member", event_of(MEMBER, &member.main, &member.enis[0])),
            record("broken", event_of(BROKEN, "rtb-0a1b2c3d4e5f60001", "eni-0a1b2c3d4e5f60002")),
        ]
    }))
    .unwrap();
    let response = fleet.handle_batch(batch, deadline()).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["broken"]);
    assert_eq!(
        custom_targets(&hub_ec2, &home, DEST).await,
        [Some(home.enis[0].clone())]
    );
    assert_eq!(
        custom_targets(&member_ec2, &member, DEST).await,
        [Some(member.enis[0].clone())]
    );
}

/// On Lambda (a work queue): the hub's sweep queues one reconcile per member account and
/// region, each stamped with its account and region, and sweeps its own account itself; a
/// queued message, delivered back, sweeps that member account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_queues_each_member_account_and_the_message_sweeps_it() {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(moto_url()).await);
    let queue = sqs
        .create_queue()
        .queue_name(format!("sync-routes-work-{}", fastrand::u64(..)))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let TwoAccounts {
        hub_ec2,
        home,
        member_ec2,
        member,
        fleet,
        proxy,
    } = two_accounts_with(Some(&queue)).await;

    let sweep = std::fs::read_to_string(repo().join("events/scheduled-sweep.json")).unwrap();
    let report = fleet.handle(&sweep, deadline()).await;
    assert_eq!(report.outcome, Outcome::Synced, "{report:#?}");
    let queued: Vec<(&str, &str)> = report
        .accounts
        .iter()
        .map(|a| (a.account.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(queued, [(MEMBER, "queued"), (BROKEN, "queued")]);
    assert_eq!(
        custom_targets(&hub_ec2, &home, DEST).await,
        [Some(home.enis[0].clone())]
    );
    assert_eq!(
        proxy.count("AssumeRole"),
        0,
        "nothing assumed by the sweep itself"
    );

    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let mut bodies: Vec<Value> = received
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    bodies.sort_by_key(|b| b["account"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        bodies,
        [
            json!({"reconcile": true, "dry-run": false, "account": MEMBER, "region": "us-east-1"}),
            json!({"reconcile": true, "dry-run": false, "account": BROKEN, "region": "us-east-1"}),
        ]
    );
    let member_sweep = fleet.handle(&bodies[0].to_string(), deadline()).await;
    assert_eq!(member_sweep.outcome, Outcome::Synced, "{member_sweep:#?}");
    assert_eq!(member_sweep.account.as_deref(), Some(MEMBER));
    assert_eq!(
        custom_targets(&member_ec2, &member, DEST).await,
        [Some(member.enis[0].clone())]
    );
    let broken = fleet.handle(&bodies[1].to_string(), deadline()).await;
    assert_eq!(broken.outcome, Outcome::Failed, "{broken:#?}");
    assert!(broken.message.contains(&role(BROKEN)), "{}", broken.message);
}
