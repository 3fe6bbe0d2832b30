//! Continuations: what an invocation cannot finish goes on elsewhere, never lost and never
//! forked. The deadline's leftovers and the check after writing it could not make go to a
//! new invocation per VPC, with the same scope; a fresh event that EC2's reads do not show
//! yet goes again as the same event, after a delay where the hand-off can wait. Under
//! `watch`, the next pass continues instead.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::domain::ports::{Notifier, RouteTables};
use crate::domain::report::{Outcome, Report, TableActionTaken};
use crate::domain::request::{NamedRoute, RequestSource, Subject, SyncRequest};
use crate::domain::sync::Syncer;

/// A request still unfinished after this many hand-offs stops and fails, so a loop cannot
/// run for ever (an hour of writes at EC2's default pace with a 60 s timeout).
pub const MAX_HAND_OFFS: u32 = 60;

impl<E: RouteTables, N: Notifier> Syncer<E, N> {
    /// A fresh event that the read still contradicts: nothing is decided from that read.
    /// The same request goes to a new invocation (which backs off again, until the event is
    /// no longer fresh and the read is believed); without a hand-off the report says so.
    pub(crate) async fn wait_for_ec2(
        &self,
        request: &SyncRequest,
        mut report: Report,
        message: String,
    ) -> Report {
        report.outcome = Outcome::WaitingForEc2;
        report.reason = Some("waiting-for-ec2".into());
        report.message = message;
        if !matches!(request.source, RequestSource::CloudTrail { .. }) {
            return report;
        }
        if self.hand_off.is_none() {
            report.message.push_str("; run it again in a few seconds");
        } else if self.hand_on_waiting(request, &mut report).await {
            report.message.push_str("; handed on to be tried again");
        } else {
            // Failing the invocation makes Lambda retry the event itself.
            report.outcome = Outcome::Failed;
        }
        tracing::info!(decision = "waiting-for-ec2", summary = %report.message);
        report
    }

    /// One event of a coalesced batch that EC2's reads do not show yet: handed on alone, as
    /// `wait_for_ec2` hands on a single event. Returns whether it goes on elsewhere.
    pub(crate) async fn hand_on_waiting(&self, request: &SyncRequest, report: &mut Report) -> bool {
        let waits = match &request.source {
            RequestSource::CloudTrail { waits, .. } => *waits,
            _ => 0,
        };
        let sent = match &self.hand_off {
            None => Err("no hand-off outside Lambda".to_owned()),
            Some(_) if waits >= MAX_HAND_OFFS => Err(format!(
                "EC2's reads still contradict the event after {MAX_HAND_OFFS} hand-offs"
            )),
            Some(hand_off) => hand_off
                .hand_off(&waited_once_more(request), wait_delay(waits))
                .await
                .map_err(|e| format!("the hand-off failed: {e}")),
        };
        match sent {
            Ok(()) => {
                report.calls.hand_offs += 1;
                tracing::info!(decision = "hand-off", reason = "waiting-for-ec2", request = ?request.subject, waits = waits + 1);
                true
            }
            Err(error) => {
                report.error = Some(error);
                false
            }
        }
    }

