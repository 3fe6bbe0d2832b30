//! Pure decisions: route tables in, a plan out. No I/O and no AWS types, so every rule
//! below is tested with plain values (see the tests at the bottom and `tests/planner.rs`).
//!
//! Every trigger is the same question asked of a smaller or larger part of one VPC
//! ([`Scope`]): "make these custom tables say what the main table says, for these
//! destinations". A route event asks it of one destination, a new table of one table, a
//! main-table move or a sweep of the whole VPC. [`reconcile`] is the only place that answers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::IpNet;

/// What a route's next hop is. The id is what the EC2 API takes to write the same route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub kind: TargetKind,
    pub id: String,
}

impl Target {
    pub fn new(kind: TargetKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// The kinds of next hop EC2 knows. The names are those of the `SYNC_TARGET_KINDS` setting.
/// Each kind is its own: the never-clobber rule only replaces a route by one of the same
/// kind, so an inspection route to a firewall endpoint is never swapped for an internet
/// gateway because both arrive in EC2's `GatewayId` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetKind {
    NetworkInterface,
    TransitGateway,
    NatGateway,
    VpcPeeringConnection,
    /// `igw-`, reported in `GatewayId`.
    InternetGateway,
    /// `vgw-`, reported in `GatewayId`.
    VirtualPrivateGateway,
    /// `vpce-`: a Gateway Load Balancer endpoint (AWS Network Firewall too). Reported in
    /// `GatewayId`, written with `VpcEndpointId`.
    VpcEndpoint,
    /// An Oracle Database@AWS network, reported in `GatewayId` and `OdbNetworkArn`, written
    /// with `OdbNetworkArn` (the id is the ARN).
    OdbNetwork,
    EgressOnlyInternetGateway,
    CarrierGateway,
    LocalGateway,
    CoreNetwork,
    /// An S3 or DynamoDB *gateway* endpoint (`vpce-`, in `GatewayId` like a GWLB endpoint).
    /// Its route is the endpoint's association with a table, made by CreateVpcEndpoint or
    /// ModifyVpcEndpoint, never by CreateRoute: never copied, never replaced.
    GatewayEndpoint,
    /// An instance target without a network interface id (EC2 normally reports both).
    Instance,
    /// The VPC's own `local` route.
    Local,
    /// A next hop this version does not know (EC2 adds kinds over time). Never copied,
    /// never replaced.
    Unknown,
}

impl TargetKind {
    /// Kinds that may be copied, by their setting name. `Instance` and `Local` are never
    /// copied: an instance route is written by its ENI and the local route is implicit.
    pub const COPYABLE: [(&'static str, TargetKind); 12] = [
        ("network-interface", TargetKind::NetworkInterface),
        ("transit-gateway", TargetKind::TransitGateway),
        ("nat-gateway", TargetKind::NatGateway),
        ("vpc-peering-connection", TargetKind::VpcPeeringConnection),
        ("internet-gateway", TargetKind::InternetGateway),
        ("virtual-private-gateway", TargetKind::VirtualPrivateGateway),
        ("vpc-endpoint", TargetKind::VpcEndpoint),
        ("odb-network", TargetKind::OdbNetwork),
        (
            "egress-only-internet-gateway",
            TargetKind::EgressOnlyInternetGateway,
        ),
        ("carrier-gateway", TargetKind::CarrierGateway),
        ("local-gateway", TargetKind::LocalGateway),
        ("core-network", TargetKind::CoreNetwork),
    ];

    pub fn name(self) -> &'static str {
        match self {
            TargetKind::GatewayEndpoint => "gateway-endpoint",
            TargetKind::Instance => "instance",
            TargetKind::Local => "local",
            TargetKind::Unknown => "unknown",
            kind => Self::COPYABLE
                .iter()
                .find(|(_, k)| *k == kind)
                .map(|(name, _)| *name)
                .unwrap_or("unknown"),
        }
    }

