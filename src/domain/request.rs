//! The one request type every trigger turns into (see `adapters::trigger`).

use ipnet::IpNet;

/// One sync to perform, whatever asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub route_table_id: String,
    /// Known for manual requests; a CloudTrail record names only the table.
    pub vpc_id: Option<String>,
    pub destination: IpNet,
    pub dry_run: bool,
    pub source: RequestSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestSource {
    CloudTrail {
        event_name: String,
        event_id: Option<String>,
        /// Who wrote the route in the main table, for the notice.
        caller: Option<String>,
    },
    Manual,
}
