"""Tests of tests/fault_proxy.py: each emulated EC2 behaviour, through boto3, against moto.

Fixtures are in conftest.py. Setup (VPCs, ENIs, topics) goes straight to moto so that the proxy's
call counts only hold what each test sends through it. boto3 retries are off, so every error the
proxy produces is seen as is.
"""

from __future__ import annotations

import http.client
import re
import signal
import threading
import time
import urllib.parse

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


@pytest.fixture
def vpc(moto_url):
    """A VPC (10.0.0.0/16) with a subnet, two ENIs, its main table and two custom tables."""
    m = ec2(moto_url)
    vpc_id = m.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = m.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    enis = [m.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"] for _ in range(2)]
    main = m.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                            {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    custom = [m.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"] for _ in range(2)]
    return {"id": vpc_id, "subnet": subnet, "enis": enis, "main": main["RouteTableId"], "custom": custom}


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
