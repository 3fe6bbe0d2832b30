//! The event formats: every trigger becomes one `SyncRequest`, or a clear reason why not.
//!
//! The shapes are told apart by their keys:
//! - the EventBridge envelope (`detail-type`) of a CloudTrail record of `CreateRoute`,
//!   `ReplaceRoute`, `DeleteRoute`, `CreateRouteTable` or `ReplaceRouteTableAssociation`,
//!   or of the scheduled sweep (`Scheduled Event` from `aws.events`);
//! - a manual reconcile: `{"reconcile": true, "vpc-id": "vpc-...", "dry-run": false}`;
//! - a manual request in the original tool's body format, plus its path parameters:
//!   `{"vpc-id", "route-table-id", "destination-cidr-block", "dry-run"}`;
//! - the original tool's HTTP API through API Gateway (a REST proxy event): `PATCH
//!   /vpcs/{vpc-id}/route-tables/{route-table-id}` with the same body.
//!
//! Parsing is tolerant (CloudTrail leaves many fields out or `null`) but validation is
//! strict: ids and CIDRs are checked here so that nothing malformed reaches EC2.
//!
//! Why our own CloudTrail struct rather than `aws_lambda_events`' `AWSAPICall`: that type
//! requires fields CloudTrail omits in some records (`userIdentity.type` details, `userAgent`
//! for calls made by AWS services on a customer's behalf, as VMware Cloud on AWS's are) and
//! has no `errorCode`, which is how a failed call is told from a successful one.

use std::time::SystemTime;

use aws_lambda_events::event::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::adapters::ec2::gateway_kind;
use crate::domain::plan::{Destination, Target, TargetKind};
use crate::domain::request::{MainRoute, NamedRoute, RequestSource, Subject, SyncRequest};

/// Lambda's own limit for an asynchronous invocation; anything larger is not a real event.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";
/// The top-level key of an event handed on while EC2's reads did not show it yet: how many
/// times it has been.
const WAITS_KEY: &str = "sync-routes-waits";
const EVENT_NAMES: [&str; 5] = [
    "CreateRoute",
    "ReplaceRoute",
    "DeleteRoute",
    "CreateRouteTable",
    "ReplaceRouteTableAssociation",
];

/// What a payload asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Sync(SyncRequest),
    /// A well-formed event that is not ours to act on (a failed call, another region ...).
    Ignore(String),
}

/// A payload that cannot be understood. Never retried: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the payload is {0} bytes; the limit is {MAX_PAYLOAD_BYTES}")]
    TooLarge(usize),
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    #[error("the payload is neither an EventBridge event nor a manual request (expected \"detail-type\", \"reconcile\", or \"route-table-id\" and \"destination-cidr-block\")")]
    UnknownShape,
    #[error("the event does not have the expected shape: {0}")]
    BadEvent(String),
    #[error("the manual request does not have the expected shape: {0}")]
    BadManualRequest(String),
    #[error("{field} is missing")]
    Missing { field: &'static str },
    #[error("{field} {value:?} is not a valid {what}")]
    Invalid {
        field: &'static str,
        value: String,
        what: &'static str,
    },
    #[error("{field} {value} has host bits set; did you mean {network}?")]
    HostBitsSet {
        field: &'static str,
        value: String,
        network: IpNet,
    },
    #[error("{0}")]
    Unsupported(String),
}

/// Turns a raw payload into a trigger. `region` is the function's own region: an event
/// from another region describes tables this function's EC2 client cannot see.
pub fn parse(payload: &str, region: Option<&str>) -> Result<Trigger, InputError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(InputError::TooLarge(payload.len()));
    }
    let value: Value =
        serde_json::from_str(payload).map_err(|e| InputError::NotJson(e.to_string()))?;
    let Some(object) = value.as_object() else {
        return Err(InputError::UnknownShape);
    };
    if is_api_gateway(object) {
        let event: ApiGatewayProxyRequest =
            serde_json::from_value(value).map_err(|e| InputError::BadEvent(e.to_string()))?;
        from_api_gateway(event).map(Trigger::Sync)
    } else if object.contains_key("detail-type") {
        // Set by the function itself on an event it hands on while waiting for EC2's reads.
        let waits = object
            .get(WAITS_KEY)
            .and_then(Value::as_u64)
            .map_or(0, |n| n.min(u64::from(u32::MAX)) as u32);
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(value).map_err(|e| InputError::BadEvent(e.to_string()))?;
        from_eventbridge(event, region, waits)
    } else if object.contains_key("reconcile") {
        let request: ReconcileRequest = serde_json::from_value(value)
            .map_err(|e| InputError::BadManualRequest(e.to_string()))?;
        from_reconcile(request).map(Trigger::Sync)
    } else if object.contains_key("route-table-id") || object.contains_key("destination-cidr-block")
    {
        let request: ManualRequest = serde_json::from_value(value)
            .map_err(|e| InputError::BadManualRequest(e.to_string()))?;
        from_manual(request).map(Trigger::Sync)
    } else {
        Err(InputError::UnknownShape)
    }
}

