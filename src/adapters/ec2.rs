//! EC2: converts SDK types to the planner's at the boundary and back. Decides nothing;
//! classifies errors so that `retry` and the sync engine can.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{self as ec2, Filter};
use aws_sdk_ec2::Client;
use ipnet::IpNet;
use tokio::time::Instant;

use crate::adapters::pacer::Pacer;
use crate::adapters::retry::with_retries;
use crate::domain::plan::{
    Destination, Route, RouteOrigin, RouteState, RouteTable, Target, TargetKind,
};
use crate::domain::sync::{
    AwsError, RetryClass, RouteTables, RouteWrite, WriteError, WriteMode, WriteOutcome,
};

/// Sets the fields that CreateRoute, ReplaceRoute and DeleteRoute share (their builders are
/// distinct types with the same setters): table, destination and dry-run flag.
macro_rules! destination_fields {
    ($builder:expr, $write:expr) => {{
        let write: &RouteWrite = $write;
        let request = $builder
            .route_table_id(&write.table_id)
            .dry_run(write.dry_run);
        match &write.destination {
            Destination::Cidr(net @ IpNet::V4(_)) => {
                request.destination_cidr_block(net.to_string())
            }
            Destination::Cidr(net @ IpNet::V6(_)) => {
                request.destination_ipv6_cidr_block(net.to_string())
            }
            Destination::PrefixList(id) => request.destination_prefix_list_id(id),
        }
    }};
}

/// Adds the next hop to a CreateRoute or ReplaceRoute request, in the field EC2 takes for
/// its kind (which is not always the one DescribeRouteTables reports it in).
macro_rules! target_field {
    ($request:expr, $write:expr) => {{
        let write: &RouteWrite = $write;
        let request = $request;
        let Some(target) = &write.target else {
            return Err(cannot_write(write));
        };
        let id = target.id.clone();
        match target.kind {
            TargetKind::NetworkInterface => Ok(request.network_interface_id(id)),
            TargetKind::TransitGateway => Ok(request.transit_gateway_id(id)),
            TargetKind::NatGateway => Ok(request.nat_gateway_id(id)),
            TargetKind::VpcPeeringConnection => Ok(request.vpc_peering_connection_id(id)),
            TargetKind::InternetGateway | TargetKind::VirtualPrivateGateway => {
                Ok(request.gateway_id(id))
            }
            // Reported in GatewayId, but written with VpcEndpointId ("Supported for Gateway
            // Load Balancer endpoints only").
            TargetKind::VpcEndpoint => Ok(request.vpc_endpoint_id(id)),
            TargetKind::OdbNetwork => Ok(request.odb_network_arn(id)),
            TargetKind::EgressOnlyInternetGateway => {
                Ok(request.egress_only_internet_gateway_id(id))
            }
            TargetKind::CarrierGateway => Ok(request.carrier_gateway_id(id)),
            TargetKind::LocalGateway => Ok(request.local_gateway_id(id)),
            TargetKind::CoreNetwork => Ok(request.core_network_arn(id)),
            TargetKind::Instance => Ok(request.instance_id(id)),
            TargetKind::GatewayEndpoint | TargetKind::Local | TargetKind::Unknown => {
                Err(cannot_write(write))
            }
        }
    }};
}

fn cannot_write(write: &RouteWrite) -> WriteError {
    WriteError::Aws(AwsError {
        operation: "route write",
        code: None,
        message: match &write.target {
            Some(target) => format!("a route to a {} next hop cannot be written", target.kind),
            None => "a create or replace needs a next hop".to_owned(),
        },
        retry: RetryClass::Permanent,
    })
}

pub struct Ec2RouteTables {
    client: Client,
    /// EC2 throttles each action with its own bucket, so each has its own pacing.
    describe_pacer: Pacer,
    create_pacer: Pacer,
    replace_pacer: Pacer,
    delete_pacer: Pacer,
    endpoints_pacer: Pacer,
    /// Whether each `vpce-` id seen in a prefix-list route is a *gateway* endpoint (S3,
    /// DynamoDB), when endpoint routes may be synced at all (`None` otherwise: no call). An
    /// endpoint's type never changes, so it is asked once per process.
    gateway_endpoints: Option<std::sync::Mutex<HashMap<String, bool>>>,
}

