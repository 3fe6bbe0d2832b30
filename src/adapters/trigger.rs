//! The event formats: every trigger becomes one `SyncRequest`, or a clear reason why not.
//!
//! Two shapes are accepted, told apart by their keys:
//! - the EventBridge envelope of a CloudTrail record (`detail-type` "AWS API Call via
//!   CloudTrail") for `CreateRoute` / `ReplaceRoute`;
//! - a manual request in the original tool's body format, plus its path parameters:
//!   `{"vpc-id", "route-table-id", "destination-cidr-block", "dry-run"}`.
//!
//! Parsing is tolerant (CloudTrail leaves many fields out or `null`) but validation is
//! strict: ids and CIDRs are checked here so that nothing malformed reaches EC2.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::request::{RequestSource, SyncRequest};

/// Lambda's own limit for an asynchronous invocation; anything larger is not a real event.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
const ROUTE_EVENTS: [&str; 2] = ["CreateRoute", "ReplaceRoute"];

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
    #[error("the payload is neither an EventBridge event nor a manual request (expected \"detail-type\", or \"route-table-id\" and \"destination-cidr-block\")")]
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
    if object.contains_key("detail-type") {
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(value).map_err(|e| InputError::BadEvent(e.to_string()))?;
        from_eventbridge(event, region)
    } else if object.contains_key("route-table-id") || object.contains_key("destination-cidr-block")
    {
        let request: ManualRequest = serde_json::from_value(value)
            .map_err(|e| InputError::BadManualRequest(e.to_string()))?;
        from_manual(request).map(Trigger::Sync)
    } else {
        Err(InputError::UnknownShape)
    }
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
    aws_region: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    request_parameters: Option<RouteRequestParameters>,
    user_identity: Option<UserIdentity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RouteRequestParameters {
    route_table_id: Option<String>,
    destination_cidr_block: Option<String>,
    destination_ipv6_cidr_block: Option<String>,
    destination_prefix_list_id: Option<String>,
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
) -> Result<Trigger, InputError> {
    if event.detail_type != CLOUDTRAIL_DETAIL_TYPE || event.source != "aws.ec2" {
        return Ok(Trigger::Ignore(format!(
            "not an EC2 API call recorded by CloudTrail (source {:?}, detail-type {:?})",
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
    if !ROUTE_EVENTS.contains(&event_name.as_str()) {
        return Ok(Trigger::Ignore(format!(
            "event {event_name:?} is not CreateRoute or ReplaceRoute"
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
            "the {event_name} call failed ({code}: {}); nothing changed in the main table",
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
    let route_table_id = valid_id(
        "detail.requestParameters.routeTableId",
        params.route_table_id,
        "rtb-",
    )?;
    if let Some(prefix_list) = params.destination_prefix_list_id {
        return Err(InputError::Unsupported(format!(
            "routes to prefix lists ({prefix_list}) are not synced; only CIDR destinations"
        )));
    }
    let destination = match (
        params.destination_cidr_block,
        params.destination_ipv6_cidr_block,
    ) {
        (Some(v4), _) => valid_cidr("detail.requestParameters.destinationCidrBlock", &v4)?,
        (None, Some(v6)) => valid_cidr("detail.requestParameters.destinationIpv6CidrBlock", &v6)?,
        (None, None) => {
            return Err(InputError::Missing {
                field: "detail.requestParameters.destinationCidrBlock",
            })
        }
    };
    Ok(Trigger::Sync(SyncRequest {
        route_table_id,
        vpc_id: None,
        destination,
        dry_run: false,
        source: RequestSource::CloudTrail {
            event_name,
            event_id: detail.event_id,
            caller: detail.user_identity.and_then(UserIdentity::describe),
        },
    }))
}

/// The original tool's request: its URL path parameters and body in one object.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ManualRequest {
    vpc_id: Option<String>,
    route_table_id: Option<String>,
    destination_cidr_block: Option<String>,
    #[serde(default)]
    dry_run: Option<bool>,
}

fn from_manual(request: ManualRequest) -> Result<SyncRequest, InputError> {
    // The table names its VPC, so the id is optional; when given it is checked.
    let vpc_id = match request.vpc_id {
        Some(vpc) => Some(valid_id("vpc-id", Some(vpc), "vpc-")?),
        None => None,
    };
    let route_table_id = valid_id("route-table-id", request.route_table_id, "rtb-")?;
    let cidr = request.destination_cidr_block.ok_or(InputError::Missing {
        field: "destination-cidr-block",
    })?;
    Ok(SyncRequest {
        route_table_id,
        vpc_id,
        destination: valid_cidr("destination-cidr-block", &cidr)?,
        dry_run: request.dry_run.unwrap_or(false),
        source: RequestSource::Manual,
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
            what: if prefix == "rtb-" {
                "route table id (rtb- and 8 or 17 hex digits)"
            } else {
                "VPC id (vpc- and 8 or 17 hex digits)"
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
