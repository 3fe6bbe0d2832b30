//! Test harness: moto in server mode (one per test binary) and the EC2-faithful fault
//! proxy `tests/fault_proxy.py` in front of it (one per test, so its counts and faults are
//! the test's own). Each test builds its own VPC, so moto's state never leaks between tests.
//!
//! A missing tool fails the test loudly: run `bash tests/tools/setup.sh` (tests/run.sh does).

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::Filter;
use serde_json::{json, Value};
use sync_routes::config::Config;
use sync_routes::runtime::{self, AwsSyncer};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin(name: &str) -> PathBuf {
    let path = repo().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `bash tests/tools/setup.sh` first (tests/run.sh does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Starts `program args` under a watchdog shell that kills it when our end of its stdin
/// closes, which happens however this test process ends (a static is never dropped).
fn spawn_watched(program: &Path, args: &[&str], stdout: Stdio) -> (Child, ChildStdin) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" "$@" & child=$!; trap 'kill $child 2>/dev/null' EXIT; read _; exit 0"#)
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    (child, stdin)
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 30 s");
}

struct Moto {
    url: String,
    _watchdog: Mutex<ChildStdin>,
}

/// moto, started once per test binary.
pub fn moto_url() -> &'static str {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    &MOTO
        .get_or_init(|| {
            let port = free_port();
            let (_child, stdin) = spawn_watched(
                &venv_bin("moto_server"),
                &["-H", "127.0.0.1", "-p", &port.to_string()],
                Stdio::null(),
            );
            wait_listening(port, "moto_server");
            Moto {
                url: format!("http://127.0.0.1:{port}"),
                _watchdog: Mutex::new(stdin),
            }
        })
        .url
}

/// The fault proxy in front of moto, for one test.
pub struct Proxy {
    pub url: String,
    port: u16,
    child: Child,
    watchdog: Option<ChildStdin>,
}

impl Proxy {
    pub fn start() -> Self {
        let moto = moto_url();
        let script = repo().join("tests/fault_proxy.py");
        let (mut child, watchdog) = spawn_watched(
            &venv_bin("python"),
            &[
                script.to_str().expect("utf-8 path"),
                "--upstream",
                moto,
                "--port",
                "0",
            ],
            Stdio::piped(),
        );
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the proxy's port");
        let port: u16 = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("fault_proxy did not start: {line:?}"));
        Proxy {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
            watchdog: Some(watchdog),
        }
    }

    fn request(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = body.to_string();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to proxy");
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write to proxy");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read from proxy");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(
            head.contains(" 200 "),
            "proxy control call failed: {head}\n{body}"
        );
        serde_json::from_str(body).expect("JSON from the proxy")
    }

    /// Replaces the proxy's fault configuration (see tests/fault_proxy.py).
    pub fn configure(&self, config: Value) {
        self.request("POST", "/_fault/config", &config);
    }

    pub fn calls(&self) -> Value {
        self.request("GET", "/_fault/calls", &json!({}))
    }

    /// How many calls of `action` reached the proxy (throttled and faulted ones included).
    pub fn count(&self, action: &str) -> u64 {
        self.calls()["counts"][action].as_u64().unwrap_or(0)
    }

    pub fn writes(&self) -> u64 {
        self.count("CreateRoute") + self.count("ReplaceRoute") + self.count("DeleteRoute")
    }

    pub fn reset_counts(&self) {
        // Keep the configuration, clear the counters.
        let config = self.request("GET", "/_fault/config", &json!({}));
        self.request("POST", "/_fault/reset", &json!({}));
        self.configure(config);
    }

    /// The form parameters of every call of `action`.
    pub fn params(&self, action: &str) -> Vec<Value> {
        self.calls()["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["action"] == action)
            .map(|c| c["params"].clone())
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Closing the watchdog's stdin makes it stop the proxy, then exit.
        drop(self.watchdog.take());
        let _ = self.child.wait();
    }
}

pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// An EC2 client straight to moto: fixtures and assertions do not show in proxy counts.
pub async fn moto_ec2() -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk_config(moto_url()).await)
}

/// The function's engine, as the Lambda would build it, talking to the proxy.
pub async fn syncer(proxy: &Proxy, sns_topic_arn: Option<&str>) -> AwsSyncer {
    let config = Config {
        sns_topic_arn: sns_topic_arn.map(str::to_owned),
        ..Config::from_lookup(|_| None).expect("default config")
    };
    runtime::build_with(&config, &sdk_config(&proxy.url).await).0
}