    pub fn from_name(name: &str) -> Option<TargetKind> {
        Self::COPYABLE
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteState {
    Active,
    /// The next hop is gone (a deleted ENI, a stopped instance).
    Blackhole,
    Other(String),
}

impl fmt::Display for RouteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteState::Active => f.write_str("active"),
            RouteState::Blackhole => f.write_str("blackhole"),
            RouteState::Other(s) => f.write_str(s),
        }
    }
}

/// How a route came to be, as EC2 reports it. Only `CreateRoute` routes are ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOrigin {
    /// The local route, made with the table.
    CreateRouteTable,
    /// A static route: the only kind that is copied, replaced or deleted.
    CreateRoute,
    /// Learned from a virtual private gateway.
    EnableVgwRoutePropagation,
    /// Written by VPC Route Server from BGP.
    Advertisement,
    Other(String),
}

impl fmt::Display for RouteOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteOrigin::CreateRouteTable => f.write_str("CreateRouteTable"),
            RouteOrigin::CreateRoute => f.write_str("CreateRoute"),
            RouteOrigin::EnableVgwRoutePropagation => f.write_str("EnableVgwRoutePropagation"),
            RouteOrigin::Advertisement => f.write_str("Advertisement"),
            RouteOrigin::Other(s) => f.write_str(s),
        }
    }
}

/// A route's destination: a CIDR block (IPv4 or IPv6) or a managed prefix list, which VMware
/// Cloud on AWS uses in its managed prefix list mode.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    Cidr(IpNet),
    PrefixList(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Cidr(net) => net.fmt(f),
            Destination::PrefixList(id) => f.write_str(id),
        }
    }
}

impl From<IpNet> for Destination {
    fn from(net: IpNet) -> Self {
        Destination::Cidr(net)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Destination,
    pub target: Target,
    pub state: RouteState,
    pub origin: RouteOrigin,
}

/// The tag that keeps sync-routes out of a custom table: `sync-routes:skip` = `true`.
pub const SKIP_TAG: &str = "sync-routes:skip";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    /// Whether the table is the VPC's main table (it has the `main` association).
    pub is_main: bool,
    /// The internet or virtual private gateway of an edge association, if any: such a
    /// table routes traffic *entering* the VPC and is never a subnet's custom table.
    pub gateway_association: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// A table with no association to a gateway and no tags, as most tables are.
    pub fn new(id: &str, vpc_id: &str, is_main: bool, routes: Vec<Route>) -> Self {
        Self {
            id: id.to_owned(),
            vpc_id: vpc_id.to_owned(),
            is_main,
            gateway_association: None,
            tags: BTreeMap::new(),
            routes,
        }
    }

    fn opted_out(&self) -> bool {
        self.tags
            .get(SKIP_TAG)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The route in effect for `destination`. A table can hold a static and a propagated
    /// route for the same destination (EC2 lists them in no promised order); the static one
    /// takes precedence in EC2's routing and is the one we own, so it wins here too.
    pub fn route_for(&self, destination: &Destination) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.destination == *destination)
            .min_by_key(|r| r.origin != RouteOrigin::CreateRoute)
    }
}

/// One entry of `SYNC_DESTINATIONS`: a CIDR admits every route inside it, a prefix list
/// only itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationFilter {
    Within(IpNet),
    PrefixList(String),
}

impl DestinationFilter {
    fn admits(&self, destination: &Destination) -> bool {
        match (self, destination) {
            (DestinationFilter::Within(scope), Destination::Cidr(net)) => scope.contains(net),
            (DestinationFilter::PrefixList(scope), Destination::PrefixList(id)) => scope == id,
            _ => false,
        }
    }
}

impl fmt::Display for DestinationFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationFilter::Within(net) => net.fmt(f),
            DestinationFilter::PrefixList(id) => f.write_str(id),
        }
    }
}

/// What may be synced, and where. Parsed once from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `SYNC_TARGET_KINDS`.
    pub allowed_kinds: BTreeSet<TargetKind>,
    /// `SYNC_DESTINATIONS`; `None` admits every destination.
    pub destinations: Option<Vec<DestinationFilter>>,
    /// `SYNC_VPC_IDS`; `None` admits every VPC.
    pub vpc_ids: Option<BTreeSet<String>>,
    /// `SYNC_PROPAGATE_DELETES`: only ever true together with `destinations` (config
    /// refuses it otherwise), so deletes always have an explicit scope.
    pub propagate_deletes: bool,
}