impl Ec2RouteTables {
    /// `client` must have SDK retries disabled: `retry::with_retries` owns them.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            describe_pacer: Pacer::default(),
            create_pacer: Pacer::default(),
            replace_pacer: Pacer::default(),
            delete_pacer: Pacer::default(),
            endpoints_pacer: Pacer::default(),
            gateway_endpoints: None,
        }
    }

    /// Tells gateway endpoints from Gateway Load Balancer endpoints: both read as
    /// `pl-... -> vpce-...` with origin CreateRoute, but a gateway endpoint's route is its
    /// association with the table and can never be written with CreateRoute. Only needed
    /// when `vpc-endpoint` routes are synced; then one DescribeVpcEndpoints per read that
    /// holds an endpoint id not seen before.
    pub fn telling_endpoint_types_apart(mut self) -> Self {
        self.gateway_endpoints = Some(std::sync::Mutex::new(HashMap::new()));
        self
    }

    /// Marks the routes to gateway endpoints in `tables` as such.
    async fn mark_gateway_endpoints(
        &self,
        tables: &mut [RouteTable],
        deadline: Instant,
    ) -> Result<(), AwsError> {
        let Some(known) = &self.gateway_endpoints else {
            return Ok(());
        };
        let lock = || known.lock().unwrap_or_else(|p| p.into_inner());
        let endpoint_routes = |table: &RouteTable| {
            table
                .routes
                .iter()
                .filter(|r| {
                    matches!(r.destination, Destination::PrefixList(_))
                        && r.target.kind == TargetKind::VpcEndpoint
                })
                .map(|r| r.target.id.clone())
                .collect::<Vec<_>>()
        };
        let unknown: BTreeSet<String> = {
            let known = lock();
            tables
                .iter()
                .flat_map(endpoint_routes)
                .filter(|id| !known.contains_key(id))
                .collect()
        };
        // Endpoints neither listed nor known (just created, and the list lags): treated as
        // gateway endpoints for this read, the side that never writes; asked again next time.
        let mut unlisted = BTreeSet::new();
        if !unknown.is_empty() {
            let types = self.endpoint_types(deadline).await?;
            let mut known = lock();
            if known.len() > 10_000 {
                known.clear();
            }
            for (id, kind) in types {
                known.insert(id, kind == "Gateway");
            }
            unlisted.extend(unknown.into_iter().filter(|id| !known.contains_key(id)));
        }
        let known = lock();
        for route in tables.iter_mut().flat_map(|t| t.routes.iter_mut()) {
            if matches!(route.destination, Destination::PrefixList(_))
                && route.target.kind == TargetKind::VpcEndpoint
                && (known.get(&route.target.id) == Some(&true)
                    || unlisted.contains(&route.target.id))
            {
                route.target.kind = TargetKind::GatewayEndpoint;
            }
        }
        Ok(())
    }

    /// `VpcEndpointType` of every gateway and Gateway Load Balancer endpoint in the region:
    /// the only two kinds whose routes read `pl-... -> vpce-...`. By type rather than by id,
    /// because asking for an id that no longer exists fails the whole call.
    async fn endpoint_types(&self, deadline: Instant) -> Result<HashMap<String, String>, AwsError> {
        let filter = Filter::builder()
            .name("vpc-endpoint-type")
            .values("Gateway")
            .values("GatewayLoadBalancer")
            .build();
        let mut types = HashMap::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = with_retries(
                "DescribeVpcEndpoints",
                deadline,
                &self.endpoints_pacer,
                || async {
                    self.client
                        .describe_vpc_endpoints()
                        .filters(filter.clone())
                        .set_next_token(next_token.clone())
                        .send()
                        .await
                        .map_err(|e| aws_error("DescribeVpcEndpoints", e))
                },
            )
            .await?;
            for endpoint in page.vpc_endpoints() {
                if let (Some(id), Some(kind)) =
                    (endpoint.vpc_endpoint_id(), endpoint.vpc_endpoint_type())
                {
                    types.insert(id.to_owned(), kind.as_str().to_owned());
                }
            }
            next_token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next_token.is_none() {
                return Ok(types);
            }
        }
    }

    /// One DescribeRouteTables request (following pages), with one filter or none.
    async fn describe(
        &self,
        filter: Option<(&'static str, &[String])>,
        deadline: Instant,
    ) -> Result<Vec<RouteTable>, AwsError> {
        let filter = filter.map(|(name, values)| {
            Filter::builder()
                .name(name)
                .set_values(Some(values.to_vec()))
                .build()
        });
        let mut tables = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = with_retries(
                "DescribeRouteTables",
                deadline,
                &self.describe_pacer,
                || async {
                    let request = self.client.describe_route_tables();
                    let request = match &filter {
                        Some(filter) => request.filters(filter.clone()),
                        // Unfiltered calls must page; 100 tables a page keeps each answer small.
                        None => request.max_results(100),
                    };
                    request
                        .set_next_token(next_token.clone())
                        .send()
                        .await
                        .map_err(|e| aws_error("DescribeRouteTables", e))
                },
            )
            .await?;
            tables.extend(page.route_tables().iter().filter_map(route_table));
            next_token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if next_token.is_none() {
                self.mark_gateway_endpoints(&mut tables, deadline).await?;
                return Ok(tables);
            }
        }
    }
}

