"""The EventBridge rule's event pattern, checked against a real matcher.

The pattern is taken from the synthesized CloudFormation template
(cdk/cdk.out/SyncRoutes.template.json, written by `cd cdk && npm run synth`), put on moto's
in-process EventBridge with an SQS target, and fed CloudTrail events with put_events: the
events that reach the queue are the ones the rule matches.

The pattern holds CloudFormation intrinsics: the function's own sessions are excluded by
the prefix `arn:${AWS::Partition}:sts::${AWS::AccountId}:assumed-role/${Ref Role}/`.
The test resolves them with concrete values (partition `aws`, moto's default account, and a
role name shaped like the one CloudFormation generates) and builds the function's own event
from the same values, which is what happens in a deployed stack.

Operators the pattern uses and moto 5.2 implements like EventBridge: `exists` (true/false,
false matching an absent field), `anything-but` with a `prefix`, and `$or`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "cdk" / "cdk.out" / "SyncRoutes.template.json"
# The same app with deletes on (tests/run.sh synthesizes it with -c propagateDeletes=true).
TEMPLATE_DELETES = REPO / "cdk" / "cdk.out.deletes" / "SyncRoutes.template.json"
EVENTS = REPO / "events"

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
# CloudFormation names a role `<stack>-<logical id>-<random>`; any such value works as long
# as the function's own event below uses the same one.
ROLE_NAME = "SyncRoutes-SyncRoutesRoleCAC96975-Q1W2E3R4T5Y6"
FUNCTION_NAME = "SyncRoutes-SyncRoutesFunctionA0F0BDFA-Z9X8C7V6B5N4"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: synthesize the CDK app first as tests/run.sh does "
            "(`cd cdk && npm ci && npm run synth`; needs no AWS credentials and builds no Rust)",
            pytrace=False,
        )
    return json.loads(path.read_text())


def resolve(node: Any, resources: dict[str, Any]) -> Any:
    """Resolves the intrinsics that may appear in the event pattern to concrete values."""
    if isinstance(node, list):
        return [resolve(item, resources) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        name = node["Ref"]
        pseudo = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if resources.get(name, {}).get("Type") == "AWS::IAM::Role":
            return ROLE_NAME
        pytest.fail(f"event pattern refers to {name}, which this test cannot resolve")
    if set(node) == {"Fn::GetAtt"}:
        logical_id, attribute = node["Fn::GetAtt"]
        if resources.get(logical_id, {}).get("Type") == "AWS::IAM::Role" and attribute == "Arn":
            return f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
        pytest.fail(f"event pattern uses Fn::GetAtt {logical_id}.{attribute}, which this test cannot resolve")
    if set(node) == {"Fn::Join"}:
        separator, parts = node["Fn::Join"]
        return separator.join(str(resolve(part, resources)) for part in parts)
    if any(key.startswith("Fn::") for key in node):
        pytest.fail(f"event pattern uses an intrinsic this test cannot resolve: {node}")
    return {key: resolve(value, resources) for key, value in node.items()}


def cloudtrail_pattern(template: dict[str, Any]) -> dict[str, Any]:
    resources = template["Resources"]
    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    # The CloudTrail rule has a pattern; the sweep's rule has a schedule instead.
    patterned = [r for r in rules if "EventPattern" in r["Properties"]]
    assert len(patterned) == 1, f"expected one rule with an event pattern, found {len(patterned)}"
    resolved = resolve(patterned[0]["Properties"]["EventPattern"], resources)
    # The substitution must reach the pattern, or the "own role" case below proves nothing.
    assert f"assumed-role/{ROLE_NAME}/" in json.dumps(resolved), resolved
    return resolved


@pytest.fixture(scope="module")
def pattern() -> dict[str, Any]:
    return cloudtrail_pattern(load_template())


@pytest.fixture()
def bus(pattern: dict[str, Any]):
    yield from event_bus(pattern)


@pytest.fixture()
def bus_with_deletes():
    yield from event_bus(cloudtrail_pattern(load_template(TEMPLATE_DELETES)))


def event_bus(pattern: dict[str, Any]):
    """put_events function returning whether the rule delivered the event to its SQS target."""
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="matched")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="sync-routes", EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule="sync-routes", Targets=[{"Id": "queue", "Arn": queue_arn}])

        def matches(source: str, detail_type: str, detail: dict[str, Any]) -> bool:
            marker = str(uuid.uuid4())
            detail = {**detail, "requestID": marker}
            result = events.put_events(
                Entries=[{"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}]
            )
            assert result["FailedEntryCount"] == 0, result
            received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            for message in received:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return any(json.loads(m["Body"])["detail"]["requestID"] == marker for m in received)

        yield matches


def cloudtrail(event_name: str, user_identity: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The `detail` of an `AWS API Call via CloudTrail` event for an EC2 route call."""
    return {
        "eventVersion": "1.09",
        "userIdentity": user_identity,
        "eventTime": "2024-05-01T12:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {
            "routeTableId": "rtb-0aaaaaaaaaaaaaaaa",
            "destinationCidrBlock": "10.1.0.0/16",
            "networkInterfaceId": "eni-0bbbbbbbbbbbbbbbb",
        },
        "responseElements": {"_return": True},
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        **extra,
    }


