//! The one request type every trigger turns into (see `adapters::trigger`): which part of
//! which VPC to reconcile, and who asked.

use std::time::SystemTime;

use crate::domain::plan::{Destination, Target};

/// One reconcile to perform, whatever asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub subject: Subject,
    pub dry_run: bool,
    pub source: RequestSource,
}

/// What a trigger names. The engine turns each into a read and a [`crate::domain::plan::Scope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A route was created, replaced or deleted in `table_id`. Only acted on when that is
    /// the VPC's main table: scope = that destination in every custom table.
    Route {
        table_id: String,
        /// Known for manual requests; a CloudTrail record names only the table.
        vpc_id: Option<String>,
        destination: Destination,
        /// What the call left in the main table (CloudTrail), to notice a read that lags
        /// behind it.
        expected: Option<MainRoute>,
    },
    /// Several route events of one batch for the same main table (a failover's routes,
    /// delivered together by the work queue): one read of the VPC, one plan for all the
    /// destinations, one notice. Each keeps what its own event expects and its own source.
    Routes {
        table_id: String,
        vpc_id: Option<String>,
        routes: Vec<NamedRoute>,
    },
    /// A custom table was created: scope = that table, every destination.
    NewTable { table_id: String, vpc_id: String },
    /// A table's association was replaced. If the table is now the VPC's main table, the
    /// whole VPC follows it; a subnet's association change is ignored.
    Association { table_id: String },
    /// One VPC, or every VPC in scope (`None`): a manual reconcile or the scheduled sweep.
    /// `max_deletes` overrides `SYNC_MAX_DELETES` for this request (a person who means a
    /// large delete names the VPC and the number).
    Reconcile {
        vpc_id: Option<String>,
        max_deletes: Option<u32>,
    },
    /// `{"reconcile": true, "adopt": true}`: records as written by sync-routes every custom
    /// route in scope that equals the main table's route; writes and deletes no route.
    Adopt { vpc_id: Option<String> },
}

impl Subject {
    /// Whether the request copies a deletion it was told of (a DeleteRoute event): if that
    /// cannot be done safely now, the request fails so that it is retried.
    pub fn names_a_deletion(&self) -> bool {
        match self {
            Subject::Route { expected, .. } => expected == &Some(MainRoute::Gone),
            Subject::Routes { routes, .. } => {
                routes.iter().any(|r| r.expected == Some(MainRoute::Gone))
            }
            _ => false,
        }
    }

    /// A reconcile of one VPC or every VPC, with the configured delete budget.
    pub fn reconcile(vpc_id: Option<String>) -> Self {
        Subject::Reconcile {
            vpc_id,
            max_deletes: None,
        }
    }
}

/// One destination of `Subject::Routes`, with what its event expects and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedRoute {
    pub destination: Destination,
    pub expected: Option<MainRoute>,
    pub source: RequestSource,
}

impl NamedRoute {
    /// This destination as a request of its own (to hand on an event that waits for EC2).
    pub fn alone(&self, table_id: &str, vpc_id: Option<String>, dry_run: bool) -> SyncRequest {
        SyncRequest {
            subject: Subject::Route {
                table_id: table_id.to_owned(),
                vpc_id,
                destination: self.destination.clone(),
                expected: self.expected.clone(),
            },
            dry_run,
            source: self.source.clone(),
        }
    }
}

/// The main table's route for a destination right after the call an event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainRoute {
    /// CreateRoute or ReplaceRoute wrote this next hop.
    To(Target),
    /// DeleteRoute removed it.
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestSource {
    CloudTrail {
        event_name: String,
        event_id: Option<String>,
        /// Who made the call, for the notice.
        caller: Option<String>,
        /// When CloudTrail recorded the call: the start of the lag a user waits through.
        event_time: Option<SystemTime>,
        /// How many times this event was handed on because EC2's reads did not show it yet
        /// (0 as CloudTrail delivers it).
        waits: u32,
    },
    /// EventBridge's scheduled sweep.
    Schedule,
    /// A manual request (`sync-routes invoke`, a test event in the console).
    Manual,
    /// The original tool's HTTP API, through API Gateway.
    Http,
    /// `sync-routes watch`.
    Watch,
    /// A reconcile handed on by an invocation that met its deadline; `hops` counts the
    /// hand-offs so far, so that a reconcile that never finishes stops somewhere.
    HandOff { hops: u32 },
    /// Several events of one batch, coalesced (`Subject::Routes`); each route keeps its own
    /// source. `event_time` is the earliest, the start of the lag the batch's user waits.
    Batch {
        events: u32,
        event_time: Option<SystemTime>,
    },
}

impl SyncRequest {
    /// What caused a write of `destination`, for the ledger: the CloudTrail event that named
    /// it (for a batch, that destination's own event), else the trigger.
    pub fn cause_of(&self, destination: &Destination) -> String {
        let source = match &self.subject {
            Subject::Routes { routes, .. } => routes
                .iter()
                .rev()
                .find(|r| r.destination == *destination)
                .map_or(&self.source, |r| &r.source),
            _ => &self.source,
        };
        match source {
            RequestSource::CloudTrail {
                event_name,
                event_id: Some(id),
                ..
            } => format!("{event_name} event {id}"),
            other => other.name(),
        }
    }
}

impl RequestSource {
    /// A short name for the report, log lines and the notice.
    pub fn name(&self) -> String {
        match self {
            RequestSource::CloudTrail { event_name, .. } => event_name.clone(),
            RequestSource::Schedule => "schedule".to_owned(),
            RequestSource::Manual => "manual".to_owned(),
            RequestSource::Http => "http".to_owned(),
            RequestSource::Watch => "watch".to_owned(),
            RequestSource::HandOff { .. } => "hand-off".to_owned(),
            RequestSource::Batch { .. } => "batch".to_owned(),
        }
    }
}