impl RouteTables for Ec2RouteTables {
    async fn table(
        &self,
        table_id: &str,
        deadline: Instant,
    ) -> Result<Option<RouteTable>, AwsError> {
        // A filter, not RouteTableIds: an unknown id is then an empty answer, not an error.
        let id = [table_id.to_owned()];
        let tables = self
            .describe(Some(("route-table-id", &id)), deadline)
            .await?;
        Ok(tables.into_iter().find(|t| t.id == table_id))
    }

    async fn vpc_tables(
        &self,
        vpc_ids: &[String],
        deadline: Instant,
    ) -> Result<Vec<RouteTable>, AwsError> {
        // EC2 takes up to 200 values in one filter; more VPCs than that take more calls.
        let mut tables = Vec::new();
        for chunk in vpc_ids.chunks(200) {
            tables.extend(self.describe(Some(("vpc-id", chunk)), deadline).await?);
        }
        Ok(tables)
    }

    async fn all_tables(&self, deadline: Instant) -> Result<Vec<RouteTable>, AwsError> {
        self.describe(None, deadline).await
    }

    fn throttled_calls(&self) -> u32 {
        [
            &self.describe_pacer,
            &self.create_pacer,
            &self.replace_pacer,
            &self.delete_pacer,
            &self.endpoints_pacer,
        ]
        .iter()
        .map(|p| p.throttled())
        .sum()
    }

    async fn write_route(
        &self,
        write: &RouteWrite,
        deadline: Instant,
    ) -> Result<WriteOutcome, WriteError> {
        let (operation, pacer) = match write.mode {
            WriteMode::Create => ("CreateRoute", &self.create_pacer),
            WriteMode::Replace => ("ReplaceRoute", &self.replace_pacer),
            WriteMode::Delete => ("DeleteRoute", &self.delete_pacer),
        };
        let result = with_retries(operation, deadline, pacer, || async {
            let sent = match write.mode {
                WriteMode::Create => target_field!(
                    destination_fields!(self.client.create_route(), write),
                    write
                )?
                .send()
                .await
                .map(drop)
                .map_err(|e| write_error(operation, e)),
                WriteMode::Replace => target_field!(
                    destination_fields!(self.client.replace_route(), write),
                    write
                )?
                .send()
                .await
                .map(drop)
                .map_err(|e| write_error(operation, e)),
                WriteMode::Delete => destination_fields!(self.client.delete_route(), write)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| write_error(operation, e)),
            };
            match sent {
                Ok(()) => Ok(WriteOutcome::Written),
                Err(Written::DryRunPassed) => Ok(WriteOutcome::DryRunPassed),
                Err(Written::Error(error)) => Err(error),
            }
        })
        .await;
        if write.dry_run && result == Ok(WriteOutcome::Written) {
            // Real EC2 never executes a DryRun call; an emulator may. Say so loudly.
            tracing::error!(operation, table = %write.table_id, "the endpoint executed a DryRun call: the route was written");
        }
        result
    }
}

/// What a route write's error means to us. `DryRunOperation` is EC2's success answer for a
/// dry run, so it is not an error here.
enum Written {
    DryRunPassed,
    Error(WriteError),
}

