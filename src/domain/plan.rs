//! Pure decisions: route tables in, a plan out. No I/O and no AWS types, so every rule
//! below is tested with plain values (see the tests at the bottom and `tests/planner.rs`).

use std::collections::BTreeSet;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetKind {
    NetworkInterface,
    TransitGateway,
    NatGateway,
    VpcPeeringConnection,
    /// Internet, virtual private and gateway-endpoint gateways share EC2's `GatewayId`.
    Gateway,
    EgressOnlyInternetGateway,
    CarrierGateway,
    LocalGateway,
    CoreNetwork,
    /// An instance target without a network interface id (EC2 normally reports both).
    Instance,
    /// The VPC's own `local` route.
    Local,
    /// A next hop this version does not know (EC2 adds kinds over time).
    Unknown,
}

impl TargetKind {
    /// Kinds that may be copied, by their setting name. `Instance` and `Local` are never
    /// copied: an instance route is written by its ENI and the local route is implicit.
    pub const COPYABLE: [(&'static str, TargetKind); 9] = [
        ("network-interface", TargetKind::NetworkInterface),
        ("transit-gateway", TargetKind::TransitGateway),
        ("nat-gateway", TargetKind::NatGateway),
        ("vpc-peering-connection", TargetKind::VpcPeeringConnection),
        ("gateway", TargetKind::Gateway),
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

/// How a route came to be, as EC2 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOrigin {
    /// The local route, made with the table.
    CreateRouteTable,
    /// A static route: the only kind that is copied.
    CreateRoute,
    /// Learned from a virtual private gateway.
    EnableVgwRoutePropagation,
    Other(String),
}

impl fmt::Display for RouteOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteOrigin::CreateRouteTable => f.write_str("CreateRouteTable"),
            RouteOrigin::CreateRoute => f.write_str("CreateRoute"),
            RouteOrigin::EnableVgwRoutePropagation => f.write_str("EnableVgwRoutePropagation"),
            RouteOrigin::Other(s) => f.write_str(s),
        }
    }
}

/// A route's destination. Prefix-list destinations exist in tables (gateway endpoints) but
/// are never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Cidr(IpNet),
    PrefixList(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Destination,
    pub target: Target,
    pub state: RouteState,
    pub origin: RouteOrigin,
}

impl Route {
    fn has_destination(&self, cidr: IpNet) -> bool {
        self.destination == Destination::Cidr(cidr)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    /// Whether the table is the VPC's main table (it has the `main` association).
    pub is_main: bool,
    pub routes: Vec<Route>,
}

/// Which next hops may be copied. Parsed once from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub allowed_kinds: BTreeSet<TargetKind>,
}

impl Default for Policy {
    /// ENI targets only, as the original tool: appliances, failover scripts and VMware
    /// Cloud on AWS all route through network interfaces.
    fn default() -> Self {
        Self {
            allowed_kinds: BTreeSet::from([TargetKind::NetworkInterface]),
        }
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
    #[error("{table} is not the main route table of {vpc}{}; only routes of the main table are synced", main.as_deref().map(|m| format!(" (the main table is {m})")).unwrap_or_default())]
    NotMainTable {
        table: String,
        vpc: String,
        main: Option<String>,
    },
    #[error("there is no route for {destination} in the main route table {table}")]
    RouteNotInMainTable { table: String, destination: IpNet },
    #[error("the route for {destination} is the VPC's local route; it is never synced")]
    LocalRoute { destination: IpNet },
    #[error("the route for {destination} is propagated from a virtual private gateway; only static routes (origin CreateRoute) are synced")]
    PropagatedRoute { destination: IpNet },
    #[error("the route for {destination} has origin {origin}; only routes created by CreateRoute are synced")]
    NotCreatedByCreateRoute {
        destination: IpNet,
        origin: RouteOrigin,
    },
    #[error("the route for {destination} is {state}, not active; a route whose next hop is gone is not copied")]
    NotActive {
        destination: IpNet,
        state: RouteState,
    },
    #[error("the route for {destination} points at {target} ({kind}); allowed next hops: {allowed} (set SYNC_TARGET_KINDS to change)")]
    TargetKindNotAllowed {
        destination: IpNet,
        target: String,
        kind: TargetKind,
        allowed: String,
    },
    #[error("{vpc} has no custom route tables; there is nothing to sync")]
    NoCustomTables { vpc: String },
}

impl Refusal {
    /// A stable, machine-readable code for the report, alarms and log queries.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TableNotInVpc { .. } => "table-not-in-vpc",
            Refusal::UnknownTable { .. } => "unknown-table",
            Refusal::NotMainTable { .. } => "not-main-table",
            Refusal::RouteNotInMainTable { .. } => "route-not-in-main-table",
            Refusal::LocalRoute { .. } => "local-route",
            Refusal::PropagatedRoute { .. } => "propagated-route",
            Refusal::NotCreatedByCreateRoute { .. } => "not-created-by-create-route",
            Refusal::NotActive { .. } => "route-not-active",
            Refusal::TargetKindNotAllowed { .. } => "target-kind-not-allowed",
            Refusal::NoCustomTables { .. } => "no-custom-tables",
        }
    }
}