/// Where a payload's work is: the account and region an EventBridge event came from (a
/// member's, forwarded to an organization's hub, keeps its own), or that a manual request
/// names (`"account"`, `"region"`). `None`: the function's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub account: Option<String>,
    pub region: Option<String>,
}

/// The `Location` of a payload, checked: an account is 12 digits, a region a region name.
/// An API Gateway request is always the function's own.
pub fn location_of(payload: &str) -> Result<Location, InputError> {
    let value: Value =
        serde_json::from_str(payload).map_err(|e| InputError::NotJson(e.to_string()))?;
    let Some(object) = value.as_object().filter(|o| !is_api_gateway(o)) else {
        return Ok(Location::default());
    };
    let field = |name: &'static str| match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(InputError::Invalid {
            field: name,
            value: other.to_string(),
            what: "string",
        }),
    };
    let account = field("account")?;
    if let Some(account) = &account {
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(InputError::Invalid {
                field: "account",
                value: account.clone(),
                what: "12-digit AWS account id",
            });
        }
    }
    let region = field("region")?;
    if let Some(region) = &region {
        if !crate::config::is_region(region) {
            return Err(InputError::Invalid {
                field: "region",
                value: region.clone(),
                what: "region name",
            });
        }
    }
    Ok(Location { account, region })
}

/// A continuation payload that keeps its work where it was: the account and region of a
/// member are written into it (both payload shapes read them at the top level).
pub fn stamp(payload: &str, location: &Location) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(payload) else {
        return payload.to_owned();
    };
    if let Some(object) = value.as_object_mut() {
        if let Some(account) = &location.account {
            object.insert("account".into(), account.clone().into());
        }
        if let Some(region) = &location.region {
            object.insert("region".into(), region.clone().into());
        }
    }
    value.to_string()
}

fn is_api_gateway(object: &serde_json::Map<String, Value>) -> bool {
    object.contains_key("httpMethod") && object.contains_key("requestContext")
}

/// Whether a payload is an API Gateway proxy event, whose caller expects an HTTP response.
pub fn is_http(payload: &str) -> bool {
    serde_json::from_str::<Value>(payload)
        .ok()
        .and_then(|v| v.as_object().map(is_api_gateway))
        .unwrap_or(false)
}

/// A batch from the SQS event source mapping (the work queue): `{"Records": [...]}` whose
/// records come from `aws:sqs`. Each record's body is an event in one of the shapes above.
pub fn sqs_batch(payload: &str) -> Option<SqsEvent> {
    let value: Value = serde_json::from_str(payload).ok()?;
    let from_sqs = value
        .get("Records")?
        .as_array()?
        .first()?
        .get("eventSource")?
        .as_str()?
        == "aws:sqs";
    if !from_sqs {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// The body of the original tool's PATCH: the ids come from the path.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct HttpBody {
    destination_cidr_block: Option<String>,
    #[serde(default)]
    dry_run: Option<bool>,
}

fn from_api_gateway(event: ApiGatewayProxyRequest) -> Result<SyncRequest, InputError> {
    if event.http_method != aws_lambda_events::http::Method::PATCH {
        return Err(InputError::Unsupported(format!(
            "{} is not supported; the API takes PATCH /vpcs/{{vpc-id}}/route-tables/{{route-table-id}}",
            event.http_method
        )));
    }
    if event.is_base64_encoded {
        return Err(InputError::BadManualRequest(
            "the body must be JSON text, not base64".into(),
        ));
    }
    let body: HttpBody = serde_json::from_str(event.body.as_deref().unwrap_or(""))
        .map_err(|e| InputError::BadManualRequest(format!("the body is not valid: {e}")))?;
    let path = |name: &str| event.path_parameters.get(name).cloned();
    let mut request = from_manual(ManualRequest {
        account: None,
        region: None,
        vpc_id: Some(valid_id("vpc-id", path("vpc-id"), "vpc-")?),
        route_table_id: path("route-table-id"),
        destination_cidr_block: body.destination_cidr_block,
        destination_prefix_list_id: None,
        destinations: None,
        dry_run: body.dry_run,
        hand_off: None,
    })?;
    request.source = RequestSource::Http;
    Ok(request)
}

/// The parts of a CloudTrail record we read. Everything is optional: CloudTrail omits
/// fields freely, and `requestParameters` is `null` for some failed calls.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CloudTrailDetail {
    event_source: Option<String>,
    event_name: Option<String>,
    // CloudTrail spells it "eventID", not camelCase.
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    event_time: Option<String>,
    aws_region: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    request_parameters: Option<RequestParameters>,
    response_elements: Option<ResponseElements>,
    user_identity: Option<UserIdentity>,
}