fn write_error<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> Written
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match error.code() {
        Some("DryRunOperation") => Written::DryRunPassed,
        Some("RouteAlreadyExists") => Written::Error(WriteError::AlreadyExists),
        // ReplaceRoute on a destination the table does not have: EC2 answers with the
        // generic InvalidParameterValue ("There is no route defined for '10.1.0.0/16' in
        // the route table. Use CreateRoute instead."), so the message tells it apart.
        Some("InvalidParameterValue")
            if error
                .message()
                .is_some_and(|m| m.contains("no route defined")) =>
        {
            Written::Error(WriteError::NotFound)
        }
        Some("InvalidRoute.NotFound") => Written::Error(WriteError::NotFound),
        Some("InvalidRouteTableID.NotFound") => Written::Error(WriteError::TableNotFound),
        _ => Written::Error(WriteError::Aws(aws_error(operation, error))),
    }
}

/// Classifies an SDK error by what a retry could achieve.
fn aws_error<E>(operation: &'static str, error: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().map(str::to_owned);
    let message = error
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| aws_sdk_ec2::error::DisplayErrorContext(&error).to_string());
    let retry = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            RetryClass::Transient
        }
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            match code.as_deref() {
                Some(c) if is_throttling(c) => RetryClass::Throttled,
                Some(
                    "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable",
                ) => RetryClass::Transient,
                _ if status >= 500 => RetryClass::Transient,
                _ => RetryClass::Permanent,
            }
        }
        _ => RetryClass::Permanent,
    };
    AwsError {
        operation,
        code,
        message,
        retry,
    }
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "TooManyRequestsException"
    )
}

/// SDK route table -> ours. A table without an id or VPC is not one we can act on.
fn route_table(table: &ec2::RouteTable) -> Option<RouteTable> {
    let associations = table.associations();
    Some(RouteTable {
        id: table.route_table_id()?.to_owned(),
        vpc_id: table.vpc_id()?.to_owned(),
        is_main: associations.iter().any(|a| a.main() == Some(true)),
        gateway_association: associations
            .iter()
            .filter(|a| !is_disassociated(a))
            .find_map(|a| a.gateway_id().filter(|g| !g.is_empty()))
            .map(str::to_owned),
        tags: table
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
        routes: table.routes().iter().filter_map(route).collect(),
    })
}

/// A gateway association on its way out no longer makes the table a gateway table.
fn is_disassociated(association: &ec2::RouteTableAssociation) -> bool {
    matches!(
        association.association_state().and_then(|s| s.state()),
        Some(
            ec2::RouteTableAssociationStateCode::Disassociated
                | ec2::RouteTableAssociationStateCode::Disassociating
                | ec2::RouteTableAssociationStateCode::Failed
        )
    )
}

fn route(route: &ec2::Route) -> Option<Route> {
    let destination = if let Some(cidr) = route
        .destination_cidr_block()
        .or(route.destination_ipv6_cidr_block())
    {
        Destination::Cidr(cidr.parse::<IpNet>().ok()?)
    } else {
        Destination::PrefixList(route.destination_prefix_list_id()?.to_owned())
    };
    Some(Route {
        destination,
        target: target(route),
        state: match route.state() {
            Some(ec2::RouteState::Active) => RouteState::Active,
            Some(ec2::RouteState::Blackhole) => RouteState::Blackhole,
            Some(other) => RouteState::Other(other.as_str().to_owned()),
            None => RouteState::Other("unknown".to_owned()),
        },
        origin: match route.origin() {
            Some(ec2::RouteOrigin::CreateRouteTable) => RouteOrigin::CreateRouteTable,
            Some(ec2::RouteOrigin::CreateRoute) => RouteOrigin::CreateRoute,
            Some(ec2::RouteOrigin::EnableVgwRoutePropagation) => {
                RouteOrigin::EnableVgwRoutePropagation
            }
            Some(ec2::RouteOrigin::Advertisement) => RouteOrigin::Advertisement,
            Some(other) => RouteOrigin::Other(other.as_str().to_owned()),
            None => RouteOrigin::Other("unknown".to_owned()),
        },
    })
}