    /// Returns whether every check after writing that could not be made goes on elsewhere.
    ///
    /// Some writes met the deadline (or a check after writing could not be made): start a
    /// new invocation per VPC that re-reads it and continues. Where that cannot be done (not
    /// on Lambda, the hop limit, the hand-off call failed), the deferred writes of the VPCs
    /// not handed on fail the request instead, so Lambda's own retry of this event continues
    /// from the current state. Under `watch`, the next pass continues.
    pub(crate) async fn hand_on(
        &self,
        request: &SyncRequest,
        report: &mut Report,
        unchecked: BTreeSet<String>,
    ) -> bool {
        let hops = match request.source {
            RequestSource::HandOff { hops } => hops,
            _ => 0,
        };
        let mut vpcs: BTreeSet<String> = report
            .tables
            .iter()
            .filter(|t| t.action == TableActionTaken::Deferred)
            .map(|t| t.vpc_id.clone())
            .collect();
        let checks = unchecked.clone();
        vpcs.extend(unchecked);
        if self.hand_off.is_none() && self.next_pass_continues {
            return true;
        }
        let mut handed = BTreeSet::new();
        let unable = match &self.hand_off {
            None => Some("no hand-off outside Lambda".to_owned()),
            Some(_) if hops >= MAX_HAND_OFFS => {
                Some(format!("still unfinished after {MAX_HAND_OFFS} hand-offs"))
            }
            Some(hand_off) => {
                // At once, not one after another: each is a call past the deadline.
                let continuations: Vec<(String, SyncRequest)> = vpcs
                    .into_iter()
                    .map(|vpc| {
                        let next = SyncRequest {
                            subject: continuation(&request.subject, vpc.clone()),
                            dry_run: request.dry_run,
                            source: RequestSource::HandOff { hops: hops + 1 },
                        };
                        (vpc, next)
                    })
                    .collect();
                let sent = futures::future::join_all(
                    continuations
                        .iter()
                        .map(|(_, next)| hand_off.hand_off(next, Duration::ZERO)),
                )
                .await;
                let mut unable = None;
                for ((vpc, next), sent) in continuations.into_iter().zip(sent) {
                    match sent {
                        Ok(()) => {
                            tracing::info!(decision = "hand-off", request = ?next.subject, hops = hops + 1);
                            report.calls.hand_offs += 1;
                            handed.insert(vpc);
                        }
                        Err(error) => unable = Some(format!("the hand-off failed: {error}")),
                    }
                }
                unable
            }
        };
        let Some(why) = unable else {
            return true;
        };
        for table in &mut report.tables {
            if table.action == TableActionTaken::Deferred && !handed.contains(&table.vpc_id) {
                report.counts.remove(TableActionTaken::Deferred);
                report.counts.add(TableActionTaken::Failed);
                table.action = TableActionTaken::Failed;
                table.reason = Some(format!(
                    "{}; {why}",
                    table.reason.as_deref().unwrap_or("not written")
                ));
            }
        }
        report.error = Some(why);
        checks.iter().all(|vpc| handed.contains(vpc))
    }
}

/// What a hand-off continues: the same scope, so that it never takes over work that other
/// events of the same failover are doing (a route event continues its own destination, a
/// new table its backfill, a reconcile or sweep that VPC).
fn continuation(subject: &Subject, vpc: String) -> Subject {
    match subject {
        Subject::Route {
            table_id,
            destination,
            ..
        } => Subject::Route {
            table_id: table_id.clone(),
            vpc_id: Some(vpc),
            destination: destination.clone(),
            expected: None,
        },
        // The batch's destinations, none of them waiting any more: the continuation reads again.
        Subject::Routes {
            table_id, routes, ..
        } => Subject::Routes {
            table_id: table_id.clone(),
            vpc_id: Some(vpc),
            routes: routes
                .iter()
                .map(|r| NamedRoute {
                    destination: r.destination.clone(),
                    expected: None,
                    source: RequestSource::Manual,
                })
                .collect(),
        },
        Subject::NewTable { table_id, .. } => Subject::NewTable {
            table_id: table_id.clone(),
            vpc_id: vpc,
        },
        Subject::Reconcile { max_deletes, .. } => Subject::Reconcile {
            vpc_id: Some(vpc),
            max_deletes: *max_deletes,
        },
        Subject::Association { .. } => Subject::reconcile(Some(vpc)),
        Subject::Adopt { .. } => Subject::Adopt { vpc_id: Some(vpc) },
    }
}

/// The same event, waited for once more.
fn waited_once_more(request: &SyncRequest) -> SyncRequest {
    let source = match &request.source {
        RequestSource::CloudTrail {
            event_name,
            event_id,
            caller,
            event_time,
            waits,
        } => RequestSource::CloudTrail {
            event_name: event_name.clone(),
            event_id: event_id.clone(),
            caller: caller.clone(),
            event_time: *event_time,
            waits: waits + 1,
        },
        other => other.clone(),
    };
    SyncRequest {
        source,
        ..request.clone()
    }
}

/// How long a continuation of an event that EC2's reads do not show yet waits before it
/// runs (where the hand-off can wait: a queue): 5, 10, 20 s ..., so that the next read comes
/// after EC2 has had time, and the event ages past `fresh_event` within a few tries.
fn wait_delay(waits: u32) -> Duration {
    Duration::from_secs(5u64 << waits.min(6)).min(Duration::from_secs(300))
}
