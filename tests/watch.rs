//! `sync-routes watch`, the real binary against moto behind the fault proxy: a route
//! written in the main table reaches every custom table within the interval plus the write
//! time; SIGINT ends it with exit code 0; a failing read does not end the loop; bad
//! arguments get the usage and exit code 2.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{moto_ec2, put_route, route_target, sns_topic, Proxy, Vpc};

fn watch(args: &[&str], endpoint: &str) -> Child {
    watch_with_notices(args, endpoint, None)
}

fn watch_with_notices(args: &[&str], endpoint: &str, topic: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sync-routes"));
    match topic {
        Some(topic) => command.env("SNS_TOPIC_ARN", topic),
        None => command.env_remove("SNS_TOPIC_ARN"),
    };
    command
        .arg("watch")
        .args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sync-routes watch")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// All that a finished child wrote to one of its pipes.
fn read_all(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    pipe.expect("a piped stream")
        .read_to_string(&mut text)
        .expect("read the child's output");
    text
}

/// Waits for the process to exit, up to `limit`; its code and how long it took.
fn wait_exit(child: &mut Child, limit: Duration) -> (Option<i32>, Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    (None, started.elapsed())
}

async fn all_follow(
    ec2: &aws_sdk_ec2::Client,
    vpc: &Vpc,
    cidr: &str,
    eni: &str,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let mut done = true;
        for table in &vpc.customs {
            done &= route_target(ec2, table, cidr).await.as_deref() == Some(eni);
        }
        if done {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_tables_follow_within_the_interval_and_sigint_ends_it_cleanly() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let proxy = Proxy::start();
    proxy.configure(serde_json::json!({"strict_routes": true}));
    let mut child = watch(&["--vpc", &vpc.id, "--interval", "1"], &proxy.url);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    put_route(&ec2, &vpc.main, "10.50.0.0/16", &vpc.enis[0]).await;
    let took = all_follow(
        &ec2,
        &vpc,
        "10.50.0.0/16",
        &vpc.enis[0],
        Duration::from_secs(5),
    )
    .await;
    let took = took.expect("every custom table follows within 5 s");
    println!("watch --interval 1: all 4 custom tables followed in {took:?}");
    assert!(
        took < Duration::from_millis(2500),
        "interval (1 s) plus the writes: {took:?}"
    );

    // A failover: the next pass follows it too.
    put_route(&ec2, &vpc.main, "10.50.0.0/16", &vpc.enis[1]).await;
    assert!(all_follow(
        &ec2,
        &vpc,
        "10.50.0.0/16",
        &vpc.enis[1],
        Duration::from_secs(5)
    )
    .await
    .is_some());

    // Reads fail for a while (each pass's retries included): the loop logs it and goes on.
    proxy.configure(serde_json::json!({"strict_routes": true, "inject": [
        {"action": "DescribeRouteTables", "status": 500, "times": 8}]}));
    put_route(&ec2, &vpc.main, "10.51.0.0/16", &vpc.enis[0]).await;
    assert!(
        all_follow(
            &ec2,
            &vpc,
            "10.51.0.0/16",
            &vpc.enis[0],
            Duration::from_secs(15)
        )
        .await
        .is_some(),
        "synced once the reads work again"
    );
    let reads = proxy.count("DescribeRouteTables");
    assert!(
        reads >= 9,
        "{reads} reads: the failed ones, then at least one that worked"
    );

    signal(&child, "INT");
    let (code, took) = wait_exit(&mut child, Duration::from_secs(5));
    let stderr = read_all(child.stderr.take());
    let stdout = read_all(child.stdout.take());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    assert!(stderr.contains("\"decision\":\"read-failed\""), "{stderr}");
    assert!(stdout.contains("synced: reconcile of"), "{stdout}");
    assert!(stdout.contains("created"), "{stdout}");
}

/// A failover bigger than one pass behind a slow write bucket (2 burst, 2 a second): what a
/// pass's deadline leaves is carried on by the next pass and reported as progressing, never
/// failed, so no FAILED notice goes out, not even for the pass that SIGINT stops. Every
/// route lands. (How close to the bucket's floor: bench/watch.py --bucket.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_failover_goes_on_pass_after_pass_without_a_failed_notice() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build_with(&ec2, 6).await;
    let topic = sns_topic().await;
    let proxy = Proxy::start();
    proxy.configure(serde_json::json!({"strict_routes": true,
        "buckets": {"mutate": {"capacity": 2, "refill_per_sec": 2}}}));
    let cidrs = [
        "10.60.0.0/16",
        "10.61.0.0/16",
        "10.62.0.0/16",
        "10.63.0.0/16",
        "10.64.0.0/16",
    ];
    for cidr in cidrs {
        put_route(&ec2, &vpc.main, cidr, &vpc.enis[0]).await;
    }
    // 30 writes at 2 a second: more than one 10 s pass.
    let mut child = watch_with_notices(
        &["--vpc", &vpc.id, "--interval", "1"],
        &proxy.url,
        Some(&topic),
    );
    let mut landed = true;
    for cidr in cidrs {
        landed &= all_follow(&ec2, &vpc, cidr, &vpc.enis[0], Duration::from_secs(60))
            .await
            .is_some();
    }
    // A failover stopped half-way by SIGINT: what it did not write is not a failure.
    for cidr in cidrs {
        put_route(&ec2, &vpc.main, cidr, &vpc.enis[1]).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, "INT");
    let (code, _) = wait_exit(&mut child, Duration::from_secs(15));
    let stdout = read_all(child.stdout.take());
    assert!(landed, "every route of the first failover landed\n{stdout}");
    assert_eq!(code, Some(0));
    let subjects: Vec<String> = proxy
        .params("Publish")
        .iter()
        .map(|p| p["Subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!subjects.is_empty());
    assert!(
        subjects.iter().all(|s| !s.contains("FAILED")),
        "{subjects:?}"
    );
    assert!(stdout.contains("progressing:"), "{stdout}");
    assert!(stdout.contains("handed on to the next pass"), "{stdout}");
    assert!(stdout.contains("(not written: stopped)"), "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| !l.starts_with("failed") && !l.trim_start().starts_with("failed")),
        "{stdout}"
    );
    assert!(
        proxy.calls()["throttled"].as_u64().unwrap_or(0) > 0,
        "the bucket did throttle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_sigterm_ends_it() {
    let ec2 = moto_ec2().await;
    let vpc = Vpc::build(&ec2).await;
    let proxy = Proxy::start();
    proxy.configure(serde_json::json!({"strict_routes": true, "dry_run": true}));
    put_route(&ec2, &vpc.main, "10.52.0.0/16", &vpc.enis[0]).await;
    let mut child = watch(
        &["--vpc", &vpc.id, "--interval", "0.5", "--dry-run"],
        &proxy.url,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(&child, "TERM");
    let (code, _) = wait_exit(&mut child, Duration::from_secs(5));
    let stdout = read_all(child.stdout.take());
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("dry-run: dry run, reconcile of"),
        "{stdout}"
    );
    assert!(stdout.contains("would-create"), "{stdout}");
    for table in &vpc.customs {
        assert_eq!(route_target(&ec2, table, "10.52.0.0/16").await, None);
    }
}

#[test]
fn bad_arguments_get_the_usage_and_exit_code_2() {
    for args in [
        vec!["--interval", "1"],
        vec!["--vpc", "vpc-0123456789abcdef0"],
        vec!["--vpc", "nope", "--interval", "1"],
        vec!["--vpc", "vpc-0123456789abcdef0", "--interval", "-3"],
        vec![
            "--vpc",
            "vpc-0123456789abcdef0",
            "--interval",
            "1",
            "--loud",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sync-routes"))
            .arg("watch")
            .args(&args)
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("usage: sync-routes watch --vpc VPC"),
            "{args:?}: {stderr}"
        );
    }
}
