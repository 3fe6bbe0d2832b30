//! EC2's reads lag its writes: a fresh event that a read contradicts is waited out (read
//! again after 1, 2, 4 s), never decided from that read, unless a newer event of the same
//! route was seen confirmed.

use std::time::SystemTime;

use tokio::time::Instant;

use super::{lock, Stop, Syncer, VPC_CACHE_LIMIT};
use crate::domain::plan::{self, Destination, RouteTable};
use crate::domain::ports::{Notifier, RouteTables};
use crate::domain::report::Report;
use crate::domain::request::{MainRoute, NamedRoute, RequestSource, SyncRequest};

impl<E: RouteTables, N: Notifier> Syncer<E, N> {
    /// A fresh event whose read contradicts it (EC2's reads lag its writes): back off and
    /// read again, 1, 2, 4 s while the deadline allows, and never decide from a read that
    /// still contradicts it. An event older than `fresh_event`, or one whose read shows a
    /// change newer than itself, is decided from the read.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn settle_read(
        &self,
        vpc: &str,
        table_id: &str,
        destination: &Destination,
        expected: &MainRoute,
        request: &SyncRequest,
        tables: Vec<RouteTable>,
        deadline: Instant,
        report: &mut Report,
    ) -> Result<Vec<RouteTable>, Stop> {
        let route = NamedRoute {
            destination: destination.clone(),
            expected: Some(expected.clone()),
            source: request.source.clone(),
        };
        let (tables, waiting, retries) = self
            .settle_routes(
                vpc,
                table_id,
                std::slice::from_ref(&route),
                tables,
                deadline,
                report,
            )
            .await?;
        if waiting.is_empty() {
            return Ok(tables);
        }
        let shown = plan::main_target(&tables, destination)
            .map_or_else(|| "no route".to_owned(), ToString::to_string);
        let wanted = match expected {
            MainRoute::To(target) => format!("{destination} -> {target}"),
            MainRoute::Gone => format!("{destination} deleted"),
        };
        let event_name = request.source.name();
        Err(Stop::Waiting(format!(
            "{event_name} of {wanted} in {table_id}: EC2's reads do not show it yet (the main table reads {shown} after {retries} reads again); nothing was decided from that read"
        )))
    }

    /// Reads again (1, 2, 4 s) while a fresh event among `routes` is contradicted by the read,
    /// and returns the tables, the routes whose events are still contradicted (never decided
    /// from that read: a single event waits, a batch's go on alone) and how many times it read
    /// again.
    pub(super) async fn settle_routes(
        &self,
        vpc: &str,
        table_id: &str,
        routes: &[NamedRoute],
        mut tables: Vec<RouteTable>,
        deadline: Instant,
        report: &mut Report,
    ) -> Result<(Vec<RouteTable>, Vec<NamedRoute>, u32), Stop> {
        let mut pause = self.settings.consistency_pause;
        let mut retries = 0;
        loop {
            // Confirm first what the read agrees with, so that an older event of the same
            // route in the batch is seen to be overtaken by a newer one.
            let agreeing: Vec<bool> = routes
                .iter()
                .map(|route| self.agrees(table_id, route, &tables))
                .collect();
            let contradicted: Vec<NamedRoute> = routes
                .iter()
                .zip(agreeing)
                .filter(|(route, agrees)| !agrees && self.still_fresh(table_id, route))
                .map(|(route, _)| route.clone())
                .collect();
            if contradicted.is_empty()
                || retries >= self.settings.consistency_retries
                || Instant::now() + pause >= deadline
            {
                for route in contradicted.iter() {
                    tracing::info!(decision = "waiting-for-ec2", table = %table_id, destination = %route.destination, "EC2's reads do not show this event yet; it goes on alone");
                }
                return Ok((tables, contradicted, retries));
            }
            tracing::info!(decision = "read-again", table = %table_id, routes = contradicted.len(), pause_ms = pause.as_millis() as u64, "the main table does not show every event's change yet");
            tokio::time::sleep(pause).await;
            pause *= 2;
            retries += 1;
            tables = self.read_vpc(vpc, deadline, report).await?;
        }
    }

    /// Whether `tables` show what an event of the batch says it left in the main table (an
    /// event that expects nothing agrees); records the events they confirm.
    pub(super) fn agrees(&self, table_id: &str, route: &NamedRoute, tables: &[RouteTable]) -> bool {
        let Some(expected) = &route.expected else {
            return true;
        };
        let shown = plan::main_target(tables, &route.destination);
        let agrees = match expected {
            MainRoute::To(target) => shown == Some(target),
            MainRoute::Gone => shown.is_none(),
        };
        if let (
            true,
            RequestSource::CloudTrail {
                event_time: Some(event_time),
                ..
            },
        ) = (agrees, &route.source)
        {
            self.confirm(
                (table_id.to_owned(), route.destination.clone()),
                *event_time,
            );
        }
        agrees
    }

    /// Whether a contradicted event is fresh enough to wait for: under `fresh_event` old, and
    /// not overtaken by a newer event of the same route that a read confirmed.
    pub(super) fn still_fresh(&self, table_id: &str, route: &NamedRoute) -> bool {
        let RequestSource::CloudTrail {
            event_time: Some(event_time),
            ..
        } = &route.source
        else {
            return false;
        };
        let age = SystemTime::now()
            .duration_since(*event_time)
            .unwrap_or_default();
        let key = (table_id.to_owned(), route.destination.clone());
        if age > self.settings.fresh_event {
            return false;
        }
        if self.confirmed_after(&key, *event_time) {
            tracing::info!(decision = "newer-change", table = %table_id, destination = %route.destination, "the read shows a change newer than the event");
            return false;
        }
        true
    }

    pub(super) fn confirm(&self, key: (String, Destination), event_time: SystemTime) {
        let mut confirmed = lock(&self.confirmed);
        if confirmed.len() >= VPC_CACHE_LIMIT {
            confirmed.clear();
        }
        let at = confirmed.entry(key).or_insert(event_time);
        *at = (*at).max(event_time);
    }

    pub(super) fn confirmed_after(
        &self,
        key: &(String, Destination),
        event_time: SystemTime,
    ) -> bool {
        lock(&self.confirmed)
            .get(key)
            .is_some_and(|at| *at > event_time)
    }
}
