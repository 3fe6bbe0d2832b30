//! `sync-routes watch`: for a deadline tighter than CloudTrail's delivery. Every interval,
//! one DescribeRouteTables for all the named VPCs (a single `vpc-id` filter), then the same
//! planner and engine as every other trigger. Runs on any host with AWS credentials.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::report::Outcome;
use crate::domain::request::{RequestSource, Subject, SyncRequest};
use crate::runtime::AwsSyncer;
use crate::summary::human_summary;

pub const USAGE: &str =
    "sync-routes watch --vpc VPC [--vpc VPC ...] --interval SECONDS [--dry-run]";

#[derive(Debug, Clone, PartialEq)]
pub struct WatchArgs {
    pub vpcs: Vec<String>,
    pub interval: Duration,
    pub dry_run: bool,
}

/// The arguments after `watch`, or what is wrong with them.
pub fn parse_args(args: &[&str]) -> Result<WatchArgs, String> {
    let mut vpcs = Vec::new();
    let mut interval = None;
    let mut dry_run = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--vpc" => {
                let vpc = rest.next().ok_or("--vpc needs a VPC id")?;
                let hex = vpc.strip_prefix("vpc-").unwrap_or("");
                if !(8..=17).contains(&hex.len()) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "{vpc:?} is not a VPC id (vpc- and 8 or 17 hex digits)"
                    ));
                }
                vpcs.push((*vpc).to_owned());
            }
            "--interval" => {
                let value = rest.next().ok_or("--interval needs a number of seconds")?;
                let seconds: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.1 && *s <= 3600.0)
                    .ok_or(format!(
                        "--interval {value:?} is not a number of seconds from 0.1 to 3600"
                    ))?;
                interval = Some(Duration::from_secs_f64(seconds));
            }
            "--dry-run" => dry_run = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if vpcs.is_empty() {
        return Err("name at least one VPC with --vpc".into());
    }
    let interval = interval.ok_or("--interval is required")?;
    vpcs.sort();
    vpcs.dedup();
    Ok(WatchArgs {
        vpcs,
        interval,
        dry_run,
    })
}

/// Runs until SIGINT or SIGTERM. `syncer` must be built with `SYNC_VPC_IDS` set to the
/// named VPCs, so that a reconcile of "every VPC in scope" reads exactly those, in one call,
/// and `continued_by_next_pass`, so that what a pass's deadline (throttling) or a stop
/// signal leaves is progress carried on by the next pass, never a failure. The EC2 client
/// and its pacing live as long as the process: the pace learned from throttling in one pass
/// holds in the next.
pub async fn watch(syncer: &AwsSyncer, args: &WatchArgs) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let stop = syncer.stop_flag();
    let request = SyncRequest {
        subject: Subject::reconcile(None),
        dry_run: args.dry_run,
        source: RequestSource::Watch,
    };
    // A pass gets the interval, and at least 10 s, to write what it found: a big failover
    // goes on in the next pass, which reads the tables again.
    let budget = args.interval.max(Duration::from_secs(10));
    tracing::info!(decision = "watch", vpcs = ?args.vpcs, interval_s = args.interval.as_secs_f64(), dry_run = args.dry_run);
    loop {
        let started = Instant::now();
        let pass = syncer.run(&request, started + budget);
        tokio::pin!(pass);
        let report = tokio::select! {
            report = &mut pass => Some(report),
            _ = interrupt.recv() => None,
            _ = terminate.recv() => None,
        };
        let report = match report {
            Some(report) => report,
            None => {
                // Stop starting writes; those in flight finish, then we go.
                stop.store(true, Ordering::Relaxed);
                let report = pass.await;
                print_changes(&report);
                return Ok(());
            }
        };
        match report.outcome {
            // The read failed: the next pass reads again.
            Outcome::Failed if report.tables.is_empty() => {
                tracing::warn!(
                    decision = "read-failed",
                    error = report.error.as_deref(),
                    "retrying at the next interval"
                );
            }
            _ => print_changes(&report),
        }
        let next = started + args.interval;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}

/// One summary on stdout per pass that changed, would change or failed something; the
/// JSON log on stderr has every decision either way.
fn print_changes(report: &crate::domain::report::Report) {
    let c = report.counts;
    if c.changed() + c.would_change + c.failed + c.deferred > 0 {
        print!("{}", human_summary(report));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let args = parse_args(&[
            "--vpc",
            "vpc-0123456789abcdef0",
            "--interval",
            "1",
            "--vpc",
            "vpc-11111111",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(
            args,
            WatchArgs {
                vpcs: vec!["vpc-0123456789abcdef0".into(), "vpc-11111111".into()],
                interval: Duration::from_secs(1),
                dry_run: true
            }
        );
        assert_eq!(
            parse_args(&["--vpc", "vpc-11111111", "--interval", "0.5"])
                .unwrap()
                .interval,
            Duration::from_millis(500)
        );
        for (bad, says) in [
            (vec!["--interval", "1"], "at least one VPC"),
            (vec!["--vpc", "vpc-11111111"], "--interval is required"),
            (
                vec!["--vpc", "subnet-11111111", "--interval", "1"],
                "not a VPC id",
            ),
            (
                vec!["--vpc", "vpc-11111111", "--interval", "soon"],
                "not a number",
            ),
            (vec!["--vpc", "vpc-11111111", "--interval", "0"], "from 0.1"),
            (vec!["--vpc"], "needs a VPC id"),
            (
                vec!["--vpc", "vpc-11111111", "--interval", "1", "--fast"],
                "unknown argument",
            ),
        ] {
            let error = parse_args(&bad).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
