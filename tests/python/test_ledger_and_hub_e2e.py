"""The deploy binary end to end with the two newest parts of the engine, as Lambda runs it
(tests/lambda_harness.py's mock Runtime API, the fault proxy, moto):

  * deletes on (issue 16): the ledger in moto's DynamoDB, written and read by the binary's
    own DynamoDB client; a copy it wrote goes with the main route, a table's own route stays;
  * an organization's hub (issue 18): a member account's event, worked in that account
    through the member role (STS AssumeRole with the external id, in the binary).

Each also checks that what the binary called is allowed by the role the CDK app synthesizes
for that setting (cdk/cdk.out.deletes, cdk/cdk.out.org, written by tests/run.sh).
"""

from __future__ import annotations

import fnmatch
import json
import sys
import uuid
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lambda_harness as h  # noqa: E402

CDK = h.REPO / "cdk"
MEMBER = "222222222222"


def client(service: str, endpoint: str, **credentials):
    return boto3.client(service, endpoint_url=endpoint, region_name=h.REGION,
                        aws_access_key_id=credentials.get("key", "test"),
                        aws_secret_access_key=credentials.get("secret", "test"),
                        aws_session_token=credentials.get("token"))


def role_actions(template_path: Path) -> set[str]:
    """Every action the function's role allows, in the synthesized template."""
    if not template_path.is_file():
        pytest.fail(f"{template_path} is missing: run tests/run.sh (its CDK step synthesizes it)", pytrace=False)
    res = json.loads(template_path.read_text())["Resources"]
    [fn] = [v for v in res.values() if v["Type"] == "AWS::Lambda::Function"
            and v["Properties"].get("Handler") == "bootstrap"]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    actions: set[str] = set()
    for v in res.values():
        if v["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in v["Properties"].get("Roles", []):
            for s in v["Properties"]["PolicyDocument"]["Statement"]:
                a = s.get("Action", [])
                actions.update([a] if isinstance(a, str) else a)
    return actions


def assert_allowed(calls: list[dict], allowed: set[str], services: set[str]):
    called = {f"{c['service']}:{c['action']}" for c in calls if c.get("action") and c["service"] in services}
    denied = sorted(a for a in called
                    if not any(fnmatch.fnmatchcase(a.lower(), p.lower()) for p in allowed))
    assert not denied, f"the binary called {denied}, which the synthesized role does not allow"
    return called


def test_deletes_only_what_the_binary_recorded_in_its_ledger(function, control, moto_url):
    ledger = f"sync-routes-ledger-{uuid.uuid4().hex[:8]}"
    dynamodb = client("dynamodb", moto_url)
    dynamodb.create_table(
        TableName=ledger, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "RouteTableId", "AttributeType": "S"},
                              {"AttributeName": "Destination", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "RouteTableId", "KeyType": "HASH"},
                   {"AttributeName": "Destination", "KeyType": "RANGE"}])
    ids = h.build_vpc(moto_url, custom_tables=3, enis=2)
    ec2 = h.ec2_client(moto_url)
    # A table's own route, which the main table never had.
    ec2.create_route(RouteTableId=ids["customs"][2], DestinationCidrBlock="10.50.0.0/16",
                     NetworkInterfaceId=ids["enis"][1])
    [(cidr, eni)] = h.write_main_routes(moto_url, ids, ["10.100.0.0/16"], enis=[ids["enis"][0]])
    fn = function({"SYNC_VPC_IDS": ids["vpc"], "SYNC_DESTINATIONS": "10.0.0.0/8",
                   "SYNC_PROPAGATE_DELETES": "true", "SYNC_LEDGER_TABLE": ledger, "SYNC_MAX_DELETES": "10"})
    created = fn.invoke(h.cloudtrail_event(ids["main"], cidr, eni)).report
    assert created["outcome"] == "synced" and created["ledger"]["writes"] == 1, created
    items = dynamodb.scan(TableName=ledger)["Items"]
    assert sorted(i["RouteTableId"]["S"] for i in items) == sorted(ids["customs"])
    assert {i["NextHop"]["S"] for i in items} == {eni}

    ec2.delete_route(RouteTableId=ids["main"], DestinationCidrBlock=cidr)
    event = h.cloudtrail_event(ids["main"], cidr, eni, name="DeleteRoute")
    event["detail"]["requestParameters"].pop("networkInterfaceId")
    deleted = fn.invoke(event).report
    assert deleted["outcome"] == "synced" and deleted["counts"]["deleted"] == 3, deleted
    assert dynamodb.scan(TableName=ledger)["Items"] == []
    sweep = fn.invoke({"reconcile": True, "vpc-id": ids["vpc"]}).report
    assert sweep["counts"]["deleted"] == 0, sweep
    [own] = [t for t in sweep["tables"] if t["destination"] == "10.50.0.0/16"]
    assert own["code"] == "not-written-by-sync-routes", own
    after = h.routes_by_table(moto_url, ids["vpc"])
    assert after[ids["customs"][2]].get("10.50.0.0/16") == ids["enis"][1]
    assert all(cidr not in after[t] for t in ids["customs"])

    called = assert_allowed(control.calls()["calls"], role_actions(CDK / "cdk.out.deletes" / "SyncRoutes.template.json"),
                            {"ec2", "dynamodb"})
    assert {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"} <= called


def test_a_hub_works_a_members_event_in_the_member_account(function, control, moto_url):
    role = f"arn:aws:iam::{MEMBER}:role/sync-routes-member"
    creds = client("sts", moto_url).assume_role(RoleArn=role, RoleSessionName="fixture")["Credentials"]
    member = {"key": creds["AccessKeyId"], "secret": creds["SecretAccessKey"], "token": creds["SessionToken"]}
    member_ec2 = client("ec2", moto_url, **member)
    vpc = member_ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = member_ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    eni = member_ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    [main] = member_ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                       {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    custom = member_ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    member_ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="10.100.0.0/16",
                            NetworkInterfaceId=eni)

    fn = function({"SYNC_MEMBER_ROLE_NAME": "sync-routes-member", "SYNC_ACCOUNT_ID": h.ACCOUNT,
                   "SYNC_MEMBER_EXTERNAL_ID": "sync-routes-e2e", "SYNC_MEMBER_ACCOUNTS": MEMBER,
                   "SYNC_VPC_IDS": vpc})
    event = h.cloudtrail_event(main["RouteTableId"], "10.100.0.0/16", eni)
    event["account"] = MEMBER
    report = fn.invoke(event).report
    assert report["outcome"] == "synced" and report["account"] == MEMBER, report
    [table] = member_ec2.describe_route_tables(RouteTableIds=[custom])["RouteTables"]
    assert any(r.get("DestinationCidrBlock") == "10.100.0.0/16" and r.get("NetworkInterfaceId") == eni
               for r in table["Routes"]), table
    calls = control.calls()["calls"]
    [assumed] = [c for c in calls if c.get("action") == "AssumeRole"]
    assert assumed["params"]["RoleArn"] == role and assumed["params"]["ExternalId"] == "sync-routes-e2e", assumed

    # An account outside SYNC_MEMBER_ACCOUNTS: failed (retried), named, nothing assumed.
    event["account"] = "444444444444"
    outside = fn.invoke(event)
    assert not outside.ok and outside.report["outcome"] == "failed", outside.body
    assert "444444444444" in outside.report["message"], outside.report
    assert len([c for c in control.calls()["calls"] if c.get("action") == "AssumeRole"]) == 1

    called = assert_allowed(calls, role_actions(CDK / "cdk.out.org" / "SyncRoutes.template.json"), {"ec2", "sts"})
    assert "sts:AssumeRole" in called