impl Default for Policy {
    /// ENI targets only, as the original tool: appliances, failover scripts and VMware
    /// Cloud on AWS all route through network interfaces. Every VPC and destination; no
    /// deletes.
    fn default() -> Self {
        Self {
            allowed_kinds: BTreeSet::from([TargetKind::NetworkInterface]),
            destinations: None,
            vpc_ids: None,
            propagate_deletes: false,
        }
    }
}

impl Policy {
    pub fn admits_destination(&self, destination: &Destination) -> bool {
        self.destinations
            .as_ref()
            .is_none_or(|filters| filters.iter().any(|f| f.admits(destination)))
    }

    pub fn admits_vpc(&self, vpc_id: &str) -> bool {
        self.vpc_ids.as_ref().is_none_or(|ids| ids.contains(vpc_id))
    }

    fn deletes(&self, destination: &Destination) -> bool {
        self.propagate_deletes
            && self.destinations.is_some()
            && self.admits_destination(destination)
    }

    fn allowed_names(&self) -> String {
        self.allowed_kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a request as a whole was refused. Each variant carries what a network engineer
/// needs to see in the report to act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("route table {table} is not in {vpc}")]
    TableNotInVpc { table: String, vpc: String },
    #[error("route table {table} does not exist (or this function may not see it)")]
    UnknownTable { table: String },
    #[error("{vpc} has no route tables: it does not exist, or this function may not see it")]
    UnknownVpc { vpc: String },
    #[error("{vpc} has no main route table")]
    NoMainTable { vpc: String },
    #[error("{table} is not the main route table of {vpc}{}; only routes of the main table are synced", main.as_deref().map(|m| format!(" (the main table is {m})")).unwrap_or_default())]
    NotMainTable {
        table: String,
        vpc: String,
        main: Option<String>,
    },
    #[error("{table} is the main route table of {vpc}; routes are copied from it, never to it")]
    IsMainTable { table: String, vpc: String },
    #[error("{destination} is outside SYNC_DESTINATIONS ({scope}); it is not synced")]
    OutOfScope {
        destination: Destination,
        scope: String,
    },
    #[error("there is no route for {destination} in the main route table {table}")]
    RouteNotInMainTable {
        table: String,
        destination: Destination,
    },
    #[error("the route for {destination} is the VPC's local route; it is never synced")]
    LocalRoute { destination: Destination },
    #[error("the route for {destination} is propagated from a virtual private gateway; only static routes (origin CreateRoute) are synced")]
    PropagatedRoute { destination: Destination },
    #[error("the route for {destination} via {target} is a gateway endpoint's association with the table (made by its VPC endpoint, not by CreateRoute); it is never copied")]
    GatewayEndpointRoute {
        destination: Destination,
        target: String,
    },
    #[error("the route for {destination} has origin {origin}; only routes created by CreateRoute are synced")]
    NotCreatedByCreateRoute {
        destination: Destination,
        origin: RouteOrigin,
    },
    #[error("the route for {destination} is {state}, not active; a route whose next hop is gone is not copied")]
    NotActive {
        destination: Destination,
        state: RouteState,
    },
    #[error("the route for {destination} points at {target} ({kind}); allowed next hops: {allowed} (set SYNC_TARGET_KINDS to change)")]
    TargetKindNotAllowed {
        destination: Destination,
        target: String,
        kind: TargetKind,
        allowed: String,
    },
    #[error("{vpc} has no custom route tables; there is nothing to sync")]
    NoCustomTables { vpc: String },
    /// Adopting records routes in the ledger, which exists only with deletes on.
    #[error("adopt records routes as written by sync-routes in its ledger, which exists only with deletes on (SYNC_PROPAGATE_DELETES=true and SYNC_LEDGER_TABLE; the CDK prop propagateDeletes); nothing was recorded")]
    NoLedger,
}

impl Refusal {
    /// A stable, machine-readable code for the report, alarms and log queries.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TableNotInVpc { .. } => "table-not-in-vpc",
            Refusal::UnknownTable { .. } => "unknown-table",
            Refusal::UnknownVpc { .. } => "unknown-vpc",
            Refusal::NoMainTable { .. } => "no-main-table",
            Refusal::NotMainTable { .. } => "not-main-table",
            Refusal::IsMainTable { .. } => "is-main-table",
            Refusal::OutOfScope { .. } => "destination-out-of-scope",
            Refusal::RouteNotInMainTable { .. } => "route-not-in-main-table",
            Refusal::LocalRoute { .. } => "local-route",
            Refusal::PropagatedRoute { .. } => "propagated-route",
            Refusal::GatewayEndpointRoute { .. } => "gateway-endpoint-route",
            Refusal::NotCreatedByCreateRoute { .. } => "not-created-by-create-route",
            Refusal::NotActive { .. } => "route-not-active",
            Refusal::TargetKindNotAllowed { .. } => "target-kind-not-allowed",
            Refusal::NoCustomTables { .. } => "no-custom-tables",
            Refusal::NoLedger => "no-ledger",
        }
    }
}

