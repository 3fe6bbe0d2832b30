"""Tests of tests/fault_proxy.py: each emulated EC2 behaviour, through boto3, against moto.

Fixtures are in conftest.py. Setup (VPCs, ENIs, topics) goes straight to moto so that the proxy's
call counts only hold what each test sends through it. boto3 retries are off, so every error the
proxy produces is seen as is.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import start_proxy

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=32)


def ec2(url):
    return boto3.client("ec2", endpoint_url=url, region_name="us-east-1", config=NO_RETRY)


def sns(url):
    return boto3.client("sns", endpoint_url=url, region_name="us-east-1", config=NO_RETRY)


def err(excinfo) -> tuple[int, str, str]:
    e = excinfo.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"].get("Message", "")


def raw_ec2(url, params: dict) -> tuple[int, bytes]:
    """One EC2 Query call by hand (what any SDK sends, minus a real signature)."""
    body = urllib.parse.urlencode({"Version": "2016-11-15", **params}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", urllib.parse.urlsplit(url).port, timeout=10)
    try:
        conn.request("POST", "/", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ec2/aws4_request, "
                             "SignedHeaders=host, Signature=0"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def routes(client, table_id) -> dict[str, dict]:
    t = client.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
    return {r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock"): r for r in t["Routes"]}


def build_vpc(m, cidr: str) -> dict:
    """A VPC with a subnet, two ENIs, its main table and two custom tables, made straight in moto."""
    vpc_id = m.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet_cidr = str(list(ipaddress.ip_network(cidr).subnets(new_prefix=24))[1])
    subnet = m.create_subnet(VpcId=vpc_id, CidrBlock=subnet_cidr)["Subnet"]["SubnetId"]
    enis = [m.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"] for _ in range(2)]
    main = m.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                            {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    custom = [m.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"] for _ in range(2)]
    return {"id": vpc_id, "subnet": subnet, "enis": enis, "main": main["RouteTableId"], "custom": custom}


@pytest.fixture
def vpc(moto_url):
    """A VPC (10.0.0.0/16) with a subnet (10.0.1.0/24), two ENIs, its main table and two custom tables."""
    return build_vpc(ec2(moto_url), "10.0.0.0/16")


# ---------------------------------------------------------------------------------------------
# Transparency, counting, keep-alive, lifecycle
# ---------------------------------------------------------------------------------------------

def test_passthrough_and_counts(proxy_url, control, vpc):
    c = ec2(proxy_url)
    c.create_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock="10.9.0.0/16",
                   NetworkInterfaceId=vpc["enis"][0])
    assert "10.9.0.0/16" in routes(c, vpc["custom"][0])
    with pytest.raises(ClientError) as ei:  # moto's own error comes through untouched
        c.describe_route_tables(RouteTableIds=["rtb-doesnotexist"])
    assert err(ei)[:2] == (400, "InvalidRouteTableID.NotFound")

    calls = control.calls()
    assert calls["counts"] == {"CreateRoute": 1, "DescribeRouteTables": 2}
    assert calls["throttled"] == 0 and calls["throttled_counts"] == {}
    assert [(x["action"], x["status"]) for x in calls["calls"]] == [
        ("CreateRoute", 200), ("DescribeRouteTables", 200), ("DescribeRouteTables", 400)]
    first = calls["calls"][0]
    assert first["service"] == "ec2" and first["params"]["RouteTableId"] == vpc["custom"][0]
    assert first["params"]["NetworkInterfaceId"] == vpc["enis"][0]

    control.reset()
    assert control.calls()["counts"] == {}


def test_control_rejects_unknown_keys(control):
    with pytest.raises(Exception) as ei:
        control.config(dryrun=True)  # typo of dry_run must not silently disable the fault
    assert "400" in str(ei.value)


def test_keepalive_and_20_concurrent_clients(proxy_url, control, vpc):
    """20 threads, each with one persistent HTTP/1.1 connection, 5 requests each."""
    port = int(urllib.parse.urlsplit(proxy_url).port)
    body = urllib.parse.urlencode({"Action": "DescribeRouteTables", "Version": "2016-11-15",
                                   "RouteTableId.1": vpc["main"]}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
               "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ec2/aws4_request, "
                                "SignedHeaders=host, Signature=0"}
    results, errors = [], []

    def worker():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.connect()
            sock = conn.sock
            for _ in range(5):
                conn.request("POST", "/", body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                assert r.getheader("Connection", "").lower() != "close"
                assert int(r.getheader("Content-Length")) == len(data)
                results.append((r.status, vpc["main"].encode() in data))
            assert conn.sock is sock, "connection was not kept alive"
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert results == [(200, True)] * 100
    assert control.calls()["counts"] == {"DescribeRouteTables": 100}


def test_sigterm_exits_cleanly(moto_url, tmp_path):
    proc, port = start_proxy(moto_url, tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


# ---------------------------------------------------------------------------------------------
# Throttling
# ---------------------------------------------------------------------------------------------

def test_throttle_burst_then_refill(proxy_url, control, vpc, moto_url):
    control.config(buckets={"read": {"capacity": 5, "refill_per_sec": 1},
                            "mutate": {"capacity": 3, "refill_per_sec": 1}})
    c = ec2(proxy_url)

    # Burst: the bucket starts full (5), the 6th call is refused like EC2 does.
    start = time.monotonic()
    for _ in range(5):
        c.describe_route_tables(RouteTableIds=[vpc["main"]])
    with pytest.raises(ClientError) as ei:
        c.describe_route_tables(RouteTableIds=[vpc["main"]])
    assert err(ei) == (503, "RequestLimitExceeded", "Request limit exceeded.")
    # Throttled calls take no token: hammering an empty bucket does not push recovery further.
    for _ in range(3):
        with pytest.raises(ClientError):
            c.describe_route_tables(RouteTableIds=[vpc["main"]])
    assert time.monotonic() - start < 0.8, "machine too slow for this timing test"
    assert control.calls()["buckets"]["DescribeRouteTables"] < 1

    # Refill at 1/s: after 2 s (plus < 0.8 left over) two calls pass, the third is refused again.
    time.sleep(2.0)
    c.describe_route_tables(RouteTableIds=[vpc["main"]])
    c.describe_route_tables(RouteTableIds=[vpc["main"]])
    with pytest.raises(ClientError) as ei:
        c.describe_route_tables(RouteTableIds=[vpc["main"]])
    assert err(ei)[1] == "RequestLimitExceeded"

    # Mutating bucket: 3 CreateRoute pass, the 4th is refused and never reaches moto.
    for i in range(3):
        c.create_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock=f"10.{20 + i}.0.0/16",
                       NetworkInterfaceId=vpc["enis"][0])
    with pytest.raises(ClientError) as ei:
        c.create_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock="10.23.0.0/16",
                       NetworkInterfaceId=vpc["enis"][0])
    assert err(ei)[:2] == (503, "RequestLimitExceeded")
    assert "10.23.0.0/16" not in routes(ec2(moto_url), vpc["custom"][0])
    # EC2 meters each API on its own ("per-API basis"): ReplaceRoute still has its tokens.
    c.replace_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock="10.20.0.0/16",
                    NetworkInterfaceId=vpc["enis"][1])

    calls = control.calls()
    assert calls["counts"] == {"DescribeRouteTables": 12, "CreateRoute": 4, "ReplaceRoute": 1}
    assert calls["throttled_counts"] == {"DescribeRouteTables": 5, "CreateRoute": 1}
    assert calls["throttled"] == 6
    assert [x["throttled"] for x in calls["calls"]].count(True) == 6
    assert all(x["status"] == 503 for x in calls["calls"] if x["throttled"])


def test_throttle_category_scope_and_consuming_mode(proxy_url, control, vpc):
    control.config(buckets={"mutate": {"capacity": 2, "refill_per_sec": 2}},
                   bucket_scope="category", throttled_consumes_token=True)
    c = ec2(proxy_url)
    t = vpc["custom"][1]
    c.create_route(RouteTableId=t, DestinationCidrBlock="10.30.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    c.replace_route(RouteTableId=t, DestinationCidrBlock="10.30.0.0/16", NetworkInterfaceId=vpc["enis"][1])
    with pytest.raises(ClientError) as ei:  # one shared "mutate" bucket: DeleteRoute is refused too
        c.delete_route(RouteTableId=t, DestinationCidrBlock="10.30.0.0/16")
    assert err(ei)[1] == "RequestLimitExceeded"
    # In consuming mode the refused call put the bucket in debt (-1): 0.6 s at 2/s is not enough.
    time.sleep(0.6)
    with pytest.raises(ClientError):
        c.delete_route(RouteTableId=t, DestinationCidrBlock="10.30.0.0/16")
    assert control.calls()["throttled_counts"] == {"DeleteRoute": 2}
    c.describe_route_tables(RouteTableIds=[t])  # no "read" bucket configured: unmetered


# ---------------------------------------------------------------------------------------------
# DryRun
# ---------------------------------------------------------------------------------------------

def test_dry_run(proxy_url, control, vpc, moto_url):
    c = ec2(proxy_url)
    args = dict(RouteTableId=vpc["custom"][0], DestinationCidrBlock="10.40.0.0/16",
                NetworkInterfaceId=vpc["enis"][0], DryRun=True)

    # Without the fault, moto ignores DryRun and writes the route (the quirk this fixes).
    c.create_route(**args)
    assert "10.40.0.0/16" in routes(ec2(moto_url), vpc["custom"][0])

    control.config(dry_run=True, dry_run_unauthorized=["DeleteRoute"])
    args["DestinationCidrBlock"] = "10.41.0.0/16"
    with pytest.raises(ClientError) as ei:
        c.create_route(**args)
    assert err(ei) == (412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    assert "10.41.0.0/16" not in routes(ec2(moto_url), vpc["custom"][0])

    with pytest.raises(ClientError) as ei:
        c.delete_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock="10.40.0.0/16", DryRun=True)
    assert err(ei)[:2] == (403, "UnauthorizedOperation")
    assert "10.40.0.0/16" in routes(ec2(moto_url), vpc["custom"][0])

    args.pop("DryRun")  # the real call still goes through
    c.create_route(**args)
    assert "10.41.0.0/16" in routes(ec2(moto_url), vpc["custom"][0])


# ---------------------------------------------------------------------------------------------
# Strict route semantics
# ---------------------------------------------------------------------------------------------

def test_strict_routes(proxy_url, control, vpc, moto_url):
    c = ec2(proxy_url)
    t = vpc["custom"][0]
    c.create_route(RouteTableId=t, DestinationCidrBlock="10.50.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    # moto alone: a second CreateRoute with an ENI silently overwrites the route.
    c.create_route(RouteTableId=t, DestinationCidrBlock="10.50.0.0/16", NetworkInterfaceId=vpc["enis"][1])
    assert routes(ec2(moto_url), t)["10.50.0.0/16"]["NetworkInterfaceId"] == vpc["enis"][1]

    control.config(strict_routes=True)
    with pytest.raises(ClientError) as ei:
        c.create_route(RouteTableId=t, DestinationCidrBlock="10.50.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    assert err(ei) == (400, "RouteAlreadyExists", "The route identified by 10.50.0.0/16 already exists.")
    assert routes(ec2(moto_url), t)["10.50.0.0/16"]["NetworkInterfaceId"] == vpc["enis"][1]
    with pytest.raises(ClientError) as ei:  # the local route counts as existing too
        c.create_route(RouteTableId=t, DestinationCidrBlock="10.0.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    assert err(ei)[1] == "RouteAlreadyExists"

    with pytest.raises(ClientError) as ei:
        c.replace_route(RouteTableId=t, DestinationCidrBlock="10.51.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    status, code, msg = err(ei)
    assert (status, code) == (400, "InvalidParameterValue")
    assert "10.51.0.0/16" in msg
    assert "10.51.0.0/16" not in routes(ec2(moto_url), t)

    # Allowed writes still go through; the proxy's own table reads are not client calls.
    c.replace_route(RouteTableId=t, DestinationCidrBlock="10.50.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    c.create_route(RouteTableId=t, DestinationCidrBlock="10.52.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    calls = control.calls()
    assert calls["counts"] == {"CreateRoute": 5, "ReplaceRoute": 2}
    assert calls["internal_reads"] == 5


def test_strict_routes_concurrent_creates(proxy_url, control, vpc):
    """Ten racing CreateRoute for one destination: exactly one wins, like EC2."""
    control.config(strict_routes=True)
    outcomes = []

    def create(i):
        try:
            ec2(proxy_url).create_route(RouteTableId=vpc["custom"][1], DestinationCidrBlock="10.60.0.0/16",
                                        NetworkInterfaceId=vpc["enis"][i % 2])
            outcomes.append("ok")
        except ClientError as e:
            outcomes.append(e.response["Error"]["Code"])

    threads = [threading.Thread(target=create, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["RouteAlreadyExists"] * 9 + ["ok"]


# ---------------------------------------------------------------------------------------------
# Injection
# ---------------------------------------------------------------------------------------------

def test_inject_errors_n_times_then_success(proxy_url, control, vpc, moto_url):
    t0, t1 = vpc["custom"]
    control.config(inject=[{"action": "CreateRoute", "status": 503, "code": "Unavailable", "times": 2,
                            "match": {"RouteTableId": t0}}])
    c = ec2(proxy_url)
    args = dict(RouteTableId=t0, DestinationCidrBlock="10.70.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    c.create_route(RouteTableId=t1, **{k: v for k, v in args.items() if k != "RouteTableId"})  # no match
    for _ in range(2):
        with pytest.raises(ClientError) as ei:
            c.create_route(**args)
        assert err(ei)[:2] == (503, "Unavailable")
        assert "10.70.0.0/16" not in routes(ec2(moto_url), t0)
    c.create_route(**args)
    assert "10.70.0.0/16" in routes(ec2(moto_url), t0)
    assert [x["status"] for x in control.calls()["calls"]] == [200, 503, 503, 200]


def test_inject_forever_default_code_and_delay(proxy_url, control, vpc):
    control.config(inject=[{"action": "DeleteRoute", "status": 500, "times": -1},
                           {"action": "DescribeRouteTables", "delay_ms": 300, "times": 1}])
    c = ec2(proxy_url)
    for _ in range(3):
        with pytest.raises(ClientError) as ei:
            c.delete_route(RouteTableId=vpc["main"], DestinationCidrBlock="10.0.0.0/16")
        assert err(ei)[:2] == (500, "InternalError")
    start = time.monotonic()
    c.describe_route_tables(RouteTableIds=[vpc["main"]])
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    c.describe_route_tables(RouteTableIds=[vpc["main"]])
    assert time.monotonic() - start < 0.3


def test_inject_connection_drop(proxy_url, control, vpc):
    control.config(inject=[{"action": "DescribeRouteTables", "close": True}])
    c = ec2(proxy_url)
    with pytest.raises(Exception):
        c.describe_route_tables(RouteTableIds=[vpc["main"]])
    c.describe_route_tables(RouteTableIds=[vpc["main"]])


# ---------------------------------------------------------------------------------------------
# Route rewriting and pagination
# ---------------------------------------------------------------------------------------------

def test_rewrite_routes(proxy_url, control, vpc, moto_url):
    m = ec2(moto_url)
    m.create_route(RouteTableId=vpc["main"], DestinationCidrBlock="10.80.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    m.create_route(RouteTableId=vpc["main"], DestinationCidrBlock="10.81.0.0/16", NetworkInterfaceId=vpc["enis"][1])
    m.create_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock="10.80.0.0/16",
                   NetworkInterfaceId=vpc["enis"][0])
    control.config(rewrite_routes=[
        {"route_table_id": vpc["main"], "destination": "10.80.0.0/16", "state": "blackhole"},
        {"route_table_id": vpc["main"], "destination": "10.81.0.0/16", "origin": "EnableVgwRoutePropagation"},
    ])
    c = ec2(proxy_url)
    r = routes(c, vpc["main"])
    assert (r["10.80.0.0/16"]["State"], r["10.80.0.0/16"]["Origin"]) == ("blackhole", "CreateRoute")
    assert r["10.80.0.0/16"]["NetworkInterfaceId"] == vpc["enis"][0]  # target kept, as EC2 does
    assert (r["10.81.0.0/16"]["State"], r["10.81.0.0/16"]["Origin"]) == ("active", "EnableVgwRoutePropagation")
    assert r["10.0.0.0/16"]["State"] == "active"
    # Other tables with the same destination are untouched; filters still work.
    by_filter = c.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["id"]]}])["RouteTables"]
    other = next(t for t in by_filter if t["RouteTableId"] == vpc["custom"][0])
    assert [x["State"] for x in other["Routes"]] == ["active", "active"]
    main = next(t for t in by_filter if t["RouteTableId"] == vpc["main"])
    assert {x["DestinationCidrBlock"]: x["State"] for x in main["Routes"]}["10.80.0.0/16"] == "blackhole"


def test_rewrite_gateway_id_as_ec2_reports_endpoints(proxy_url, control, vpc, moto_url):
    m = ec2(moto_url)
    igw = m.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    m.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc["id"])
    m.create_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    control.config(rewrite_routes=[{"route_table_id": vpc["custom"][0], "destination": "0.0.0.0/0",
                                    "gateway_id": "vpce-0123456789abcdef0",
                                    "odb_network_arn": "arn:aws:odb:us-east-1:123456789012:odb-network/x"}])
    r = routes(ec2(proxy_url), vpc["custom"][0])["0.0.0.0/0"]
    assert r["GatewayId"] == "vpce-0123456789abcdef0"
    assert r["OdbNetworkArn"] == "arn:aws:odb:us-east-1:123456789012:odb-network/x"
    assert routes(ec2(moto_url), vpc["custom"][0])["0.0.0.0/0"]["GatewayId"] == igw  # moto keeps its own


def test_prefix_list_route_to_an_eni_is_stored_as_ec2_stores_it(proxy_url, control, vpc, moto_url):
    """moto 5.2.5 drops the prefix list of a CreateRoute that names an ENI; through the proxy
    the route exists with its prefix list and its ENI, and ReplaceRoute then finds it."""
    m = ec2(moto_url)
    pl = m.create_managed_prefix_list(PrefixListName="sddc", MaxEntries=5, AddressFamily="IPv4",
                                      Entries=[{"Cidr": "192.168.0.0/16"}])["PrefixList"]["PrefixListId"]
    control.config(strict_routes=True)
    c = ec2(proxy_url)
    c.create_route(RouteTableId=vpc["custom"][0], DestinationPrefixListId=pl, NetworkInterfaceId=vpc["enis"][0])

    def prefix_routes():
        t = m.describe_route_tables(RouteTableIds=[vpc["custom"][0]])["RouteTables"][0]
        return [(r.get("DestinationPrefixListId"), r.get("NetworkInterfaceId")) for r in t["Routes"]
                if r.get("DestinationPrefixListId")]

    assert prefix_routes() == [(pl, vpc["enis"][0])]
    c.replace_route(RouteTableId=vpc["custom"][0], DestinationPrefixListId=pl, NetworkInterfaceId=vpc["enis"][1])
    assert prefix_routes() == [(pl, vpc["enis"][1])]
    with pytest.raises(ClientError) as e:
        c.create_route(RouteTableId=vpc["custom"][0], DestinationPrefixListId=pl, NetworkInterfaceId=vpc["enis"][0])
    assert err(e)[1] == "RouteAlreadyExists"
    assert control.calls()["counts"]["CreateRoute"] == 2  # the client's calls, not the proxy's own


def test_pagination(proxy_url, control, vpc, moto_url):
    m = ec2(moto_url)
    extra = [m.create_route_table(VpcId=vpc["id"])["RouteTable"]["RouteTableId"] for _ in range(3)]
    expected = {vpc["main"], *vpc["custom"], *extra}  # 6 tables
    control.config(page_size=2)
    c = ec2(proxy_url)
    flt = [{"Name": "vpc-id", "Values": [vpc["id"]]}]

    first = c.describe_route_tables(Filters=flt)
    assert len(first["RouteTables"]) == 2 and first["NextToken"]

    seen = []
    for page in c.get_paginator("describe_route_tables").paginate(Filters=flt):
        seen.extend(t["RouteTableId"] for t in page["RouteTables"])
    assert sorted(seen) == sorted(expected) and len(seen) == 6

    # MaxResults below page_size is honoured (EC2's allowed range is 5..100).
    r = c.describe_route_tables(Filters=flt, MaxResults=5)
    assert len(r["RouteTables"]) == 2
    # boto3 refuses MaxResults=2 itself; the Rust SDK does not validate ranges, so send it raw.
    status, body = raw_ec2(proxy_url, {"Action": "DescribeRouteTables", "MaxResults": "2"})
    assert status == 400 and b"<Code>InvalidParameterValue</Code>" in body
    # A token only works with the query it came from.
    with pytest.raises(ClientError) as ei:
        c.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": ["vpc-other"]}], NextToken=first["NextToken"])
    assert err(ei)[:2] == (400, "InvalidPaginationToken")

    assert control.calls()["counts"] == {"DescribeRouteTables": 1 + 3 + 1 + 1 + 1}


def test_ec2_error_shape(proxy_url, control):
    """Byte shape of a proxy-made EC2 error: the <Response><Errors> form moto and EC2 use."""
    control.config(inject=[{"action": "CreateRoute", "status": 400, "code": "RouteAlreadyExists",
                            "message": "The route identified by 10.1.0.0/16 already exists."}])
    status, body = raw_ec2(proxy_url, {"Action": "CreateRoute", "RouteTableId": "rtb-1",
                                       "DestinationCidrBlock": "10.1.0.0/16"})
    assert status == 400
    assert re.fullmatch(
        rb'<\?xml version="1.0" encoding="UTF-8"\?>\n<Response><Errors><Error><Code>RouteAlreadyExists</Code>'
        rb"<Message>The route identified by 10.1.0.0/16 already exists.</Message></Error></Errors>"
        rb"<RequestID>[0-9a-f-]{36}</RequestID></Response>", body), body


# ---------------------------------------------------------------------------------------------
# SNS
# ---------------------------------------------------------------------------------------------

def test_sns_passthrough_and_fault(proxy_url, control, moto_url):
    topic = sns(moto_url).create_topic(Name="sync-routes-report")["TopicArn"]
    s = sns(proxy_url)
    assert s.publish(TopicArn=topic, Message="hello")["MessageId"]

    control.config(inject=[{"action": "Publish", "service": "sns", "status": 500, "code": "InternalFailure",
                            "message": "boom", "times": 1}],
                   buckets={"mutate": {"capacity": 1, "refill_per_sec": 0.01}})  # EC2 only: SNS unmetered
    with pytest.raises(ClientError) as ei:
        s.publish(TopicArn=topic, Message="hello")
    assert err(ei) == (500, "InternalFailure", "boom")
    assert ei.value.response["Error"]["Type"] == "Receiver"
    assert s.publish(TopicArn=topic, Message="hello")["MessageId"]
    s.create_topic(Name="another")  # "Create*" but SNS: no EC2 bucket applies
    s.create_topic(Name="another2")

    calls = control.calls()
    assert calls["counts"] == {"Publish": 3, "CreateTopic": 2}
    assert {x["service"] for x in calls["calls"]} == {"sns"}
    assert calls["throttled"] == 0


def test_dynamodb_passthrough_and_json_fault(proxy_url, control, moto_url):
    """The ledger's DynamoDB calls pass through, and an injected fault answers in DynamoDB's
    JSON error shape, so the SDK reads its code (a ledger outage in the Rust tests)."""
    direct = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    direct.create_table(TableName="proxy-ledger", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "K", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "K", "KeyType": "HASH"}])
    d = boto3.client("dynamodb", endpoint_url=proxy_url, region_name="us-east-1", config=NO_RETRY,
                     aws_access_key_id="test", aws_secret_access_key="test")
    d.batch_write_item(RequestItems={"proxy-ledger": [{"PutRequest": {"Item": {"K": {"S": "a"}}}}]})
    control.config(inject=[{"action": "BatchGetItem", "service": "dynamodb", "status": 500,
                            "code": "InternalServerError", "message": "ledger down", "times": 1}])
    keys = {"proxy-ledger": {"Keys": [{"K": {"S": "a"}}]}}
    with pytest.raises(ClientError) as ei:
        d.batch_get_item(RequestItems=keys)
    assert err(ei) == (500, "InternalServerError", "ledger down")
    assert d.batch_get_item(RequestItems=keys)["Responses"]["proxy-ledger"] == [{"K": {"S": "a"}}]
    assert control.calls()["counts"] == {"BatchWriteItem": 1, "BatchGetItem": 2}


# ---------------------------------------------------------------------------------------------
# Config validation of the newer keys
# ---------------------------------------------------------------------------------------------

def refused(url, cfg) -> tuple[int, str]:
    """POST a config that should be refused: (status, error message)."""
    req = urllib.request.Request(url + "/_fault/config", data=json.dumps(cfg).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["error"]


@pytest.mark.parametrize("cfg, says", [
    ({"read_lag_s": 0}, "read_lag_s must be a positive number"),
    ({"read_lag_s": -1.5}, "read_lag_s must be a positive number"),
    ({"read_lag_s": "1"}, "read_lag_s must be a positive number"),
    ({"read_lag_s": True}, "read_lag_s must be a positive number"),  # not a 1 s lag in disguise
    ({"delete_before_write": {"route_table_id": "rtb-1"}}, "a list of"),
    ({"delete_before_write": ["rtb-1"]}, "one key per rule"),
    ({"delete_before_write": [{"table": "rtb-1"}]}, "one key per rule"),
    ({"delete_before_write": [{"route_table_id": "rtb-1", "vpc_id": "vpc-1"}]}, "one key per rule"),
    ({"delete_before_write": [{"route_table_id": "vpc-1"}]}, "route_table_id must be a 'rtb-…' id"),
    ({"delete_before_write": [{"vpc_id": "rtb-1"}]}, "vpc_id must be a 'vpc-…' id"),
    ({"delete_before_write": [{"vpc_id": 7}]}, "vpc_id must be a 'vpc-…' id"),
])
def test_bad_lag_and_delete_configs_are_refused(proxy_url, control, cfg, says):
    control.config(page_size=3)
    status, message = refused(proxy_url, cfg)
    assert status == 400 and says in message, message
    # A refused config leaves the previous one in place.
    with urllib.request.urlopen(proxy_url + "/_fault/config", timeout=10) as r:
        assert json.loads(r.read()) == {"page_size": 3}


# ---------------------------------------------------------------------------------------------
# Read lag (EC2's eventual consistency)
# ---------------------------------------------------------------------------------------------

LAG = 1.2  # seconds: long enough for several calls inside, short enough for the suite
SETTLE = LAG + 0.4  # wait that makes a write visible, with room for a slow machine


def target(client, table_id, dest):
    """NetworkInterfaceId of dest in table_id as client sees it; None when the route is absent."""
    r = routes(client, table_id).get(dest)
    return None if r is None else r.get("NetworkInterfaceId")


def sleep_until(t: float):
    time.sleep(max(0.0, t - time.monotonic()))


def test_read_lag_create_replace_delete(proxy_url, control, vpc, moto_url):
    control.config(read_lag_s=LAG)
    c, m, t = ec2(proxy_url), ec2(moto_url), vpc["custom"][0]
    eni0, eni1 = vpc["enis"]

    c.create_route(RouteTableId=t, DestinationCidrBlock="10.90.0.0/16", NetworkInterfaceId=eni0)
    assert target(m, t, "10.90.0.0/16") == eni0  # moto has it at once...
    assert target(c, t, "10.90.0.0/16") is None  # ...a read through the proxy does not yet
    time.sleep(SETTLE)
    assert target(c, t, "10.90.0.0/16") == eni0

    c.replace_route(RouteTableId=t, DestinationCidrBlock="10.90.0.0/16", NetworkInterfaceId=eni1)
    assert target(c, t, "10.90.0.0/16") == eni0  # the old target
    time.sleep(SETTLE)
    assert target(c, t, "10.90.0.0/16") == eni1

    c.delete_route(RouteTableId=t, DestinationCidrBlock="10.90.0.0/16")
    assert target(m, t, "10.90.0.0/16") is None
    assert target(c, t, "10.90.0.0/16") == eni1  # still there
    time.sleep(SETTLE)
    assert target(c, t, "10.90.0.0/16") is None

    calls = control.calls()
    assert calls["counts"] == {"CreateRoute": 1, "ReplaceRoute": 1, "DeleteRoute": 1, "DescribeRouteTables": 6}
    assert calls["internal_reads"] == 3  # one "before" snapshot per write, not client calls


def test_read_lag_two_writes_become_visible_in_order(proxy_url, control, vpc):
    """The main table, written through the proxy like the tests' own setup does."""
    control.config(read_lag_s=LAG)
    c, t, eni = ec2(proxy_url), vpc["main"], vpc["enis"][0]
    c.create_route(RouteTableId=t, DestinationCidrBlock="10.91.0.0/16", NetworkInterfaceId=eni)
    first_done = time.monotonic()
    time.sleep(0.8)
    second_sent = time.monotonic()
    c.create_route(RouteTableId=t, DestinationCidrBlock="10.92.0.0/16", NetworkInterfaceId=eni)
    second_done = time.monotonic()
    assert second_done - first_done < LAG - 0.1, "machine too slow for this timing test"

    r = routes(c, t)
    assert "10.91.0.0/16" not in r and "10.92.0.0/16" not in r
    # Between the two writes' visibility times: the first shows, the second does not yet.
    sleep_until((first_done + LAG + second_sent + LAG) / 2)
    r = routes(c, t)
    assert "10.91.0.0/16" in r and "10.92.0.0/16" not in r
    assert time.monotonic() < second_sent + LAG, "machine too slow for this timing test"
    sleep_until(second_done + SETTLE)
    r = routes(c, t)
    assert "10.91.0.0/16" in r and "10.92.0.0/16" in r


