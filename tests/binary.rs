//! The binary's contract: `invoke FILE` runs the handler once and prints the report; bad
//! configuration and bad arguments stop it with a message that says what to fix.

mod common;

use std::process::{Command, Output};

use common::{moto_ec2, Proxy, Vpc};
use serde_json::Value;

fn sync_routes(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sync-routes"));
    command
        .args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("AWS_PROFILE")
        .env_remove("SNS_TOPIC_ARN")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run sync-routes")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_commands_and_settings() {
    let out = sync_routes(&["--help"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for words in [
        "invoke [--json] FILE",
        "SNS_TOPIC_ARN",
        "SYNC_TARGET_KINDS",
        "AWS_ENDPOINT_URL",
    ] {
        assert!(text.contains(words), "{words} missing from:\n{text}");
    }
}

#[test]
fn without_a_runtime_api_or_a_command_it_explains_itself() {
    let out = sync_routes(&[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("AWS_LAMBDA_RUNTIME_API must be set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_configuration_names_the_variable() {
    let out = sync_routes(&["invoke", "-"], &[("SYNC_TARGET_KINDS", "eni")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("SYNC_TARGET_KINDS=\"eni\" is not valid"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_file_is_reported() {
    let out = sync_routes(&["invoke", "/nonexistent/event.json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent/event.json"));
}

#[test]
fn a_rejected_payload_is_logged_as_the_cdk_alarm_expects() {
    // cdk/lib/sync-routes.ts alarms on log lines matching { $.decision = "rejected" }.
    let path = std::env::temp_dir().join(format!("sync-routes-bad-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"route-table-id": "rtb-12"}"#).unwrap();
    let out = sync_routes(&["invoke", path.to_str().unwrap()], &[]);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "bad input is a final answer: {}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "rejected");
    assert!(report["message"]
        .as_str()
        .unwrap()
        .contains("not a valid route table id"));
    let logged = stderr(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|l| l["decision"] == "rejected" && l["level"] == "WARN");
    assert!(logged, "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_runs_a_sample_event_and_prints_the_report() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let proxy = Proxy::start();
    let endpoint = [("AWS_ENDPOINT_URL", proxy.url.as_str())];

    // The sample's ids do not exist here: a clear refusal, exit 0, no write.
    let sample = format!("{}/events/manual-sync.json", env!("CARGO_MANIFEST_DIR"));
    let out = sync_routes(&["invoke", &sample], &endpoint);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    assert_eq!(report["outcome"], "refused");
    assert_eq!(report["reason"], "table-not-in-vpc");

    // A real main-table route: synced to the four custom tables.
    common::put_route(&ec2, &vpc.main, "10.7.0.0/16", &vpc.enis[0]).await;
    let event = common::cloudtrail_event("CreateRoute", &vpc.main, "10.7.0.0/16", &vpc.enis[0]);
    let path = std::env::temp_dir().join(format!("sync-routes-event-{}.json", std::process::id()));
    std::fs::write(&path, event).unwrap();
    let out = sync_routes(&["invoke", path.to_str().unwrap()], &endpoint);
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "synced", "{report:#}");
    assert_eq!(report["tables"].as_array().unwrap().len(), 4);
    assert_eq!(
        common::custom_targets(&ec2, &vpc, "10.7.0.0/16").await,
        vec![Some(vpc.enis[0].clone()); 4]
    );
    // Logs are JSON lines on stderr, one per decision.
    let logs = stderr(&out);
    let decisions = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["decision"] == "created")
        .count();
    assert_eq!(decisions, 4, "{logs}");
}

/// The metric line (CloudWatch embedded metric format) of each request, from the binary's
/// own stderr.
fn metric_lines(out: &Output) -> Vec<Value> {
    stderr(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("_aws").is_some())
        .collect()
}

fn write_event(name: &str, event: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("sync-routes-{name}-{}.json", std::process::id()));
    std::fs::write(&path, event).unwrap();
    path
}

/// EventLag runs from CloudTrail's eventTime to the end of the sync: an event recorded five
/// minutes ago lags about 300 000 ms. Routes written, failed tables and throttled calls are
/// counted; a manual request has no lag at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_writes_one_metric_line_with_its_lag_and_counts() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let proxy = Proxy::start();
    let env = [
        ("AWS_ENDPOINT_URL", proxy.url.as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "SyncRoutes-test"),
    ];
    common::put_route(&ec2, &vpc.main, "10.8.0.0/16", &vpc.enis[0]).await;
    // Two tokens, then one every 2 s: two writes go at once, the other two are throttled
    // first; and the fourth table's write fails for good.
    proxy.configure(serde_json::json!({
        "buckets": {"mutate": {"capacity": 2, "refill_per_sec": 2}},
        "inject": [{"action": "CreateRoute", "status": 400, "code": "InvalidParameterValue",
                    "message": "injected", "times": -1, "match": {"RouteTableId": vpc.customs[3]}}],
    }));
    let mut event: Value = serde_json::from_str(&common::cloudtrail_event(
        "CreateRoute",
        &vpc.main,
        "10.8.0.0/16",
        &vpc.enis[0],
    ))
    .unwrap();
    let five_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(5);
    event["detail"]["eventTime"] = five_minutes_ago
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .into();
    let path = write_event("lag", &event.to_string());
    let out = sync_routes(&["invoke", path.to_str().unwrap()], &env);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1), "a failed table fails the run");

    let lines = metric_lines(&out);
    assert_eq!(lines.len(), 1, "{}", stderr(&out));
    let m = &lines[0];
    let lag = m["EventLag"].as_u64().unwrap();
    assert!((299_000..=330_000).contains(&lag), "EventLag {lag}");
    assert_eq!(m["RoutesWritten"], 3);
    assert_eq!(m["TablesFailed"], 1);
    let throttled = m["Throttled"].as_u64().unwrap();
    assert!(throttled >= 1, "{m:#}");
    assert_eq!(
        throttled,
        proxy.calls()["throttled_counts"]["CreateRoute"]
            .as_u64()
            .unwrap(),
        "every throttled answer counted"
    );
    assert_eq!(m["FunctionName"], "SyncRoutes-test");
    let directive = &m["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "SyncRoutes");
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!([["FunctionName"]])
    );
    assert_eq!(
        common::custom_targets(&ec2, &vpc, "10.8.0.0/16").await,
        [
            Some(vpc.enis[0].clone()),
            Some(vpc.enis[0].clone()),
            Some(vpc.enis[0].clone()),
            None
        ]
    );

    // A manual request: the same metrics, no lag.
    proxy.configure(serde_json::json!({}));
    let manual = serde_json::json!({"reconcile": true, "vpc-id": vpc.id}).to_string();
    let path = write_event("manual", &manual);
    let out = sync_routes(&["invoke", path.to_str().unwrap()], &env);
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = metric_lines(&out);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].get("EventLag").is_none(), "{:#}", lines[0]);
    assert_eq!(
        lines[0]["RoutesWritten"], 1,
        "the fourth table, now that it works"
    );
}

/// `invoke` on a terminal prints a summary for people; through a pipe, or with `--json`,
/// the JSON report. `script` (util-linux) gives the binary a pseudo-terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_prints_a_summary_on_a_terminal_and_json_otherwise() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let proxy = Proxy::start();
    common::put_route(&ec2, &vpc.main, "10.9.0.0/16", &vpc.enis[0]).await;
    let event = common::cloudtrail_event("CreateRoute", &vpc.main, "10.9.0.0/16", &vpc.enis[0]);
    let path = write_event("tty", &event);
    let file = path.to_str().unwrap();

    let command = format!("{} invoke {file}", env!("CARGO_BIN_EXE_sync-routes"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("AWS_ENDPOINT_URL", &proxy.url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("RUST_LOG", "off")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("`script` (util-linux) runs the binary on a pseudo-terminal");
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains(&format!(
            "synced: 10.9.0.0/16 -> {}: 4 of 4 custom tables updated\n",
            vpc.enis[0]
        )),
        "{screen}"
    );
    for table in &vpc.customs {
        assert!(
            screen.contains(&format!(
                "  created       {table}  (none) -> {}\n",
                vpc.enis[0]
            )),
            "{screen}"
        );
    }
    assert!(
        !screen.contains("\"outcome\""),
        "no JSON on a terminal: {screen}"
    );

    // The same request again, through a pipe and with --json: the JSON report, unchanged.
    let endpoint = [("AWS_ENDPOINT_URL", proxy.url.as_str())];
    for args in [vec!["invoke", file], vec!["invoke", "--json", file]] {
        let out = sync_routes(&args, &endpoint);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        assert_eq!(report["outcome"], "unchanged");
    }
    let _ = std::fs::remove_file(&path);
    let out = sync_routes(&["invoke", "--yaml", file], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown flag is a usage error"
    );
}