/// Why one destination in one custom table is left alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// The safety rule kept from the original tool: never clobber a route that points at a
    /// different kind of next hop (an internet gateway, a NAT gateway, ...).
    #[error("it already routes {destination} to {existing} ({}), a different kind of next hop; left as is", existing.kind)]
    ConflictingTarget {
        destination: Destination,
        existing: Target,
    },
    /// A static copy would take precedence over the propagated route and silently move the
    /// subnet's traffic off its VPN: that is a decision for a person.
    #[error("it has a propagated route for {destination} via {existing}; a static copy would override it, left as is")]
    PropagatedRouteInTable {
        destination: Destination,
        existing: Target,
    },
    /// VPC Route Server (origin `Advertisement`) and any origin EC2 adds later own their
    /// routes; only `CreateRoute` routes are ours.
    #[error("its route for {destination} via {existing} has origin {origin}, which another service manages; left as is")]
    ForeignOrigin {
        destination: Destination,
        existing: Target,
        origin: RouteOrigin,
    },
    #[error("its route for {destination} is the local route; left as is")]
    LocalRouteInTable { destination: Destination },
    /// An S3 or DynamoDB gateway endpoint's route belongs to the endpoint.
    #[error("its route for {destination} via {existing} belongs to a gateway endpoint (S3 or DynamoDB); left as is")]
    GatewayEndpointRoute {
        destination: Destination,
        existing: Target,
    },
    /// Deletes need ownership: the ledger has no record that sync-routes wrote this route,
    /// or it recorded another next hop (the route was re-pointed since).
    #[error("its route for {destination} via {existing} was not written by sync-routes (or was re-pointed since); only routes sync-routes wrote are deleted, left as is")]
    NotWrittenBySyncRoutes {
        destination: Destination,
        existing: Target,
    },
    /// The request planned more deletes than `SYNC_MAX_DELETES`: none of them is made.
    #[error("would delete {destination} via {existing}, but this request plans {planned} deletes, more than SYNC_MAX_DELETES ({max}): none made; if that is meant, run {{\"reconcile\": true, \"vpc-id\": \"{vpc}\", \"max-deletes\": {planned}}}")]
    DeleteBudgetExceeded {
        destination: Destination,
        existing: Target,
        vpc: String,
        planned: u32,
        max: u32,
    },
    /// The ledger could not be read, so ownership is unknown: the safe side is no delete.
    #[error("would delete {destination} via {existing}, but the ledger of sync-routes' own routes could not be read; not deleted")]
    LedgerUnavailable {
        destination: Destination,
        existing: Target,
    },
}