def test_read_lag_touches_only_the_written_tables_routes(proxy_url, control, vpc, moto_url):
    m, c = ec2(moto_url), ec2(proxy_url)
    t0, t1 = vpc["custom"]
    m.create_route(RouteTableId=t1, DestinationCidrBlock="10.93.0.0/16", NetworkInterfaceId=vpc["enis"][1])
    m.create_tags(Resources=[t0], Tags=[{"Key": "Name", "Value": "lagged"}])
    control.config(read_lag_s=LAG)
    c.create_route(RouteTableId=t0, DestinationCidrBlock="10.94.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    # Changes made after the write, straight in moto (not route writes): visible at once.
    assoc = m.associate_route_table(RouteTableId=t0, SubnetId=vpc["subnet"])["AssociationId"]

    tables = {t["RouteTableId"]: t for t in c.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc["id"]]}])["RouteTables"]}
    truth = {t["RouteTableId"]: t for t in m.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc["id"]]}])["RouteTables"]}
    assert set(tables) == set(truth) == {vpc["main"], t0, t1}
    assert [r["DestinationCidrBlock"] for r in tables[t0]["Routes"]] == ["10.0.0.0/16"]
    assert [r["DestinationCidrBlock"] for r in truth[t0]["Routes"]] == ["10.0.0.0/16", "10.94.0.0/16"]
    assert tables[t0]["Tags"] == [{"Key": "Name", "Value": "lagged"}]
    assert [a["RouteTableAssociationId"] for a in tables[t0]["Associations"]] == [assoc]
    for other in (vpc["main"], t1):  # not written through the proxy: as moto answers
        assert tables[other] == truth[other]