IAM_USER = {
    "type": "IAMUser",
    "principalId": "AIDAEXAMPLEUSER00001",
    "arn": f"arn:aws:iam::{ACCOUNT}:user/netops",
    "accountId": ACCOUNT,
    "userName": "netops",
}


def assumed_role(role: str, session: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEROLE00001:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLE00001",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                "accountId": ACCOUNT,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-05-01T11:59:00Z", "mfaAuthenticated": "false"},
        },
    }


# VMware Cloud on AWS writes SDDC routes from its own account: the record names that account
# and carries no userIdentity.arn.
OTHER_ACCOUNT = {"type": "AWSAccount", "principalId": "AIDAEXAMPLEVMC000001", "accountId": "063048924651"}

API_CALL = "AWS API Call via CloudTrail"

MATCHING = {
    "CreateRoute by an IAM user": ("aws.ec2", API_CALL, cloudtrail("CreateRoute", IAM_USER)),
    "CreateRoute by an assumed role": ("aws.ec2", API_CALL, cloudtrail("CreateRoute", assumed_role("NetworkAdmin", "alice"))),
    "CreateRoute by another account, no userIdentity.arn": ("aws.ec2", API_CALL, cloudtrail("CreateRoute", OTHER_ACCOUNT)),
    "ReplaceRoute by an IAM user": ("aws.ec2", API_CALL, cloudtrail("ReplaceRoute", IAM_USER)),
    "CreateRouteTable (a new table to backfill)": ("aws.ec2", API_CALL, cloudtrail("CreateRouteTable", IAM_USER)),
    "ReplaceRouteTableAssociation (maybe a main-table move)": (
        "aws.ec2", API_CALL, cloudtrail("ReplaceRouteTableAssociation", assumed_role("NetworkAdmin", "alice"))),
    # The exclusion is the prefix `.../assumed-role/<name>/`: a role whose name merely begins
    # with the function role's name is someone else.
    "CreateRoute by a role whose name extends the function's": (
        "aws.ec2", API_CALL, cloudtrail("CreateRoute", assumed_role(ROLE_NAME + "-admin", "bob"))),
}

NOT_MATCHING = {
    "the function's own CreateRoute": ("aws.ec2", API_CALL, cloudtrail("CreateRoute", assumed_role(ROLE_NAME, FUNCTION_NAME))),
    "the function's own ReplaceRoute": ("aws.ec2", API_CALL, cloudtrail("ReplaceRoute", assumed_role(ROLE_NAME, FUNCTION_NAME))),
    "a failed CreateRoute (errorCode present)": ("aws.ec2", API_CALL, cloudtrail(
        "CreateRoute", IAM_USER, errorCode="Client.RouteAlreadyExists",
        errorMessage="The route identified by 10.1.0.0/16 already exists.")),
    "a DeleteRoute (deletes are off by default)": ("aws.ec2", API_CALL, cloudtrail("DeleteRoute", IAM_USER)),
    "a failed CreateRouteTable": ("aws.ec2", API_CALL, cloudtrail(
        "CreateRouteTable", IAM_USER, errorCode="Client.RouteTableLimitExceeded", errorMessage="limit")),
    "an unrelated EC2 call": ("aws.ec2", API_CALL, cloudtrail("CreateVpc", IAM_USER)),
    # API Gateway v2 has a CreateRoute call of its own.
    "another service's CreateRoute": ("aws.apigateway", API_CALL, {
        **cloudtrail("CreateRoute", IAM_USER), "eventSource": "apigateway.amazonaws.com"}),
    "an EC2 event that is not an API call": ("aws.ec2", "EC2 Instance State-change Notification", {
        **cloudtrail("CreateRoute", IAM_USER)}),
}