/// The route's next hop. An instance route reports both the instance and its ENI; the
/// ENI is what EC2 routes to, so it wins.
fn target(route: &ec2::Route) -> Target {
    let candidates = [
        (TargetKind::NetworkInterface, route.network_interface_id()),
        (TargetKind::TransitGateway, route.transit_gateway_id()),
        (TargetKind::NatGateway, route.nat_gateway_id()),
        (
            TargetKind::VpcPeeringConnection,
            route.vpc_peering_connection_id(),
        ),
        (
            TargetKind::EgressOnlyInternetGateway,
            route.egress_only_internet_gateway_id(),
        ),
        (TargetKind::CarrierGateway, route.carrier_gateway_id()),
        (TargetKind::LocalGateway, route.local_gateway_id()),
        (TargetKind::CoreNetwork, route.core_network_arn()),
        (TargetKind::Instance, route.instance_id()),
    ];
    if let Some((kind, Some(id))) = candidates
        .into_iter()
        .find(|(_, id)| id.is_some_and(|i| !i.is_empty()))
    {
        return Target::new(kind, id);
    }
    // An ODB network arrives in GatewayId *and* OdbNetworkArn; the ARN is what EC2 takes.
    if let Some(arn) = route.odb_network_arn().filter(|a| !a.is_empty()) {
        return Target::new(TargetKind::OdbNetwork, arn);
    }
    match route.gateway_id() {
        Some("local") => Target::new(TargetKind::Local, "local"),
        Some(id) => Target::new(gateway_kind(id), id),
        None => Target::new(TargetKind::Unknown, "unknown"),
    }
}