impl SkipReason {
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::ConflictingTarget { .. } => "conflicting-target",
            SkipReason::PropagatedRouteInTable { .. } => "propagated-route-in-table",
            SkipReason::ForeignOrigin { .. } => "foreign-origin",
            SkipReason::LocalRouteInTable { .. } => "local-route-in-table",
            SkipReason::GatewayEndpointRoute { .. } => "gateway-endpoint-route",
            SkipReason::NotWrittenBySyncRoutes { .. } => "not-written-by-sync-routes",
            SkipReason::DeleteBudgetExceeded { .. } => "delete-budget-exceeded",
            SkipReason::LedgerUnavailable { .. } => "ledger-unavailable",
        }
    }

    /// The next hop the table keeps.
    pub fn existing(&self) -> String {
        match self {
            SkipReason::ConflictingTarget { existing, .. }
            | SkipReason::PropagatedRouteInTable { existing, .. }
            | SkipReason::ForeignOrigin { existing, .. }
            | SkipReason::GatewayEndpointRoute { existing, .. }
            | SkipReason::NotWrittenBySyncRoutes { existing, .. }
            | SkipReason::DeleteBudgetExceeded { existing, .. }
            | SkipReason::LedgerUnavailable { existing, .. } => existing.to_string(),
            SkipReason::LocalRouteInTable { .. } => "local".to_owned(),
        }
    }
}

/// Why a whole custom table is left alone, whatever the destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableSkip {
    /// EC2 refuses most routes in a gateway route table, and one it accepts (a subnet's
    /// range to an ENI) silently pulls inbound internet or VPN traffic through the appliance.
    #[error("it is a gateway route table (associated with {gateway}); its routes steer traffic entering the VPC, so it is never synced")]
    GatewayTable { gateway: String },
    #[error("it is tagged {SKIP_TAG}=true; never written")]
    OptedOut,
}

impl TableSkip {
    pub fn code(&self) -> &'static str {
        match self {
            TableSkip::GatewayTable { .. } => "gateway-route-table",
            TableSkip::OptedOut => "skip-tag",
        }
    }
}

/// What to do for one destination in one custom table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Replace {
        before: Target,
    },
    /// Deletes propagation only: the main table no longer has the destination.
    Delete {
        before: Target,
    },
    Unchanged,
    Skip(SkipReason),
}

impl Action {
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Action::Create | Action::Replace { .. } | Action::Delete { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAction {
    pub table_id: String,
    pub action: Action,
}

/// One destination of a VPC plan: the main table's next hop (`None`: the main table no
/// longer has the destination and deletes are on), and one action per custom table in
/// scope, ordered by table id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    pub destination: Destination,
    pub target: Option<Target>,
    pub actions: Vec<TableAction>,
}

/// The outcome of planning one VPC, ordered by destination and table id so that reports
/// and notices read the same on every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcPlan {
    pub vpc_id: String,
    pub main_table_id: String,
    pub routes: Vec<RoutePlan>,
    /// Custom tables in scope that are left alone as a whole, with the reason.
    pub skipped_tables: Vec<(String, TableSkip)>,
    /// With `Destinations::Some`: the named destinations refused, each with its reason.
    pub refused: Vec<(Destination, Refusal)>,
}

impl VpcPlan {
    pub fn writes(&self) -> impl Iterator<Item = (&RoutePlan, &TableAction)> {
        self.routes
            .iter()
            .flat_map(|r| r.actions.iter().map(move |a| (r, a)))
            .filter(|(_, a)| a.action.is_write())
    }
}

/// Which destinations of a VPC to reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destinations {
    /// Every destination: the main table's eligible routes (and, with deletes on, the
    /// custom tables' routes that the main table no longer has).
    All,
    /// One destination, named by an event or a request. Unlike `All`, an ineligible route
    /// is refused with its reason, so the person who asked learns why nothing moved.
    One(Destination),
    /// Several destinations, named by the events of one batch for one main table (a
    /// failover's routes): each is decided as `One` would decide it, and an ineligible one
    /// is refused on its own (`VpcPlan::refused`) without stopping the others.
    Some(BTreeSet<Destination>),
}

/// Which custom tables of a VPC to reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tables {
    AllCustom,
    /// One table, for example a new one to backfill.
    One(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub destinations: Destinations,
    pub tables: Tables,
}

