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
        "invoke FILE",
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
