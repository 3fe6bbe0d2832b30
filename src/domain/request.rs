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
    /// A custom table was created: scope = that table, every destination.
    NewTable { table_id: String, vpc_id: String },
    /// A table's association was replaced. If the table is now the VPC's main table, the
    /// whole VPC follows it; a subnet's association change is ignored.
    Association { table_id: String },
    /// One VPC, or every VPC in scope (`None`): a manual reconcile or the scheduled sweep.
    Reconcile { vpc_id: Option<String> },
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
        }
    }
}