impl Scope {
    pub fn vpc() -> Self {
        Self {
            destinations: Destinations::All,
            tables: Tables::AllCustom,
        }
    }

    pub fn destination(destination: Destination) -> Self {
        Self {
            destinations: Destinations::One(destination),
            tables: Tables::AllCustom,
        }
    }

    pub fn table(table_id: &str) -> Self {
        Self {
            destinations: Destinations::All,
            tables: Tables::One(table_id.to_owned()),
        }
    }
}

/// Decides what to do in the custom tables of one VPC, given all its tables as they are
/// now. Works from the current state, never from an event's payload, so duplicate, late
/// and reordered events all converge, and a plan applied leaves nothing to do.
pub fn reconcile(
    vpc_tables: &[RouteTable],
    scope: &Scope,
    policy: &Policy,
) -> Result<VpcPlan, Refusal> {
    let vpc_id = vpc_tables
        .first()
        .map(|t| t.vpc_id.clone())
        .unwrap_or_default();
    let main = vpc_tables
        .iter()
        .find(|t| t.is_main)
        .ok_or_else(|| Refusal::NoMainTable {
            vpc: vpc_id.clone(),
        })?;
    let customs: Vec<&RouteTable> = match &scope.tables {
        Tables::AllCustom => vpc_tables.iter().filter(|t| !t.is_main).collect(),
        Tables::One(id) => {
            let table = vpc_tables
                .iter()
                .find(|t| t.id == *id)
                .ok_or_else(|| Refusal::UnknownTable { table: id.clone() })?;
            if table.is_main {
                return Err(Refusal::IsMainTable {
                    table: id.clone(),
                    vpc: vpc_id,
                });
            }
            vec![table]
        }
    };
    let mut skipped_tables = Vec::new();
    let mut writable = Vec::new();
    for table in customs {
        if let Some(gateway) = &table.gateway_association {
            skipped_tables.push((
                table.id.clone(),
                TableSkip::GatewayTable {
                    gateway: gateway.clone(),
                },
            ));
        } else if table.opted_out() {
            skipped_tables.push((table.id.clone(), TableSkip::OptedOut));
        } else {
            writable.push(table);
        }
    }
    writable.sort_by(|a, b| a.id.cmp(&b.id));
    skipped_tables.sort_by(|a, b| a.0.cmp(&b.0));

    let mut refused = Vec::new();
    let wanted = match &scope.destinations {
        Destinations::One(destination) => {
            vec![wanted_for_one(main, destination, policy)?]
        }
        Destinations::Some(destinations) => destinations
            .iter()
            .filter_map(
                |destination| match wanted_for_one(main, destination, policy) {
                    Ok(wanted) => Some(wanted),
                    Err(refusal) => {
                        refused.push((destination.clone(), refusal));
                        None
                    }
                },
            )
            .collect(),
        Destinations::All => wanted_for_all(main, &writable, policy),
    };
    if writable.is_empty() && skipped_tables.is_empty() && scope.destinations != Destinations::All {
        return Err(Refusal::NoCustomTables {
            vpc: main.vpc_id.clone(),
        });
    }

    let routes = wanted
        .into_iter()
        .map(|(destination, target)| {
            let actions = writable
                .iter()
                .map(|custom| TableAction {
                    table_id: custom.id.clone(),
                    action: match &target {
                        Some(target) => plan_table(custom, &destination, target),
                        None => plan_delete(custom, &destination, policy),
                    },
                })
                .collect();
            RoutePlan {
                destination,
                target,
                actions,
            }
        })
        .collect();
    Ok(VpcPlan {
        vpc_id: main.vpc_id.clone(),
        main_table_id: main.id.clone(),
        routes,
        skipped_tables,
        refused,
    })
}