/// EC2 reports several kinds of next hop in `GatewayId`; the id's prefix tells them apart.
/// An unknown prefix stays `Unknown`: never copied, never replaced.
pub fn gateway_kind(id: &str) -> TargetKind {
    match id.split_once('-').map(|(prefix, _)| prefix) {
        Some("igw") => TargetKind::InternetGateway,
        Some("vgw") => TargetKind::VirtualPrivateGateway,
        Some("vpce") => TargetKind::VpcEndpoint,
        _ => TargetKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    //! Canned SDK values shaped as EC2 answers them (see shared AWS facts), not as moto does.
    use super::*;

    fn reported(
        build: impl FnOnce(ec2::builders::RouteBuilder) -> ec2::builders::RouteBuilder,
    ) -> Route {
        let sdk = build(
            ec2::Route::builder()
                .destination_cidr_block("10.1.0.0/16")
                .state(ec2::RouteState::Active)
                .origin(ec2::RouteOrigin::CreateRoute),
        )
        .build();
        route(&sdk).expect("a route with a destination")
    }

    #[test]
    fn next_hops_in_gateway_id_get_their_own_kinds() {
        let cases = [
            ("igw-0123456789abcdef0", TargetKind::InternetGateway),
            ("vgw-0123456789abcdef0", TargetKind::VirtualPrivateGateway),
            // A Gateway Load Balancer endpoint (Network Firewall too) comes back in GatewayId.
            ("vpce-0123456789abcdef0", TargetKind::VpcEndpoint),
            ("local", TargetKind::Local),
            ("xyz-0123456789abcdef0", TargetKind::Unknown),
        ];
        for (id, kind) in cases {
            assert_eq!(
                reported(|r| r.gateway_id(id)).target,
                Target::new(kind, id),
                "{id}"
            );
        }
    }

    #[test]
    fn an_odb_network_is_its_arn_and_an_instance_route_its_eni() {
        let arn = "arn:aws:odb:us-east-1:123456789012:odb-network/odbnet_1";
        let odb = reported(|r| r.gateway_id("odbnet_1").odb_network_arn(arn));
        assert_eq!(odb.target, Target::new(TargetKind::OdbNetwork, arn));
        let instance = reported(|r| r.instance_id("i-0123").network_interface_id("eni-0123"));
        assert_eq!(
            instance.target,
            Target::new(TargetKind::NetworkInterface, "eni-0123")
        );
        let nat = reported(|r| r.nat_gateway_id("nat-0123"));
        assert_eq!(nat.target, Target::new(TargetKind::NatGateway, "nat-0123"));
    }

    #[test]
    fn origins_and_prefix_lists_are_read() {
        let server = reported(|r| {
            r.origin(ec2::RouteOrigin::Advertisement)
                .network_interface_id("eni-1")
        });
        assert_eq!(server.origin, RouteOrigin::Advertisement);
        let pl = route(
            &ec2::Route::builder()
                .destination_prefix_list_id("pl-0123456789abcdef0")
                .network_interface_id("eni-1")
                .build(),
        )
        .unwrap();
        assert_eq!(
            pl.destination,
            Destination::PrefixList("pl-0123456789abcdef0".into())
        );
    }

    fn association(
        gateway: Option<&str>,
        state: ec2::RouteTableAssociationStateCode,
    ) -> ec2::RouteTableAssociation {
        ec2::RouteTableAssociation::builder()
            .main(false)
            .set_gateway_id(gateway.map(str::to_owned))
            .association_state(
                ec2::RouteTableAssociationState::builder()
                    .state(state)
                    .build(),
            )
            .build()
    }

    #[test]
    fn an_edge_association_makes_a_gateway_table_and_tags_are_read() {
        let table = |associations: Vec<ec2::RouteTableAssociation>| {
            route_table(
                &ec2::RouteTable::builder()
                    .route_table_id("rtb-1")
                    .vpc_id("vpc-1")
                    .set_associations(Some(associations))
                    .tags(
                        ec2::Tag::builder()
                            .key("sync-routes:skip")
                            .value("true")
                            .build(),
                    )
                    .build(),
            )
            .unwrap()
        };
        let edge = table(vec![association(
            Some("igw-0123456789abcdef0"),
            ec2::RouteTableAssociationStateCode::Associated,
        )]);
        assert_eq!(
            edge.gateway_association.as_deref(),
            Some("igw-0123456789abcdef0")
        );
        assert_eq!(
            edge.tags.get("sync-routes:skip").map(String::as_str),
            Some("true")
        );
        let leaving = table(vec![association(
            Some("vgw-0123456789abcdef0"),
            ec2::RouteTableAssociationStateCode::Disassociated,
        )]);
        assert_eq!(leaving.gateway_association, None);
        let subnet = table(vec![association(
            None,
            ec2::RouteTableAssociationStateCode::Associated,
        )]);
        assert_eq!(subnet.gateway_association, None);
    }

    /// What a create or replace sends, per kind: the endpoint in VpcEndpointId (what EC2
    /// documents for Gateway Load Balancer endpoints), the ODB network by ARN, a prefix list
    /// as DestinationPrefixListId.
    #[test]
    fn writes_name_the_next_hop_in_the_field_ec2_takes() -> Result<(), WriteError> {
        let client = Client::from_conf(
            aws_sdk_ec2::Config::builder()
                .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
                .region(aws_sdk_ec2::config::Region::new("us-east-1"))
                .build(),
        );
        let write = |destination: Destination, target: Target| RouteWrite {
            table_id: "rtb-1".into(),
            destination,
            target: Some(target),
            mode: WriteMode::Create,
            dry_run: false,
        };
        let cidr = Destination::Cidr("10.1.0.0/16".parse().unwrap());
        let w = write(cidr.clone(), Target::new(TargetKind::VpcEndpoint, "vpce-1"));
        let input = target_field!(destination_fields!(client.create_route(), &w), &w)?;
        assert_eq!(input.get_vpc_endpoint_id().as_deref(), Some("vpce-1"));
        assert_eq!(input.get_gateway_id(), &None);

        let w = write(cidr, Target::new(TargetKind::OdbNetwork, "arn:aws:odb:x"));
        let input = target_field!(destination_fields!(client.replace_route(), &w), &w)?;
        assert_eq!(
            input.get_odb_network_arn().as_deref(),
            Some("arn:aws:odb:x")
        );

        let pl = Destination::PrefixList("pl-0123456789abcdef0".into());
        let w = write(pl, Target::new(TargetKind::NetworkInterface, "eni-1"));
        let input = target_field!(destination_fields!(client.create_route(), &w), &w)?;
        assert_eq!(
            input.get_destination_prefix_list_id().as_deref(),
            Some("pl-0123456789abcdef0")
        );
        assert_eq!(input.get_destination_cidr_block(), &None);

        let w = write(
            Destination::Cidr("0.0.0.0/0".parse().unwrap()),
            Target::new(TargetKind::Unknown, "xyz-1"),
        );
        let refused = (|| target_field!(destination_fields!(client.create_route(), &w), &w))();
        assert!(refused.is_err(), "an unknown kind is never written");
        Ok(())
    }
}