/// Why one custom table is left alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// The safety rule kept from the original tool: never clobber a route that points at a
    /// different kind of next hop (an internet gateway, a NAT gateway, ...).
    #[error("it already routes {destination} to {existing} ({}), a different kind of next hop; left as is", existing.kind)]
    ConflictingTarget {
        destination: IpNet,
        existing: Target,
    },
    /// A static copy would take precedence over the propagated route and silently move the
    /// subnet's traffic off its VPN: that is a decision for a person.
    #[error("it has a propagated route for {destination} via {existing}; a static copy would override it, left as is")]
    PropagatedRouteInTable {
        destination: IpNet,
        existing: Target,
    },
    #[error("its route for {destination} is the local route; left as is")]
    LocalRouteInTable { destination: IpNet },
}

impl SkipReason {
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::ConflictingTarget { .. } => "conflicting-target",
            SkipReason::PropagatedRouteInTable { .. } => "propagated-route-in-table",
            SkipReason::LocalRouteInTable { .. } => "local-route-in-table",
        }
    }
}

/// What to do in one custom table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Replace { before: Target },
    Unchanged,
    Skip(SkipReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAction {
    pub table_id: String,
    pub action: Action,
}

/// The outcome of planning: the route to copy and one action per custom table, ordered by
/// table id so that reports and notices read the same on every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub vpc_id: String,
    pub main_table_id: String,
    pub destination: IpNet,
    pub target: Target,
    pub actions: Vec<TableAction>,
}

impl Plan {
    pub fn writes(&self) -> impl Iterator<Item = &TableAction> {
        self.actions
            .iter()
            .filter(|a| matches!(a.action, Action::Create | Action::Replace { .. }))
    }
}

/// Decides what to do for `destination`, whose change was seen in `table_id`, given every
/// route table of the VPC as it is now. Works from the current state, never from an
/// event's payload, so duplicate, late and reordered events all converge.
pub fn plan(
    vpc_tables: &[RouteTable],
    table_id: &str,
    destination: IpNet,
    policy: &Policy,
) -> Result<Plan, Refusal> {
    let table = vpc_tables
        .iter()
        .find(|t| t.id == table_id)
        .ok_or_else(|| Refusal::UnknownTable {
            table: table_id.to_owned(),
        })?;
    if !table.is_main {
        return Err(Refusal::NotMainTable {
            table: table.id.clone(),
            vpc: table.vpc_id.clone(),
            main: vpc_tables
                .iter()
                .find(|t| t.is_main && t.vpc_id == table.vpc_id)
                .map(|t| t.id.clone()),
        });
    }
    let route = table
        .routes
        .iter()
        .find(|r| r.has_destination(destination))
        .ok_or_else(|| Refusal::RouteNotInMainTable {
            table: table.id.clone(),
            destination,
        })?;
    check_eligible(route, destination, policy)?;

    let mut actions: Vec<TableAction> = vpc_tables
        .iter()
        .filter(|t| !t.is_main && t.vpc_id == table.vpc_id)
        .map(|custom| TableAction {
            table_id: custom.id.clone(),
            action: plan_table(custom, destination, &route.target),
        })
        .collect();
    if actions.is_empty() {
        return Err(Refusal::NoCustomTables {
            vpc: table.vpc_id.clone(),
        });
    }
    actions.sort_by(|a, b| a.table_id.cmp(&b.table_id));
    Ok(Plan {
        vpc_id: table.vpc_id.clone(),
        main_table_id: table.id.clone(),
        destination,
        target: route.target.clone(),
        actions,
    })
}

/// The eligibility rules of the original tool, in the order a person would check them.
fn check_eligible(route: &Route, destination: IpNet, policy: &Policy) -> Result<(), Refusal> {
    if route.origin == RouteOrigin::CreateRouteTable || route.target.kind == TargetKind::Local {
        return Err(Refusal::LocalRoute { destination });
    }
    if route.origin == RouteOrigin::EnableVgwRoutePropagation {
        return Err(Refusal::PropagatedRoute { destination });
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
            allowed: policy
                .allowed_kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(())
}

/// What to do in one custom table so that `destination` routes to `target`. Also used to
/// re-decide a single table after a write met a concurrent change.
pub fn plan_table(custom: &RouteTable, destination: IpNet, target: &Target) -> Action {
    // A table can hold a propagated route and a static route for the same destination; the
    // static one is what we own, so look at it first.
    let existing = custom
        .routes
        .iter()
        .filter(|r| r.has_destination(destination))
        .min_by_key(|r| r.origin != RouteOrigin::CreateRoute);
    let Some(existing) = existing else {
        return Action::Create;
    };
    match &existing.origin {
        RouteOrigin::CreateRouteTable => {
            Action::Skip(SkipReason::LocalRouteInTable { destination })
        }
        RouteOrigin::EnableVgwRoutePropagation => {
            Action::Skip(SkipReason::PropagatedRouteInTable {
                destination,
                existing: existing.target.clone(),
            })
        }
        _ if existing.target == *target => Action::Unchanged,
        _ if existing.target.kind == target.kind => Action::Replace {
            before: existing.target.clone(),
        },
        _ => Action::Skip(SkipReason::ConflictingTarget {
            destination,
            existing: existing.target.clone(),
        }),
    }
}