/// The main table's next hop for one named destination, or the refusal that explains why
/// it is not synced. `None`: the main table no longer has it, and deletes are on for it.
fn wanted_for_one(
    main: &RouteTable,
    destination: &Destination,
    policy: &Policy,
) -> Result<(Destination, Option<Target>), Refusal> {
    if !policy.admits_destination(destination) {
        return Err(Refusal::OutOfScope {
            destination: destination.clone(),
            scope: policy
                .destinations
                .iter()
                .flatten()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    match main.route_for(destination) {
        Some(route) => {
            check_eligible(route, policy)?;
            Ok((destination.clone(), Some(route.target.clone())))
        }
        None if policy.deletes(destination) => Ok((destination.clone(), None)),
        None => Err(Refusal::RouteNotInMainTable {
            table: main.id.clone(),
            destination: destination.clone(),
        }),
    }
}

/// Every destination a whole-VPC reconcile looks at: the main table's eligible routes, and
/// with deletes on, our kind of static route in a custom table whose destination the main
/// table no longer has at all (an ineligible main route still keeps its copies).
fn wanted_for_all(
    main: &RouteTable,
    customs: &[&RouteTable],
    policy: &Policy,
) -> Vec<(Destination, Option<Target>)> {
    let mut wanted: BTreeMap<Destination, Option<Target>> = BTreeMap::new();
    for route in &main.routes {
        let destination = &route.destination;
        if wanted.contains_key(destination) || !policy.admits_destination(destination) {
            continue;
        }
        if let Some(effective) = main.route_for(destination) {
            if check_eligible(effective, policy).is_ok() {
                wanted.insert(destination.clone(), Some(effective.target.clone()));
            }
        }
    }
    for route in customs.iter().flat_map(|t| &t.routes) {
        let destination = &route.destination;
        if policy.deletes(destination)
            && !wanted.contains_key(destination)
            && main.route_for(destination).is_none()
            && is_ours(route, policy)
        {
            wanted.insert(destination.clone(), None);
        }
    }
    wanted.into_iter().collect()
}

/// A route in a custom table that sync-routes may replace or delete: static, and to a
/// kind of next hop it syncs.
fn is_ours(route: &Route, policy: &Policy) -> bool {
    route.origin == RouteOrigin::CreateRoute && policy.allowed_kinds.contains(&route.target.kind)
}

/// The eligibility rules of the original tool, in the order a person would check them.
fn check_eligible(route: &Route, policy: &Policy) -> Result<(), Refusal> {
    let destination = route.destination.clone();
    if route.origin == RouteOrigin::CreateRouteTable || route.target.kind == TargetKind::Local {
        return Err(Refusal::LocalRoute { destination });
    }
    if route.origin == RouteOrigin::EnableVgwRoutePropagation {
        return Err(Refusal::PropagatedRoute { destination });
    }
    if route.target.kind == TargetKind::GatewayEndpoint {
        return Err(Refusal::GatewayEndpointRoute {
            destination,
            target: route.target.id.clone(),
        });
    }
    if route.origin != RouteOrigin::CreateRoute {
        return Err(Refusal::NotCreatedByCreateRoute {
            destination,
            origin: route.origin.clone(),
        });
    }
    if route.state != RouteState::Active {
        return Err(Refusal::NotActive {
            destination,
            state: route.state.clone(),
        });
    }
    if !policy.allowed_kinds.contains(&route.target.kind) {
        return Err(Refusal::TargetKindNotAllowed {
            destination,
            target: route.target.id.clone(),
            kind: route.target.kind,
            allowed: policy.allowed_names(),
        });
    }
    Ok(())
}

/// What to do in one custom table so that `destination` routes to `target`. Also used to
/// re-decide a single table after a write met a concurrent change.
pub fn plan_table(custom: &RouteTable, destination: &Destination, target: &Target) -> Action {
    let Some(existing) = custom.route_for(destination) else {
        return Action::Create;
    };
    if let Some(skip) = not_ours(existing) {
        return Action::Skip(skip);
    }
    if existing.target == *target {
        Action::Unchanged
    } else if existing.target.kind == target.kind {
        Action::Replace {
            before: existing.target.clone(),
        }
    } else {
        Action::Skip(SkipReason::ConflictingTarget {
            destination: destination.clone(),
            existing: existing.target.clone(),
        })
    }
}

/// What to do in one custom table now that the main table no longer has `destination`:
/// delete our kind of static route, leave every other route as it is.
pub fn plan_delete(custom: &RouteTable, destination: &Destination, policy: &Policy) -> Action {
    let Some(existing) = custom.route_for(destination) else {
        return Action::Unchanged;
    };
    if let Some(skip) = not_ours(existing) {
        return Action::Skip(skip);
    }
    if policy.allowed_kinds.contains(&existing.target.kind) {
        Action::Delete {
            before: existing.target.clone(),
        }
    } else {
        Action::Skip(SkipReason::ConflictingTarget {
            destination: destination.clone(),
            existing: existing.target.clone(),
        })
    }
}

/// Why a custom table's route for a destination belongs to someone else, if it does.
fn not_ours(existing: &Route) -> Option<SkipReason> {
    let destination = existing.destination.clone();
    match &existing.origin {
        // Reported with origin CreateRoute, but the endpoint's own.
        RouteOrigin::CreateRoute if existing.target.kind == TargetKind::GatewayEndpoint => {
            Some(SkipReason::GatewayEndpointRoute {
                destination,
                existing: existing.target.clone(),
            })
        }
        RouteOrigin::CreateRoute => None,
        RouteOrigin::CreateRouteTable => Some(SkipReason::LocalRouteInTable { destination }),
        RouteOrigin::EnableVgwRoutePropagation => Some(SkipReason::PropagatedRouteInTable {
            destination,
            existing: existing.target.clone(),
        }),
        origin => Some(SkipReason::ForeignOrigin {
            destination,
            existing: existing.target.clone(),
            origin: origin.clone(),
        }),
    }
}

/// The main table's current next hop for `destination`, for the engine's check that its
/// read agrees with an event it has just received (EC2 is eventually consistent).
pub fn main_target<'a>(
    vpc_tables: &'a [RouteTable],
    destination: &Destination,
) -> Option<&'a Target> {
    vpc_tables
        .iter()
        .find(|t| t.is_main)
        .and_then(|t| t.route_for(destination))
        .map(|r| &r.target)
}

/// A route write that EC2 acknowledged during this request: `before` is what the table had
/// (`None`: no route), `after` what was written (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnWrite {
    pub vpc_id: String,
    pub table_id: String,
    pub destination: Destination,
    pub before: Option<Target>,
    pub after: Option<Target>,
}

