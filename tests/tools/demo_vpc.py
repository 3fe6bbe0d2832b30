"""Builds and shows the demo VPC in an EC2 emulator (moto), for events/demo.sh.

    demo_vpc.py build                  -> prints JSON ids of a new VPC: main table, 4 custom tables, ENIs, IGW
    demo_vpc.py route IDS_JSON CIDR ENI [create|replace]
                                       -> writes the route in the main table, prints the CloudTrail
                                          EventBridge event that AWS would emit for that call
    demo_vpc.py show IDS_JSON          -> prints every table of the VPC, one route per line
    demo_vpc.py new-table IDS_JSON     -> creates a custom table, prints the CloudTrail event of that call
    demo_vpc.py mail IDS_JSON          -> prints the alerts that arrived since the last call, as e-mails

The endpoint comes from AWS_ENDPOINT_URL, like the function's.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime, timezone

import boto3


def ec2():
    return boto3.client("ec2", region_name="us-east-1")


def build() -> dict:
    c = ec2()
    vpc = c.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = c.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    main = c.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"][0]["RouteTableId"]
    customs = [c.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"] for _ in range(4)]
    enis = [c.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"] for _ in range(2)]
    igw = c.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    c.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    # One custom table already routes the demo destination to the internet gateway: the
    # sync must leave it alone ("never clobber a route that points at something else").
    c.create_route(RouteTableId=customs[3], DestinationCidrBlock="10.100.0.0/16", GatewayId=igw)
    # The alert topic, with a queue subscribed where an e-mail address would be.
    topic = sns().create_topic(Name="sync-routes-alerts")["TopicArn"]
    queue = sqs().create_queue(QueueName="alert-inbox")["QueueUrl"]
    queue_arn = sqs().get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns().subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return {"vpc": vpc, "main": main, "customs": customs, "enis": enis, "igw": igw, "topic": topic, "inbox": queue}


def sns():
    return boto3.client("sns", region_name="us-east-1")


def sqs():
    return boto3.client("sqs", region_name="us-east-1")


def mail(ids: dict) -> str:
    """The notices that reached the inbox queue, as the e-mail subscription shows them."""
    notices = []
    while True:
        got = sqs().receive_message(QueueUrl=ids["inbox"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = got.get("Messages", [])
        if not messages:
            break
        for m in messages:
            notices.append(json.loads(m["Body"]))
            sqs().delete_message(QueueUrl=ids["inbox"], ReceiptHandle=m["ReceiptHandle"])
    if not notices:
        return "  (no e-mail: nothing changed, so no notice was sent)"
    out = []
    for n in notices:
        out.append("  +-- e-mail from AWS Notifications ------------------------------------------")
        out.append(f"  | Subject: {n.get('Subject', '')}")
        out.append("  |")
        out.extend(f"  | {line}".rstrip() for line in n.get("Message", "").splitlines())
        out.append("  +---------------------------------------------------------------------------")
    return "\n".join(out)


def cloudtrail(ids: dict, name: str, request: dict, response: dict) -> dict:
    """The EventBridge event AWS would emit for that call."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": now,
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/network-admin",
                             "accountId": "123456789012", "userName": "network-admin"},
            "eventTime": now,
            "eventSource": "ec2.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "requestParameters": request,
            "responseElements": response,
            "eventID": str(uuid.uuid4()),
            "eventType": "AwsApiCall",
            "managementEvent": True,
        },
    }


def new_table(ids: dict) -> dict:
    table = ec2().create_route_table(VpcId=ids["vpc"])["RouteTable"]["RouteTableId"]
    return cloudtrail(ids, "CreateRouteTable", {"vpcId": ids["vpc"]},
                      {"routeTable": {"routeTableId": table, "vpcId": ids["vpc"]}})


def route(ids: dict, cidr: str, eni: str, call: str) -> dict:
    c = ec2()
    if call == "create":
        c.create_route(RouteTableId=ids["main"], DestinationCidrBlock=cidr, NetworkInterfaceId=eni)
        name = "CreateRoute"
    else:
        c.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=cidr, NetworkInterfaceId=eni)
        name = "ReplaceRoute"
    return cloudtrail(ids, name, {"routeTableId": ids["main"], "destinationCidrBlock": cidr,
                                  "networkInterfaceId": eni}, {"_return": True})


def target(r: dict) -> str:
    for key in ("NetworkInterfaceId", "GatewayId", "NatGatewayId", "TransitGatewayId",
                "VpcPeeringConnectionId", "InstanceId"):
        if r.get(key):
            return r[key]
    return "?"


def show(ids: dict) -> str:
    tables = ec2().describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [ids["vpc"]]}])["RouteTables"]
    lines = []
    for t in sorted(tables, key=lambda t: (t["RouteTableId"] != ids["main"], t["RouteTableId"])):
        kind = "main" if t["RouteTableId"] == ids["main"] else "custom"
        lines.append(f"  {t['RouteTableId']} ({kind})")
        for r in t.get("Routes", []):
            dest = r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock") or r.get("DestinationPrefixListId")
            lines.append(f"      {dest:<18} -> {target(r):<24} {r.get('State', '')}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        print(json.dumps(build()))
    elif argv[:1] == ["route"] and len(argv) in (4, 5):
        print(json.dumps(route(json.loads(argv[1]), argv[2], argv[3], argv[4] if len(argv) == 5 else "create"), indent=2))
    elif argv[:1] == ["show"] and len(argv) == 2:
        print(show(json.loads(argv[1])))
    elif argv[:1] == ["new-table"] and len(argv) == 2:
        print(json.dumps(new_table(json.loads(argv[1])), indent=2))
    elif argv[:1] == ["mail"] and len(argv) == 2:
        print(mail(json.loads(argv[1])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