/// The engine with these environment variables, as the Lambda would parse them.
pub async fn syncer_with_env(proxy: &Proxy, env: &[(&str, &str)]) -> AwsSyncer {
    let config = Config::from_lookup(|name| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .expect("valid configuration");
    runtime::build_with(&config, &sdk_config(&proxy.url).await).0
}

/// What most tests start from: a fresh VPC in moto, a proxy configured for it, and the
/// function's engine talking to the proxy.
pub struct Scene {
    /// Straight to moto: fixtures and assertions do not show in the proxy's counts.
    pub ec2: aws_sdk_ec2::Client,
    pub vpc: Vpc,
    pub proxy: Proxy,
    pub syncer: AwsSyncer,
    /// The notice topic, with `with_notices`.
    pub topic: String,
}

impl Scene {
    pub async fn start(proxy_config: impl FnOnce(&Vpc) -> Value) -> Self {
        Self::build(proxy_config, false).await
    }

    /// As `start`, with an SNS topic for the function's notices.
    pub async fn with_notices(proxy_config: impl FnOnce(&Vpc) -> Value) -> Self {
        Self::build(proxy_config, true).await
    }

    async fn build(proxy_config: impl FnOnce(&Vpc) -> Value, notices: bool) -> Self {
        let ec2 = moto_ec2().await;
        let vpc = Vpc::build(&ec2).await;
        let topic = if notices {
            sns_topic().await
        } else {
            String::new()
        };
        let proxy = Proxy::start();
        proxy.configure(proxy_config(&vpc));
        let syncer = syncer(&proxy, notices.then_some(topic.as_str())).await;
        Scene {
            ec2,
            vpc,
            proxy,
            syncer,
            topic,
        }
    }
}

/// A topic in moto, created directly (not through the proxy).
pub async fn sns_topic() -> String {
    let sns = aws_sdk_sns::Client::new(&sdk_config(moto_url()).await);
    sns.create_topic()
        .name(format!("sync-routes-{}", fastrand::u64(..)))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn")
}

/// A VPC like the issue's: a main table, four custom tables, three ENIs, an internet
/// gateway.
pub struct Vpc {
    pub id: String,
    pub main: String,
    pub customs: Vec<String>,
    pub enis: Vec<String>,
    pub igw: String,
}

impl Vpc {
    pub async fn build(ec2: &aws_sdk_ec2::Client) -> Self {
        Self::build_with(ec2, 4).await
    }

    pub async fn build_with(ec2: &aws_sdk_ec2::Client, custom_tables: usize) -> Self {
        let id = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .expect("create vpc")
            .vpc
            .and_then(|v| v.vpc_id)
            .expect("vpc id");
        let subnet = ec2
            .create_subnet()
            .vpc_id(&id)
            .cidr_block("10.0.1.0/24")
            .send()
            .await
            .expect("create subnet")
            .subnet
            .and_then(|s| s.subnet_id)
            .expect("subnet id");
        let main = ec2
            .describe_route_tables()
            .filters(Filter::builder().name("vpc-id").values(&id).build())
            .filters(
                Filter::builder()
                    .name("association.main")
                    .values("true")
                    .build(),
            )
            .send()
            .await
            .expect("describe main")
            .route_tables()[0]
            .route_table_id()
            .expect("main id")
            .to_owned();
        let mut customs = Vec::new();
        for _ in 0..custom_tables {
            customs.push(
                ec2.create_route_table()
                    .vpc_id(&id)
                    .send()
                    .await
                    .expect("create route table")
                    .route_table
                    .and_then(|t| t.route_table_id)
                    .expect("table id"),
            );
        }
        customs.sort();
        let mut enis = Vec::new();
        for _ in 0..3 {
            enis.push(
                ec2.create_network_interface()
                    .subnet_id(&subnet)
                    .send()
                    .await
                    .expect("create eni")
                    .network_interface
                    .and_then(|n| n.network_interface_id)
                    .expect("eni id"),
            );
        }
        let igw = ec2
            .create_internet_gateway()
            .send()
            .await
            .expect("create igw")
            .internet_gateway
            .and_then(|g| g.internet_gateway_id)
            .expect("igw id");
        ec2.attach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(&id)
            .send()
            .await
            .expect("attach igw");
        Vpc {
            id,
            main,
            customs,
            enis,
            igw,
        }
    }
}

/// Writes a route straight into moto (the "other tooling" of the product).
pub async fn put_route(ec2: &aws_sdk_ec2::Client, table: &str, cidr: &str, eni: &str) {
    let replaced = ec2
        .replace_route()
        .route_table_id(table)
        .destination_cidr_block(cidr)
        .network_interface_id(eni)
        .send()
        .await;
    if replaced.is_err() {
        ec2.create_route()
            .route_table_id(table)
            .destination_cidr_block(cidr)
            .network_interface_id(eni)
            .send()
            .await
            .expect("create route");
    }
}

pub async fn put_gateway_route(ec2: &aws_sdk_ec2::Client, table: &str, cidr: &str, igw: &str) {
    ec2.create_route()
        .route_table_id(table)
        .destination_cidr_block(cidr)
        .gateway_id(igw)
        .send()
        .await
        .expect("create gateway route");
}

/// The next hop of `cidr` (or a `pl-` id) in `table` (ENI, gateway ...), or None.
pub async fn route_target(ec2: &aws_sdk_ec2::Client, table: &str, cidr: &str) -> Option<String> {
    let tables = ec2
        .describe_route_tables()
        .filters(
            Filter::builder()
                .name("route-table-id")
                .values(table)
                .build(),
        )
        .send()
        .await
        .expect("describe table");
    let table = tables.route_tables().first()?;
    let route = table.routes().iter().find(|r| {
        r.destination_cidr_block() == Some(cidr) || r.destination_prefix_list_id() == Some(cidr)
    })?;
    route
        .network_interface_id()
        .or(route.gateway_id())
        .or(route.instance_id())
        .map(str::to_owned)
}

/// Every custom table's next hop for `cidr`, in table order.
pub async fn custom_targets(
    ec2: &aws_sdk_ec2::Client,
    vpc: &Vpc,
    cidr: &str,
) -> Vec<Option<String>> {
    let mut targets = Vec::new();
    for table in &vpc.customs {
        targets.push(route_target(ec2, table, cidr).await);
    }
    targets
}

/// A managed prefix list in moto, as VMware Cloud on AWS keeps one for its SDDC's networks.
pub async fn prefix_list(ec2: &aws_sdk_ec2::Client) -> String {
    ec2.create_managed_prefix_list()
        .prefix_list_name(format!("sddc-{}", fastrand::u32(..)))
        .max_entries(10)
        .address_family("IPv4")
        .entries(
            aws_sdk_ec2::types::AddPrefixListEntry::builder()
                .cidr("192.168.0.0/16")
                .build(),
        )
        .send()
        .await
        .expect("create prefix list")
        .prefix_list
        .and_then(|p| p.prefix_list_id)
        .expect("prefix list id")
}

/// Writes `pl -> eni` straight into moto. moto 5.2.5 drops the prefix list of a CreateRoute
/// that names an ENI, so the route is created without a target and then pointed at the ENI
/// (what EC2 stores in one call); the fault proxy does the same for the function's writes.
pub async fn put_prefix_list_route(ec2: &aws_sdk_ec2::Client, table: &str, pl: &str, eni: &str) {
    let replaced = ec2
        .replace_route()
        .route_table_id(table)
        .destination_prefix_list_id(pl)
        .network_interface_id(eni)
        .send()
        .await;
    if replaced.is_ok() {
        return;
    }
    ec2.create_route()
        .route_table_id(table)
        .destination_prefix_list_id(pl)
        .send()
        .await
        .expect("create prefix list route");
    ec2.replace_route()
        .route_table_id(table)
        .destination_prefix_list_id(pl)
        .network_interface_id(eni)
        .send()
        .await
        .expect("point the prefix list route at the ENI");
}

/// The EventBridge envelope of any CloudTrail record, with these parameters.
pub fn cloudtrail(event_name: &str, request: Value, response: Value) -> String {
    json!({
        "version": "0",
        "id": "11111111-2222-3333-4444-555555555555",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-11-24T09:30:12Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/ops", "accountId": "123456789012"},
            "eventSource": "ec2.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "requestParameters": request,
            "responseElements": response,
            "eventID": "8d3a1c52-0b7e-4f0a-9c1d-5e6f7a8b9c0d",
            "eventType": "AwsApiCall"
        }
    })
    .to_string()
}