/// Makes a re-read agree with the writes EC2 has already acknowledged to us. EC2's reads lag
/// its writes: a table read right after our write may still show what the write replaced.
/// Planning from that would either write the same route again (harmless, but each rewrite
/// lags too, so it never settles) or, worse, miss that our write is now wrong: after a
/// failback, a stale read showing the old next hop looks "already right" while the table
/// really holds the one we just wrote. So where a table still shows exactly what one of our
/// writes replaced, the write is taken as done. A table that shows anything else has been
/// written since (by someone else) and is believed as read. Returns how many routes were
/// taken from our writes rather than from the read.
pub fn believe_own_writes(tables: &mut [RouteTable], writes: &[OwnWrite]) -> usize {
    let mut believed = 0;
    for write in writes {
        let Some(table) = tables.iter_mut().find(|t| t.id == write.table_id) else {
            continue; // gone since: nothing to believe
        };
        let position = table.routes.iter().position(|r| {
            r.destination == write.destination && r.origin == RouteOrigin::CreateRoute
        });
        let shown = position.map(|i| &table.routes[i].target);
        if shown != write.before.as_ref() || write.before == write.after {
            continue;
        }
        believed += 1;
        match (position, &write.after) {
            (Some(i), Some(after)) => {
                table.routes[i].target = after.clone();
                table.routes[i].state = RouteState::Active;
            }
            (Some(i), None) => {
                table.routes.remove(i);
            }
            (None, Some(after)) => table.routes.push(Route {
                destination: write.destination.clone(),
                target: after.clone(),
                state: RouteState::Active,
                origin: RouteOrigin::CreateRoute,
            }),
            (None, None) => {}
        }
    }
    believed
}
