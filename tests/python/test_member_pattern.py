"""The member template's forwarding rule, checked against a real matcher, end to end.

The rule is taken from the synthesized member template
(cdk/cdk.out.org/SyncRoutesMember.template.json, written by tests/run.sh's CDK step with
`-c organizationId=o-exampleorg1`), with its parameters and pseudo parameters resolved to test
values, and put on moto's EventBridge in a member account with its target as synthesized:
the hub's bus `sync-routes` in another account and region. A catch-all rule on the hub bus
sends whatever arrives to an SQS queue: an event put in the member account reaches that queue
exactly when the member rule matches it and its target names the hub bus.

The exclusion under test: the hub writes in a member account through the member role, so
its calls carry userIdentity.arn `arn:aws:sts::<member>:assumed-role/<MemberRoleName>/<session>`,
and forwarding them would send the hub its own writes back.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

import test_event_pattern as hub  # the hub rule's test: its CloudTrail event builders and resolver

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "cdk" / "cdk.out.org" / "SyncRoutesMember.template.json"

MEMBER_ACCOUNT = hub.ACCOUNT  # moto's default account plays the member
MEMBER_REGION = hub.REGION
HUB_ACCOUNT = "111111111111"
HUB_REGION = "eu-west-1"
API_CALL = hub.API_CALL


def load_template() -> dict[str, Any]:
    if not TEMPLATE.is_file():
        pytest.fail(
            f"{TEMPLATE} is missing: synthesize the organization app first, as tests/run.sh's CDK step does "
            "(`cd cdk && npx cdk synth --quiet -c lambdaAsset=test/fixtures/lambda-placeholder "
            "-c organizationId=o-exampleorg1 -c memberExternalId=example-external-id -o cdk.out.org`; "
            "needs no AWS credentials and builds no Rust)",
            pytrace=False,
        )
    return json.loads(TEMPLATE.read_text())


def with_parameters(node: Any, values: dict[str, str]) -> Any:
    """Replaces each Ref to a template parameter, and each Fn::Sub, with the given values; the
    hub test's resolver does the rest (pseudo parameters, Fn::Join) and fails on anything else."""
    if isinstance(node, list):
        return [with_parameters(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in values:
        return values[node["Ref"]]
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        text = node["Fn::Sub"]
        for name, value in {**values, "AWS::Partition": "aws", "AWS::AccountId": MEMBER_ACCOUNT,
                            "AWS::Region": MEMBER_REGION}.items():
            text = text.replace("${" + name + "}", value)
        assert "${" not in text, f"Fn::Sub with a name this test cannot resolve: {text}"
        return text
    return {key: with_parameters(value, values) for key, value in node.items()}


def forwarding_rule(template: dict[str, Any], role_name: str) -> dict[str, Any]:
    """The member rule's properties, resolved for a stack instance in MEMBER_REGION of a member."""
    resources = template["Resources"]
    rules = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    assert len(rules) == 1, f"expected the forwarding rule only, found {len(rules)} rules"
    values = {"HubAccountId": HUB_ACCOUNT, "HubRegion": HUB_REGION, "MemberRoleName": role_name}
    properties = rules[0]["Properties"]
    pattern = hub.resolve(with_parameters(properties["EventPattern"], values), resources)
    # The substitution must reach the pattern, or the "hub's echo" cases below prove nothing.
    assert f":sts::{MEMBER_ACCOUNT}:assumed-role/{role_name}/" in json.dumps(pattern), pattern
    # The target's ARN as synthesized; its role and dead-letter queue are not moto's business.
    targets = [{"Id": t["Id"], "Arn": hub.resolve(with_parameters(t["Arn"], values), resources)} for t in properties["Targets"]]
    return {"EventPattern": pattern, "State": properties["State"], "Targets": targets}


def forwarding(rule: dict[str, Any]):
    """put_events in the member account, returning whether the event reached the hub bus."""
    with mock_aws():
        # Credentials of a role in the hub account act in that account (moto).
        creds = boto3.client("sts", region_name=HUB_REGION).assume_role(
            RoleArn=f"arn:aws:iam::{HUB_ACCOUNT}:role/hub-admin", RoleSessionName="test")["Credentials"]
        as_hub = {"region_name": HUB_REGION, "aws_access_key_id": creds["AccessKeyId"],
                  "aws_secret_access_key": creds["SecretAccessKey"], "aws_session_token": creds["SessionToken"]}
        hub_events, hub_sqs = boto3.client("events", **as_hub), boto3.client("sqs", **as_hub)
        hub_events.create_event_bus(Name="sync-routes")
        queue_url = hub_sqs.create_queue(QueueName="arrived")["QueueUrl"]
        queue_arn = hub_sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        hub_events.put_rule(Name="all", EventBusName="sync-routes", EventPattern=json.dumps({"source": ["aws.ec2"]}))
        hub_events.put_targets(Rule="all", EventBusName="sync-routes", Targets=[{"Id": "queue", "Arn": queue_arn}])

        member_events = boto3.client("events", region_name=MEMBER_REGION)
        member_events.put_rule(Name="forward", EventPattern=json.dumps(rule["EventPattern"]), State=rule["State"])
        role = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/forwarding"
        member_events.put_targets(Rule="forward", Targets=[{**t, "RoleArn": role} for t in rule["Targets"]])

        def arrives(detail: dict[str, Any], source: str = "aws.ec2", detail_type: str = API_CALL) -> bool:
            marker = str(uuid.uuid4())
            sent = member_events.put_events(Entries=[{
                "Source": source, "DetailType": detail_type, "Detail": json.dumps({**detail, "requestID": marker})}])
            assert sent["FailedEntryCount"] == 0, sent
            messages = hub_sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            for message in messages:
                hub_sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return any(json.loads(m["Body"])["detail"]["requestID"] == marker for m in messages)

        yield arrives


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def default_role_name(template: dict[str, Any]) -> str:
    return template["Parameters"]["MemberRoleName"]["Default"]


@pytest.fixture()
def forwards(template: dict[str, Any], default_role_name: str):
    yield from forwarding(forwarding_rule(template, default_role_name))


def hub_session(role_name: str) -> dict[str, Any]:
    """The member role as the hub function assumes it (in the member account)."""
    return hub.assumed_role(role_name, "sync-routes")


MATCHING = {
    "CreateRoute by a person": hub.cloudtrail("CreateRoute", hub.IAM_USER),
    "ReplaceRoute by a person": hub.cloudtrail("ReplaceRoute", hub.IAM_USER),
    "CreateRoute by another role (a failover script)": hub.cloudtrail("CreateRoute", hub.assumed_role("failover", "i-0abc")),
    "ReplaceRoute by another role": hub.cloudtrail("ReplaceRoute", hub.assumed_role("NetworkAdmin", "alice")),
    "CreateRoute by another account, no userIdentity.arn": hub.cloudtrail("CreateRoute", hub.OTHER_ACCOUNT),
    "CreateRouteTable (a new table to backfill)": hub.cloudtrail("CreateRouteTable", hub.IAM_USER),
    "ReplaceRouteTableAssociation": hub.cloudtrail("ReplaceRouteTableAssociation", hub.IAM_USER),
}

NOT_MATCHING = {
    "a failed CreateRoute (errorCode present)": hub.cloudtrail(
        "CreateRoute", hub.IAM_USER, errorCode="Client.RouteAlreadyExists", errorMessage="already exists"),
    "a failed ReplaceRoute": hub.cloudtrail(
        "ReplaceRoute", hub.assumed_role("failover", "i-0abc"), errorCode="Client.InvalidParameterValue",
        errorMessage="There is no route defined"),
    "a different event name": hub.cloudtrail("CreateVpc", hub.IAM_USER),
    "a DeleteRoute (deletes are off in this synth)": hub.cloudtrail("DeleteRoute", hub.IAM_USER),
}


@pytest.mark.parametrize("case", list(MATCHING))
def test_forwards(forwards, case: str) -> None:
    assert forwards(MATCHING[case]), f"the member rule must forward {case} to the hub bus"


@pytest.mark.parametrize("case", list(NOT_MATCHING))
def test_does_not_forward(forwards, case: str) -> None:
    assert not forwards(NOT_MATCHING[case]), f"the member rule must not forward {case}"


@pytest.mark.parametrize("event_name", ["CreateRoute", "ReplaceRoute"])
def test_the_hubs_own_write_is_not_sent_back(forwards, default_role_name: str, event_name: str) -> None:
    """arn:aws:sts::<member>:assumed-role/sync-routes-member/sync-routes: the hub's write here."""
    assert default_role_name == "sync-routes-member"
    assert not forwards(hub.cloudtrail(event_name, hub_session(default_role_name)))


def test_a_role_whose_name_extends_the_member_roles_is_someone_else(forwards, default_role_name: str) -> None:
    assert forwards(hub.cloudtrail("CreateRoute", hub.assumed_role(default_role_name + "-admin", "bob")))


def test_other_events_are_not_forwarded(forwards) -> None:
    # API Gateway v2 has a CreateRoute call of its own; EC2 has events that are not API calls.
    assert not forwards({**hub.cloudtrail("CreateRoute", hub.IAM_USER), "eventSource": "apigateway.amazonaws.com"},
                        source="aws.apigateway")
    assert not forwards(hub.cloudtrail("CreateRoute", hub.IAM_USER), detail_type="EC2 Instance State-change Notification")


def test_a_custom_member_role_name_moves_the_exclusion(template: dict[str, Any], default_role_name: str) -> None:
    """MemberRoleName is a parameter: the excluded sessions follow it."""
    bus = forwarding(forwarding_rule(template, "netops-sync"))
    try:
        arrives = next(bus)
        assert not arrives(hub.cloudtrail("ReplaceRoute", hub_session("netops-sync")))
        assert arrives(hub.cloudtrail("ReplaceRoute", hub_session(default_role_name)))
    finally:
        bus.close()