def test_read_lag_ignores_failed_and_dry_run_writes(proxy_url, control, vpc, moto_url):
    """Only a write moto accepted is delayed: after a refused one, a read shows moto's state."""
    control.config(read_lag_s=LAG)
    m, c, t = ec2(moto_url), ec2(proxy_url), vpc["custom"][0]
    with pytest.raises(ClientError) as ei:  # moto: no such route
        c.delete_route(RouteTableId=t, DestinationCidrBlock="10.95.0.0/16")
    assert err(ei)[0] == 400
    m.create_route(RouteTableId=t, DestinationCidrBlock="10.96.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    assert "10.96.0.0/16" in routes(c, t)
    # moto performs a DryRun write (dry_run is off); EC2 would not have written: nothing to hide.
    c.create_route(RouteTableId=t, DestinationCidrBlock="10.97.0.0/16", NetworkInterfaceId=vpc["enis"][0],
                   DryRun=True)
    assert "10.97.0.0/16" in routes(c, t)


def test_read_lag_history_cleared_by_new_config_and_reset(proxy_url, control, vpc):
    c, t, eni = ec2(proxy_url), vpc["custom"][0], vpc["enis"][0]
    control.config(read_lag_s=LAG)
    c.create_route(RouteTableId=t, DestinationCidrBlock="10.98.0.0/16", NetworkInterfaceId=eni)
    assert "10.98.0.0/16" not in routes(c, t)
    control.config(read_lag_s=LAG)  # a new config: earlier writes are not delayed by it
    assert "10.98.0.0/16" in routes(c, t)

    c.create_route(RouteTableId=t, DestinationCidrBlock="10.99.0.0/16", NetworkInterfaceId=eni)
    control.reset()
    control.config(read_lag_s=LAG)
    assert "10.99.0.0/16" in routes(c, t)


def test_read_lag_with_paging_and_rewrite(proxy_url, control, vpc, moto_url):
    m, c = ec2(moto_url), ec2(proxy_url)
    extra = [m.create_route_table(VpcId=vpc["id"])["RouteTable"]["RouteTableId"] for _ in range(2)]
    last = extra[-1]  # 5 tables in pages of 2: the written one is on the last page
    m.create_route(RouteTableId=last, DestinationCidrBlock="10.100.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    control.config(read_lag_s=LAG, page_size=2,
                   rewrite_routes=[{"route_table_id": last, "destination": "10.100.0.0/16", "state": "blackhole"}])
    c.replace_route(RouteTableId=last, DestinationCidrBlock="10.100.0.0/16", NetworkInterfaceId=vpc["enis"][1])
    c.create_route(RouteTableId=last, DestinationCidrBlock="10.101.0.0/16", NetworkInterfaceId=vpc["enis"][1])

    def paged() -> tuple[dict, int]:
        tables, pages = {}, 0
        for page in c.get_paginator("describe_route_tables").paginate(
                Filters=[{"Name": "vpc-id", "Values": [vpc["id"]]}]):
            pages += 1
            tables.update({t["RouteTableId"]: t for t in page["RouteTables"]})
        return {d: (r.get("NetworkInterfaceId"), r["State"]) for r in tables[last]["Routes"]
                if (d := r["DestinationCidrBlock"]) != "10.0.0.0/16"}, pages

    # The lagged routes, dressed by rewrite_routes too.
    assert paged() == ({"10.100.0.0/16": (vpc["enis"][0], "blackhole")}, 3)
    time.sleep(SETTLE)
    assert paged() == ({"10.100.0.0/16": (vpc["enis"][1], "blackhole"),
                        "10.101.0.0/16": (vpc["enis"][1], "active")}, 3)


def test_read_lag_with_strict_routes_and_prefix_list_fix(proxy_url, control, vpc, moto_url):
    """The prefix-list fix (create + replace upstream) is one write, hidden as a whole; strict
    routes still check against moto's real state, not the lagged one."""
    m, c, t = ec2(moto_url), ec2(proxy_url), vpc["custom"][0]
    pl = m.create_managed_prefix_list(PrefixListName="lagged", MaxEntries=5, AddressFamily="IPv4",
                                      Entries=[{"Cidr": "192.168.0.0/16"}])["PrefixList"]["PrefixListId"]
    control.config(read_lag_s=LAG, strict_routes=True)
    c.create_route(RouteTableId=t, DestinationPrefixListId=pl, NetworkInterfaceId=vpc["enis"][0])

    def prefix_routes(client):
        table = client.describe_route_tables(RouteTableIds=[t])["RouteTables"][0]
        return [(r.get("DestinationPrefixListId"), r.get("NetworkInterfaceId")) for r in table["Routes"]
                if r.get("DestinationPrefixListId") or not r.get("DestinationCidrBlock")]

    assert prefix_routes(m) == [(pl, vpc["enis"][0])]
    assert prefix_routes(c) == []  # not even moto's target-less halfway route
    with pytest.raises(ClientError) as ei:
        c.create_route(RouteTableId=t, DestinationPrefixListId=pl, NetworkInterfaceId=vpc["enis"][1])
    assert err(ei)[1] == "RouteAlreadyExists"
    time.sleep(SETTLE)
    assert prefix_routes(c) == [(pl, vpc["enis"][0])]
    # One snapshot serves both the strict check and the lag: one internal read per write.
    assert control.calls()["internal_reads"] == 2


# ---------------------------------------------------------------------------------------------
# delete_before_write (Terraform destroys between the function's read and its write)
# ---------------------------------------------------------------------------------------------

def not_found(table_id) -> tuple[int, str, str]:
    """What EC2 answers for a route write to a table that does not exist."""
    return 400, "InvalidRouteTableID.NotFound", f"The routeTable ID '{table_id}' does not exist"


def table_exists(m, table_id) -> bool:
    try:
        m.describe_route_tables(RouteTableIds=[table_id])
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidRouteTableID.NotFound"
        return False
    return True


@pytest.mark.parametrize("extra", [{}, {"strict_routes": True, "read_lag_s": LAG}], ids=["plain", "strict+lag"])
def test_delete_before_write_table(proxy_url, control, vpc, moto_url, extra):
    m, c = ec2(moto_url), ec2(proxy_url)
    t0, t1 = vpc["custom"]
    m.associate_route_table(RouteTableId=t0, SubnetId=vpc["subnet"])  # must be undone before the delete
    control.config(delete_before_write=[{"route_table_id": t0}], **extra)
    # A read before the write (the function's read) still finds the table.
    assert t0 in {t["RouteTableId"] for t in c.describe_route_tables()["RouteTables"]}

    with pytest.raises(ClientError) as ei:
        c.create_route(RouteTableId=t0, DestinationCidrBlock="10.110.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    assert err(ei) == not_found(t0)
    assert not table_exists(m, t0)
    assert table_exists(m, t1) and m.describe_subnets(SubnetIds=[vpc["subnet"]])["Subnets"]

    # Fired once: the next write meets the missing table without the proxy deleting (or reading) more.
    reads = control.calls()["internal_reads"]
    for call, kw in ((c.replace_route, {"NetworkInterfaceId": vpc["enis"][0]}), (c.delete_route, {})):
        with pytest.raises(ClientError) as ei:
            call(RouteTableId=t0, DestinationCidrBlock="10.110.0.0/16", **kw)
        assert err(ei) == not_found(t0)
    c.create_route(RouteTableId=t1, DestinationCidrBlock="10.110.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    assert "10.110.0.0/16" in routes(m, t1)
    calls = control.calls()
    # No rule check any more; with strict+lag each of the three writes takes its table snapshot.
    assert calls["internal_reads"] == reads + (3 if extra else 0)
    assert calls["deleted_tables"] == [t0] and calls["deleted_vpcs"] == []
    assert [x.get("deleted_tables") for x in calls["calls"] if x["action"] != "DescribeRouteTables"] == [
        [t0], None, None, None]


def test_delete_before_write_main_table_alone_is_kept(proxy_url, control, vpc, moto_url):
    """EC2 never deletes a main table on its own (moto would): the rule fires, nothing goes."""
    control.config(delete_before_write=[{"route_table_id": vpc["main"]}])
    c = ec2(proxy_url)
    c.create_route(RouteTableId=vpc["main"], DestinationCidrBlock="10.111.0.0/16", NetworkInterfaceId=vpc["enis"][0])
    assert "10.111.0.0/16" in routes(ec2(moto_url), vpc["main"])
    assert control.calls()["deleted_tables"] == []


def test_delete_before_write_vpc(proxy_url, control, vpc, moto_url):
    m, c = ec2(moto_url), ec2(proxy_url)
    other = build_vpc(m, "10.1.0.0/16")
    igw = m.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    m.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc["id"])
    m.associate_route_table(RouteTableId=vpc["custom"][1], SubnetId=vpc["subnet"])
    control.config(delete_before_write=[{"vpc_id": vpc["id"]}])

    # A write to another VPC's table does not fire the rule.
    c.create_route(RouteTableId=other["custom"][0], DestinationCidrBlock="10.120.0.0/16",
                   NetworkInterfaceId=other["enis"][0])
    assert control.calls()["deleted_tables"] == []

    with pytest.raises(ClientError) as ei:
        c.replace_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock="10.0.0.0/16", GatewayId="local")
    assert err(ei) == not_found(vpc["custom"][0])
    with pytest.raises(ClientError) as ei:  # the main table went with its VPC
        c.delete_route(RouteTableId=vpc["main"], DestinationCidrBlock="10.0.0.0/16")
    assert err(ei) == not_found(vpc["main"])

    for table in (vpc["main"], *vpc["custom"]):
        assert not table_exists(m, table)
    assert m.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc["id"]]}])["Vpcs"] == []
    assert m.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["id"]]}])["Subnets"] == []
    assert m.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc["id"]]}])["NetworkInterfaces"] == []
    assert m.describe_internet_gateways(Filters=[{"Name": "internet-gateway-id", "Values": [igw]}])[
        "InternetGateways"] == []

    # The other VPC is untouched.
    assert {t["RouteTableId"] for t in m.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [other["id"]]}])["RouteTables"]} == {other["main"], *other["custom"]}
    assert "10.120.0.0/16" in routes(m, other["custom"][0])
    assert len(m.describe_network_interfaces(
        Filters=[{"Name": "vpc-id", "Values": [other["id"]]}])["NetworkInterfaces"]) == 2

    calls = control.calls()
    assert sorted(calls["deleted_tables"]) == sorted([vpc["main"], *vpc["custom"]])
    assert calls["deleted_vpcs"] == [vpc["id"]]