@pytest.mark.parametrize("case", list(MATCHING))
def test_matches(bus, case: str) -> None:
    assert bus(*MATCHING[case]), f"the rule must match {case}"


@pytest.mark.parametrize("case", list(NOT_MATCHING))
def test_does_not_match(bus, case: str) -> None:
    assert not bus(*NOT_MATCHING[case]), f"the rule must not match {case}"


def test_pattern_shape(pattern: dict[str, Any]) -> None:
    """The parts of the pattern the cases above rely on, stated plainly."""
    assert pattern["source"] == ["aws.ec2"]
    assert pattern["detail-type"] == [API_CALL]
    detail = pattern["detail"]
    assert detail["eventSource"] == ["ec2.amazonaws.com"]
    assert sorted(detail["eventName"]) == ["CreateRoute", "CreateRouteTable", "ReplaceRoute",
                                           "ReplaceRouteTableAssociation"]
    assert detail["errorCode"] == [{"exists": False}]


DELETE_CASES = {
    "DeleteRoute by an IAM user": (cloudtrail("DeleteRoute", IAM_USER), True),
    "DeleteRoute by another account": (cloudtrail("DeleteRoute", OTHER_ACCOUNT), True),
    "the function's own DeleteRoute": (cloudtrail("DeleteRoute", assumed_role(ROLE_NAME, FUNCTION_NAME)), False),
    "a failed DeleteRoute": (cloudtrail("DeleteRoute", IAM_USER, errorCode="Client.InvalidRoute.NotFound",
                                        errorMessage="no route"), False),
    "CreateRoute still matches": (cloudtrail("CreateRoute", IAM_USER), True),
}


@pytest.mark.parametrize("case", list(DELETE_CASES))
def test_deletes_on(bus_with_deletes, case: str) -> None:
    """With -c propagateDeletes=true the rule also matches successful DeleteRoute calls."""
    detail, expected = DELETE_CASES[case]
    assert bus_with_deletes("aws.ec2", API_CALL, detail) == expected, case


def test_the_sweep_schedule_and_the_rule_send_to_the_work_queue() -> None:
    """Both rules target the work queue, which the function consumes (the sweep's event:
    detail-type "Scheduled Event", source aws.events, which the function reads as a sweep:
    tests/events.rs); the schedule has no pattern, so matching is EventBridge's schedule,
    not this test's business."""
    resources = load_template()["Resources"]
    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    schedules = [r for r in rules if "ScheduleExpression" in r["Properties"]]
    assert [r["Properties"]["ScheduleExpression"] for r in schedules] == ["rate(15 minutes)"]
    queues = [k for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue" and "WorkQueue" in k]
    assert len(queues) == 1, queues
    assert [r["Properties"]["Targets"][0]["Arn"] for r in rules] == [{"Fn::GetAtt": [queues[0], "Arn"]}] * 2
    [mapping] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queues[0], "Arn"]}


# The repository's sample events (Lambda payloads = EventBridge events), when present.
SAMPLES = {
    "cloudtrail-create-route.json": True,
    "cloudtrail-replace-route.json": True,
    "cloudtrail-custom-table.json": True,  # the rule cannot tell tables apart; the function skips it
    "cloudtrail-failed-call.json": False,
    "cloudtrail-create-route-prefix-list.json": True,
    "cloudtrail-create-route-table.json": True,
    "cloudtrail-replace-route-table-association.json": True,
    "cloudtrail-delete-route.json": False,  # deletes are off by default
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_sample_events(bus, name: str) -> None:
    path = EVENTS / name
    assert path.is_file(), f"{path} is missing"
    event = json.loads(path.read_text())
    matched = bus(event.get("source", "aws.ec2"), event.get("detail-type", API_CALL), event.get("detail", event))
    assert matched == SAMPLES[name], f"{name}: expected match={SAMPLES[name]}"