/// The EventBridge event CloudTrail emits for a route call on `table`.
pub fn cloudtrail_event(event_name: &str, table: &str, cidr: &str, eni: &str) -> String {
    cloudtrail(
        event_name,
        json!({"routeTableId": table, "destinationCidrBlock": cidr, "networkInterfaceId": eni}),
        json!({"_return": true}),
    )
}

/// The handler, as the Lambda entry point calls it, in us-east-1.
pub async fn handle(syncer: &AwsSyncer, payload: &str) -> sync_routes::domain::report::Report {
    sync_routes::handler::handle(syncer, Some("us-east-1"), payload, deadline()).await
}

pub fn actions(
    report: &sync_routes::domain::report::Report,
) -> Vec<sync_routes::domain::report::TableActionTaken> {
    report.tables.iter().map(|t| t.action).collect()
}

/// Real EC2 semantics that moto lacks: RouteAlreadyExists, DryRunOperation.
pub fn faithful() -> Value {
    json!({"strict_routes": true, "dry_run": true})
}

pub fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30)
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config(moto_url()).await)
}

/// A ledger table as the CDK app creates it, with a name of its own per test.
pub async fn ledger_table() -> String {
    let name = format!("sync-routes-ledger-{}", fastrand::u64(..));
    dynamodb()
        .await
        .create_table()
        .table_name(&name)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(ledger_attribute("RouteTableId"))
        .attribute_definitions(ledger_attribute("Destination"))
        .key_schema(ledger_key(
            "RouteTableId",
            aws_sdk_dynamodb::types::KeyType::Hash,
        ))
        .key_schema(ledger_key(
            "Destination",
            aws_sdk_dynamodb::types::KeyType::Range,
        ))
        .send()
        .await
        .expect("create the ledger table");
    name
}

fn ledger_attribute(name: &str) -> aws_sdk_dynamodb::types::AttributeDefinition {
    aws_sdk_dynamodb::types::AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
        .build()
        .unwrap()
}

fn ledger_key(
    name: &str,
    kind: aws_sdk_dynamodb::types::KeyType,
) -> aws_sdk_dynamodb::types::KeySchemaElement {
    aws_sdk_dynamodb::types::KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}