def test_delete_before_write_vpc_that_cannot_go(proxy_url, control, vpc, moto_url):
    """An attached VPN gateway keeps the VPC (moto refuses DeleteVpc, as EC2 would): its custom
    tables still go, and the rule, fired, leaves a table created afterwards alone."""
    m, c = ec2(moto_url), ec2(proxy_url)
    vgw = m.create_vpn_gateway(Type="ipsec.1")["VpnGateway"]["VpnGatewayId"]
    m.attach_vpn_gateway(VpnGatewayId=vgw, VpcId=vpc["id"])
    control.config(delete_before_write=[{"vpc_id": vpc["id"]}])

    with pytest.raises(ClientError) as ei:
        c.create_route(RouteTableId=vpc["custom"][0], DestinationCidrBlock="10.130.0.0/16",
                       NetworkInterfaceId=vpc["enis"][0])
    assert err(ei) == not_found(vpc["custom"][0])
    assert [v["VpcId"] for v in m.describe_vpcs(VpcIds=[vpc["id"]])["Vpcs"]] == [vpc["id"]]
    assert [t["RouteTableId"] for t in m.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc["id"]]}])["RouteTables"]] == [vpc["main"]]

    later = m.create_route_table(VpcId=vpc["id"])["RouteTable"]["RouteTableId"]
    c.create_route(RouteTableId=later, DestinationCidrBlock="10.130.0.0/16", GatewayId=vgw)
    assert "10.130.0.0/16" in routes(m, later)
    calls = control.calls()
    assert sorted(calls["deleted_tables"]) == sorted(vpc["custom"]) and calls["deleted_vpcs"] == []