/// The request parameters of every call we act on, in CloudTrail's camelCase API names.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RequestParameters {
    route_table_id: Option<String>,
    vpc_id: Option<String>,
    destination_cidr_block: Option<String>,
    destination_ipv6_cidr_block: Option<String>,
    destination_prefix_list_id: Option<String>,
    network_interface_id: Option<String>,
    gateway_id: Option<String>,
    transit_gateway_id: Option<String>,
    nat_gateway_id: Option<String>,
    vpc_peering_connection_id: Option<String>,
    egress_only_internet_gateway_id: Option<String>,
    carrier_gateway_id: Option<String>,
    local_gateway_id: Option<String>,
    core_network_arn: Option<String>,
    vpc_endpoint_id: Option<String>,
    odb_network_arn: Option<String>,
}

impl RequestParameters {
    /// The next hop the call wrote, as DescribeRouteTables will report it. `None` where
    /// the two differ (an instance id is reported with its ENI) or nothing was named.
    fn written_target(&self) -> Option<Target> {
        let named = [
            (TargetKind::NetworkInterface, &self.network_interface_id),
            (TargetKind::TransitGateway, &self.transit_gateway_id),
            (TargetKind::NatGateway, &self.nat_gateway_id),
            (
                TargetKind::VpcPeeringConnection,
                &self.vpc_peering_connection_id,
            ),
            (
                TargetKind::EgressOnlyInternetGateway,
                &self.egress_only_internet_gateway_id,
            ),
            (TargetKind::CarrierGateway, &self.carrier_gateway_id),
            (TargetKind::LocalGateway, &self.local_gateway_id),
            (TargetKind::CoreNetwork, &self.core_network_arn),
            (TargetKind::VpcEndpoint, &self.vpc_endpoint_id),
            (TargetKind::OdbNetwork, &self.odb_network_arn),
        ];
        if let Some((kind, Some(id))) = named.into_iter().find(|(_, id)| id.is_some()) {
            return Some(Target::new(kind, id.clone()));
        }
        // A NAT gateway written through GatewayId is reported in NatGatewayId.
        let gateway = self.gateway_id.as_deref()?;
        let kind = match gateway_kind(gateway) {
            TargetKind::Unknown if gateway.starts_with("nat-") => TargetKind::NatGateway,
            kind => kind,
        };
        Some(Target::new(kind, gateway))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResponseElements {
    route_table: Option<CreatedRouteTable>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CreatedRouteTable {
    route_table_id: Option<String>,
    vpc_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct UserIdentity {
    arn: Option<String>,
    account_id: Option<String>,
    invoked_by: Option<String>,
}

impl UserIdentity {
    /// The best name for the caller: calls from another account (VMware Cloud on AWS)
    /// may carry no ARN.
    fn describe(self) -> Option<String> {
        self.arn
            .or(self.invoked_by)
            .or(self.account_id.map(|a| format!("account {a}")))
    }
}

fn from_eventbridge(
    event: EventBridgeEvent<Value>,
    region: Option<&str>,
    waits: u32,
) -> Result<Trigger, InputError> {
    if event.detail_type == SCHEDULE_DETAIL_TYPE && event.source == "aws.events" {
        return Ok(Trigger::Sync(SyncRequest {
            subject: Subject::reconcile(None),
            dry_run: false,
            source: RequestSource::Schedule,
        }));
    }
    if event.detail_type != CLOUDTRAIL_DETAIL_TYPE || event.source != "aws.ec2" {
        return Ok(Trigger::Ignore(format!(
            "not an EC2 API call recorded by CloudTrail nor the scheduled sweep (source {:?}, detail-type {:?})",
            event.source, event.detail_type
        )));
    }
    let detail: CloudTrailDetail = match event.detail {
        Value::Null => return Err(InputError::Missing { field: "detail" }),
        detail => {
            serde_json::from_value(detail).map_err(|e| InputError::BadEvent(e.to_string()))?
        }
    };
    let event_name = detail.event_name.unwrap_or_default();
    if !EVENT_NAMES.contains(&event_name.as_str()) {
        return Ok(Trigger::Ignore(format!(
            "event {event_name:?} is none of {}",
            EVENT_NAMES.join(", ")
        )));
    }
    if let Some(source) = detail.event_source.as_deref() {
        if source != "ec2.amazonaws.com" {
            return Ok(Trigger::Ignore(format!(
                "event source {source:?} is not ec2.amazonaws.com"
            )));
        }
    }
    if let Some(code) = detail.error_code {
        return Ok(Trigger::Ignore(format!(
            "the {event_name} call failed ({code}: {}); nothing changed",
            detail.error_message.unwrap_or_default()
        )));
    }
    let event_region = detail.aws_region.or(event.region);
    if let (Some(ours), Some(theirs)) = (region, event_region.as_deref()) {
        if ours != theirs {
            return Ok(Trigger::Ignore(format!(
                "the event is for region {theirs}; this function syncs {ours}"
            )));
        }
    }
    let params = detail.request_parameters.ok_or(InputError::Missing {
        field: "detail.requestParameters",
    })?;
    // CloudTrail's eventTime, else the envelope's time (the same instant, to the second).
    let event_time = detail
        .event_time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(SystemTime::from)
        .or(event.time.map(SystemTime::from));
    let source = RequestSource::CloudTrail {
        event_name: event_name.clone(),
        event_id: detail.event_id,
        caller: detail.user_identity.and_then(UserIdentity::describe),
        event_time,
        waits,
    };
    let subject = match event_name.as_str() {
        "CreateRouteTable" => {
            let created = detail
                .response_elements
                .and_then(|r| r.route_table)
                .unwrap_or_default();
            Subject::NewTable {
                table_id: valid_id(
                    "detail.responseElements.routeTable.routeTableId",
                    created.route_table_id,
                    "rtb-",
                )?,
                vpc_id: valid_id(
                    "detail.requestParameters.vpcId",
                    created.vpc_id.or(params.vpc_id),
                    "vpc-",
                )?,
            }
        }
        "ReplaceRouteTableAssociation" => Subject::Association {
            table_id: valid_id(
                "detail.requestParameters.routeTableId",
                params.route_table_id,
                "rtb-",
            )?,
        },
        // CreateRoute, ReplaceRoute, DeleteRoute
        _ => Subject::Route {
            table_id: valid_id(
                "detail.requestParameters.routeTableId",
                params.route_table_id.clone(),
                "rtb-",
            )?,
            vpc_id: None,
            destination: cloudtrail_destination(&params)?,
            expected: if event_name == "DeleteRoute" {
                Some(MainRoute::Gone)
            } else {
                params.written_target().map(MainRoute::To)
            },
        },
    };
    Ok(Trigger::Sync(SyncRequest {
        subject,
        dry_run: false,
        source,
    }))
}

/// The destination of a CloudTrail route record. EC2 stores `10.181.0.18/16` as
/// `10.181.0.0/16` but CloudTrail records what the caller sent, so host bits are cleared
/// here (with a warning) rather than refused: the call succeeded, the route exists.
fn cloudtrail_destination(params: &RequestParameters) -> Result<Destination, InputError> {
    if let Some(prefix_list) = &params.destination_prefix_list_id {
        return valid_id(
            "detail.requestParameters.destinationPrefixListId",
            Some(prefix_list.clone()),
            "pl-",
        )
        .map(Destination::PrefixList);
    }
    let (field, value) = match (
        &params.destination_cidr_block,
        &params.destination_ipv6_cidr_block,
    ) {
        (Some(v4), _) => ("detail.requestParameters.destinationCidrBlock", v4),
        (None, Some(v6)) => ("detail.requestParameters.destinationIpv6CidrBlock", v6),
        (None, None) => {
            return Err(InputError::Missing {
                field: "detail.requestParameters.destinationCidrBlock",
            })
        }
    };
    match valid_cidr(field, value) {
        Err(InputError::HostBitsSet { network, .. }) => {
            tracing::warn!(decision = "canonicalized", field, value = %value, destination = %network, "the call named a CIDR with host bits set; EC2 stored its network");
            Ok(Destination::Cidr(network))
        }
        other => other.map(Destination::Cidr),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ReconcileRequest {
    reconcile: bool,
    vpc_id: Option<String>,
    /// With `vpc-id`: backfill that one table, as for a new table.
    route_table_id: Option<String>,
    #[serde(default)]
    dry_run: Option<bool>,
    /// With `vpc-id`: this request's delete budget instead of `SYNC_MAX_DELETES`.
    max_deletes: Option<u32>,
    /// Record the custom routes that equal the main table's as written by sync-routes.
    #[serde(default)]
    adopt: bool,
    /// Set by the function itself when it hands a reconcile on (see `hand_off_payload`).
    hand_off: Option<u32>,
    /// An organization's hub: the account and region to work in, read by `location_of`
    /// before the request is parsed (here they are only admitted).
    #[allow(dead_code)]
    account: Option<String>,
    #[allow(dead_code)]
    region: Option<String>,
}

fn from_reconcile(request: ReconcileRequest) -> Result<SyncRequest, InputError> {
    if !request.reconcile {
        return Err(InputError::BadManualRequest(
            "\"reconcile\" must be true to ask for a reconcile".into(),
        ));
    }
    let vpc_id = match request.vpc_id {
        Some(vpc) => Some(valid_id("vpc-id", Some(vpc), "vpc-")?),
        None => None,
    };
    if request.max_deletes.is_some() && (vpc_id.is_none() || request.route_table_id.is_some()) {
        return Err(InputError::BadManualRequest(
            "\"max-deletes\" needs \"vpc-id\" (and no \"route-table-id\"): a larger delete budget is given for one VPC at a time".into(),
        ));
    }
    if request.adopt && (request.route_table_id.is_some() || request.max_deletes.is_some()) {
        return Err(InputError::BadManualRequest(
            "\"adopt\" takes only \"vpc-id\" and \"dry-run\": it records routes, it writes and deletes none".into(),
        ));
    }
    let subject = match (request.route_table_id, vpc_id) {
        (None, vpc_id) if request.adopt => Subject::Adopt { vpc_id },
        (Some(table), Some(vpc_id)) => Subject::NewTable {
            table_id: valid_id("route-table-id", Some(table), "rtb-")?,
            vpc_id,
        },
        (Some(_), None) => return Err(InputError::Missing { field: "vpc-id" }),
        (None, vpc_id) => Subject::Reconcile {
            vpc_id,
            max_deletes: request.max_deletes,
        },
    };
    Ok(SyncRequest {
        subject,
        dry_run: request.dry_run.unwrap_or(false),
        source: source(request.hand_off),
    })
}

/// The payload of a hand-off: the request that continues `request`'s scope in a new
/// invocation, in the manual formats above plus `"hand-off": N`. `None` for a request that
/// is not a hand-off.
pub fn hand_off_payload(request: &SyncRequest) -> Option<String> {
    if let RequestSource::CloudTrail { .. } = request.source {
        return waiting_event_payload(request);
    }
    let RequestSource::HandOff { hops } = request.source else {
        return None;
    };
    let mut payload = serde_json::json!({"dry-run": request.dry_run, "hand-off": hops});
    match &request.subject {
        Subject::Route {
            table_id,
            vpc_id,
            destination,
            ..
        } => {
            payload["route-table-id"] = table_id.clone().into();
            if let Some(vpc) = vpc_id {
                payload["vpc-id"] = vpc.clone().into();
            }
            match destination {
                Destination::Cidr(net) => {
                    payload["destination-cidr-block"] = net.to_string().into()
                }
                Destination::PrefixList(id) => {
                    payload["destination-prefix-list-id"] = id.clone().into()
                }
            }
        }
        Subject::Routes {
            table_id,
            vpc_id,
            routes,
        } => {
            payload["route-table-id"] = table_id.clone().into();
            if let Some(vpc) = vpc_id {
                payload["vpc-id"] = vpc.clone().into();
            }
            payload["destinations"] = routes
                .iter()
                .map(|r| r.destination.to_string())
                .collect::<Vec<_>>()
                .into();
        }
        Subject::NewTable { table_id, vpc_id } => {
            payload["reconcile"] = true.into();
            payload["vpc-id"] = vpc_id.clone().into();
            payload["route-table-id"] = table_id.clone().into();
        }
        Subject::Reconcile {
            vpc_id,
            max_deletes,
        } => {
            payload["reconcile"] = true.into();
            if let Some(vpc) = vpc_id {
                payload["vpc-id"] = vpc.clone().into();
            }
            if let Some(max) = max_deletes {
                payload["max-deletes"] = (*max).into();
            }
        }
        // Adopting writes no route, so nothing is ever left over to hand on.
        Subject::Association { .. } | Subject::Adopt { .. } => return None,
    }
    Some(payload.to_string())
}

/// A route event handed on while EC2's reads did not show it yet: the same CloudTrail event
/// again (as far as the function reads it), so that the next invocation judges its age and
/// its expected next hop exactly as for the original, plus how many times it waited.
fn waiting_event_payload(request: &SyncRequest) -> Option<String> {
    let RequestSource::CloudTrail {
        event_name,
        event_id,
        caller,
        event_time,
        waits,
    } = &request.source
    else {
        return None;
    };
    let Subject::Route {
        table_id,
        destination,
        expected,
        ..
    } = &request.subject
    else {
        return None;
    };
    let mut parameters = serde_json::json!({ "routeTableId": table_id });
    match destination {
        Destination::Cidr(net @ IpNet::V4(_)) => {
            parameters["destinationCidrBlock"] = net.to_string().into()
        }
        Destination::Cidr(net @ IpNet::V6(_)) => {
            parameters["destinationIpv6CidrBlock"] = net.to_string().into()
        }
        Destination::PrefixList(id) => parameters["destinationPrefixListId"] = id.clone().into(),
    }
    if let Some(MainRoute::To(target)) = expected {
        parameters[request_field(target.kind)?] = target.id.clone().into();
    }
    let time = event_time.map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
    let mut detail = serde_json::json!({
        "eventSource": "ec2.amazonaws.com",
        "eventName": event_name,
        "requestParameters": parameters,
    });
    if let Some(id) = event_id {
        detail["eventID"] = id.clone().into();
    }
    if let Some(time) = &time {
        detail["eventTime"] = time.clone().into();
    }
    if let Some(caller) = caller {
        detail["userIdentity"] = serde_json::json!({ "arn": caller });
    }
    let mut event = serde_json::json!({
        "version": "0",
        "detail-type": CLOUDTRAIL_DETAIL_TYPE,
        "source": "aws.ec2",
        "detail": detail,
    });
    event[WAITS_KEY] = (*waits).into();
    if let Some(time) = time {
        event["time"] = time.into();
    }
    Some(event.to_string())
}

/// The CloudTrail `requestParameters` field that names a next hop of this kind (the inverse
/// of `RequestParameters::written_target`).
fn request_field(kind: TargetKind) -> Option<&'static str> {
    Some(match kind {
        TargetKind::NetworkInterface => "networkInterfaceId",
        TargetKind::TransitGateway => "transitGatewayId",
        TargetKind::NatGateway => "natGatewayId",
        TargetKind::VpcPeeringConnection => "vpcPeeringConnectionId",
        TargetKind::EgressOnlyInternetGateway => "egressOnlyInternetGatewayId",
        TargetKind::CarrierGateway => "carrierGatewayId",
        TargetKind::LocalGateway => "localGatewayId",
        TargetKind::CoreNetwork => "coreNetworkArn",
        TargetKind::VpcEndpoint => "vpcEndpointId",
        TargetKind::OdbNetwork => "odbNetworkArn",
        TargetKind::InternetGateway | TargetKind::VirtualPrivateGateway => "gatewayId",
        TargetKind::GatewayEndpoint
        | TargetKind::Instance
        | TargetKind::Local
        | TargetKind::Unknown => return None,
    })
}

fn source(hand_off: Option<u32>) -> RequestSource {
    match hand_off {
        Some(hops) => RequestSource::HandOff { hops },
        None => RequestSource::Manual,
    }
}

/// The original tool's request: its URL path parameters and body in one object (a prefix
/// list may stand for the CIDR).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ManualRequest {
    vpc_id: Option<String>,
    route_table_id: Option<String>,
    destination_cidr_block: Option<String>,
    destination_prefix_list_id: Option<String>,
    /// Several destinations (CIDRs and pl- ids) of one main table: how the function hands on
    /// the rest of a coalesced batch.
    destinations: Option<Vec<String>>,
    #[serde(default)]
    dry_run: Option<bool>,
    /// Set by the function itself when it hands a request on (see `hand_off_payload`).
    hand_off: Option<u32>,
    /// An organization's hub: the account and region to work in, read by `location_of`
    /// before the request is parsed (here they are only admitted).
    #[allow(dead_code)]
    account: Option<String>,
    #[allow(dead_code)]
    region: Option<String>,
}

fn from_manual(request: ManualRequest) -> Result<SyncRequest, InputError> {
    if let Some(destinations) = request.destinations {
        if request.destination_cidr_block.is_some() || request.destination_prefix_list_id.is_some()
        {
            return Err(InputError::BadManualRequest(
                "give destinations, or one destination-cidr-block or destination-prefix-list-id, not both".into(),
            ));
        }
        let vpc_id = match request.vpc_id {
            Some(vpc) => Some(valid_id("vpc-id", Some(vpc), "vpc-")?),
            None => None,
        };
        let mut routes = Vec::new();
        for destination in destinations {
            let destination = if destination.starts_with("pl-") {
                Destination::PrefixList(valid_id("destinations", Some(destination), "pl-")?)
            } else {
                Destination::Cidr(valid_cidr("destinations", &destination)?)
            };
            routes.push(NamedRoute {
                destination,
                expected: None,
                source: RequestSource::Manual,
            });
        }
        if routes.is_empty() {
            return Err(InputError::Missing {
                field: "destinations",
            });
        }
        return Ok(SyncRequest {
            subject: Subject::Routes {
                table_id: valid_id("route-table-id", request.route_table_id, "rtb-")?,
                vpc_id,
                routes,
            },
            dry_run: request.dry_run.unwrap_or(false),
            source: source(request.hand_off),
        });
    }
    // The table names its VPC, so the id is optional; when given it is checked.
    let vpc_id = match request.vpc_id {
        Some(vpc) => Some(valid_id("vpc-id", Some(vpc), "vpc-")?),
        None => None,
    };
    let route_table_id = valid_id("route-table-id", request.route_table_id, "rtb-")?;
    let destination = match (
        request.destination_cidr_block,
        request.destination_prefix_list_id,
    ) {
        (Some(cidr), None) => Destination::Cidr(valid_cidr("destination-cidr-block", &cidr)?),
        (None, Some(pl)) => {
            Destination::PrefixList(valid_id("destination-prefix-list-id", Some(pl), "pl-")?)
        }
        (Some(_), Some(_)) => {
            return Err(InputError::BadManualRequest(
                "give destination-cidr-block or destination-prefix-list-id, not both".into(),
            ))
        }
        (None, None) => {
            return Err(InputError::Missing {
                field: "destination-cidr-block",
            })
        }
    };
    Ok(SyncRequest {
        subject: Subject::Route {
            table_id: route_table_id,
            vpc_id,
            destination,
            expected: None,
        },
        dry_run: request.dry_run.unwrap_or(false),
        source: source(request.hand_off),
    })
}

/// EC2 ids are a prefix and 8 or 17 lowercase hex digits.
fn valid_id(
    field: &'static str,
    value: Option<String>,
    prefix: &'static str,
) -> Result<String, InputError> {
    let value = value.ok_or(InputError::Missing { field })?;
    let hex = value.strip_prefix(prefix).unwrap_or("");
    let ok = (8..=17).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(value)
    } else {
        Err(InputError::Invalid {
            field,
            value: truncate(&value),
            what: match prefix {
                "rtb-" => "route table id (rtb- and 8 or 17 hex digits)",
                "pl-" => "prefix list id (pl- and 8 or 17 hex digits)",
                _ => "VPC id (vpc- and 8 or 17 hex digits)",
            },
        })
    }
}

/// A destination must be written as EC2 writes it: the network address and its length.
fn valid_cidr(field: &'static str, value: &str) -> Result<IpNet, InputError> {
    let net: IpNet = value.trim().parse().map_err(|_| InputError::Invalid {
        field,
        value: truncate(value),
        what: "CIDR block (for example 10.1.0.0/16)",
    })?;
    if net.trunc() != net {
        return Err(InputError::HostBitsSet {
            field,
            value: value.to_owned(),
            network: net.trunc(),
        });
    }
    Ok(net)
}

/// Keeps an oversized value from flooding the log and the report.
fn truncate(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
    }
}
