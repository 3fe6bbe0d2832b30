"""Builds and shows the demo VPC in an EC2 emulator (moto), for events/demo.sh.

    demo_vpc.py build                  -> prints JSON ids of a new VPC: main table, 4 custom tables, ENIs, IGW
    demo_vpc.py route IDS_JSON CIDR ENI [create|replace]
                                       -> writes the route in the main table, prints the CloudTrail
                                          EventBridge event that AWS would emit for that call
    demo_vpc.py show IDS_JSON          -> prints every table of the VPC, one route per line

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
    return {"vpc": vpc, "main": main, "customs": customs, "enis": enis, "igw": igw}


def route(ids: dict, cidr: str, eni: str, call: str) -> dict:
    c = ec2()
    if call == "create":
        c.create_route(RouteTableId=ids["main"], DestinationCidrBlock=cidr, NetworkInterfaceId=eni)
        name = "CreateRoute"
    else:
        c.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=cidr, NetworkInterfaceId=eni)
        name = "ReplaceRoute"
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
            "requestParameters": {"routeTableId": ids["main"], "destinationCidrBlock": cidr,
                                  "networkInterfaceId": eni},
            "responseElements": {"_return": True},
            "eventID": str(uuid.uuid4()),
            "eventType": "AwsApiCall",
            "managementEvent": True,
        },
    }


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
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
