"""The original tool's HTTP API through API Gateway (a REST proxy event, as the CDK app's
`-c httpEndpoint=true` integration delivers it), end to end with the real binary under the
mock Lambda Runtime API: each outcome's HTTP status, the report as the body, and the routes
in moto afterwards. An API Gateway caller always gets an HTTP response, never a Lambda error.
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

import lambda_harness as h


@pytest.fixture
def fn(proxy_url, tmp_path):
    binary = h.function_binary()
    msg = h.missing_binary_message(binary)
    if msg:
        pytest.fail(msg, pytrace=False)
    process = h.FunctionProcess(proxy_url, binary=binary, log_path=tmp_path / "fn.log")
    process.wait_ready()
    yield process
    process.stop()


def patch(vpc: str, table: str, body) -> dict:
    """What API Gateway hands the function for PATCH /vpcs/{vpc-id}/route-tables/{route-table-id}."""
    return {
        "resource": "/vpcs/{vpc-id}/route-tables/{route-table-id}",
        "path": f"/vpcs/{vpc}/route-tables/{table}",
        "httpMethod": "PATCH",
        "headers": {"Content-Type": "application/json", "X-API-Key": "redacted"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"vpc-id": vpc, "route-table-id": table},
        "stageVariables": None,
        "requestContext": {
            "accountId": h.ACCOUNT, "apiId": "abc123", "resourceId": "r1", "stage": "prod",
            "requestId": str(uuid.uuid4()), "httpMethod": "PATCH",
            "resourcePath": "/vpcs/{vpc-id}/route-tables/{route-table-id}",
            "path": f"/prod/vpcs/{vpc}/route-tables/{table}",
            "identity": {"sourceIp": "198.51.100.7", "apiKeyId": "key1"},
        },
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def answer(fn: h.FunctionProcess, event: dict) -> tuple[int, dict]:
    r = fn.invoke(event)
    assert r.ok, f"an HTTP caller gets a response, never a Lambda error: {r.body}"
    assert r.body["headers"]["content-type"] == "application/json", r.body
    return r.body["statusCode"], json.loads(r.body["body"])


def test_each_outcome_has_its_status(fn, control, moto_url):
    ids = h.build_vpc(moto_url)
    [(cidr, eni)] = h.write_main_routes(moto_url, ids, ["10.100.0.0/16"])
    control.config(strict_routes=True, dry_run=True)

    # A sync: 200, the routes are in every custom table.
    status, report = answer(fn, patch(ids["vpc"], ids["main"], {"destination-cidr-block": cidr, "dry-run": False}))
    assert (status, report["outcome"], report["trigger"]) == (200, "synced", "http"), report
    tables = h.routes_by_table(moto_url, ids["vpc"])
    assert all(tables[t].get(cidr) == eni for t in ids["customs"])

    # Unchanged and dry run: 200 too.
    status, report = answer(fn, patch(ids["vpc"], ids["main"], {"destination-cidr-block": cidr}))
    assert (status, report["outcome"]) == (200, "unchanged")
    status, report = answer(fn, patch(ids["vpc"], ids["main"], {"destination-cidr-block": cidr, "dry-run": True}))
    assert (status, report["outcome"]) == (200, "dry-run")

    # A refusal (a custom table named as the main one): 422 with the reason.
    status, report = answer(fn, patch(ids["vpc"], ids["customs"][0], {"destination-cidr-block": cidr}))
    assert (status, report["outcome"], report["reason"]) == (422, "refused", "not-main-table"), report

    # A bad body: 400, and nothing reaches EC2.
    control.reset()
    for body in ('{"destination-cidr-block": "10.100.0.0/16", "dry-run": "yes"}', "not json", None,
                 {"destination_cidr_block": cidr}):
        status, report = answer(fn, patch(ids["vpc"], ids["main"], body))
        assert (status, report["outcome"]) == (400, "rejected"), (body, report)
    assert control.calls()["counts"] == {}

    # A failure (EC2 keeps failing the writes): 502, the report says which tables.
    h.write_main_routes(moto_url, ids, [cidr], enis=[ids["enis"][1]], call="replace")
    control.config(inject=[{"action": "ReplaceRoute", "status": 400, "code": "InvalidParameterValue",
                            "message": "injected", "times": -1}])
    status, report = answer(fn, patch(ids["vpc"], ids["main"], {"destination-cidr-block": cidr}))
    assert (status, report["outcome"]) == (502, "failed"), report
    assert {t["action"] for t in report["tables"]} == {"failed"}
    assert fn.alive()


def client_script_request(vpc: str, table: str, cidr: str, dry_run: str = "false") -> dict:
    """The exact request of awslabs/aws-sync-routes' scripts/aws-sync-routes-client.sh, as
    API Gateway's REST proxy integration hands it over: `curl --silent --show-error --data
    "$request_body" --header 'Content-Type: application/json' --header "X-API-Key: $api_key"
    --request 'PATCH' https://$id.execute-api.$region.amazonaws.com/v1/vpcs/$vpc_id/route-tables/$route_table_id`,
    its body built as `{"destination-cidr-block": "$cidr", "dry-run": $dry_run}`."""
    event = patch(vpc, table, f'{{"destination-cidr-block": "{cidr}", "dry-run": {dry_run}}}')
    headers = {
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "Accept": "*/*",
        "Content-Type": "application/json",
        "X-API-Key": "redacted",
        "Content-Length": str(len(event["body"])),
        "X-Forwarded-For": "198.51.100.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    # The original's stage, the CDK app's default (httpStageName).
    event["requestContext"]["stage"] = "v1"
    event["requestContext"]["path"] = f"/v1/vpcs/{vpc}/route-tables/{table}"
    return event


def test_the_original_clients_request_works_unchanged(fn, control, moto_url):
    ids = h.build_vpc(moto_url)
    [(cidr, eni)] = h.write_main_routes(moto_url, ids, ["10.101.0.0/16"])
    control.config(strict_routes=True, dry_run=True)
    status, report = answer(fn, client_script_request(ids["vpc"], ids["main"], cidr, "true"))
    assert (status, report["outcome"]) == (200, "dry-run"), report
    status, report = answer(fn, client_script_request(ids["vpc"], ids["main"], cidr))
    assert (status, report["outcome"], report["trigger"]) == (200, "synced", "http"), report
    tables = h.routes_by_table(moto_url, ids["vpc"])
    assert all(tables[t].get(cidr) == eni for t in ids["customs"])


def test_a_request_the_deadline_cuts_short_answers_202_and_the_rest_goes_on_the_queue(
        proxy_url, control, moto_url, sqs_url, tmp_path):
    """API Gateway gives up at 29 s; the function answers by the sooner of its deadline and
    27 s. Here the deadline is 3 s and EC2's write bucket lets 2 writes through and 1 a
    second after: the answer is 202 with what was written and what was handed on, and the
    rest is on the work queue as one continuation."""
    sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name=h.REGION,
                       aws_access_key_id="test", aws_secret_access_key="test")
    queue_url = sqs.create_queue(QueueName=f"work-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    binary = h.function_binary()
    msg = h.missing_binary_message(binary)
    if msg:
        pytest.fail(msg, pytrace=False)
    process = h.FunctionProcess(proxy_url, binary=binary, log_path=tmp_path / "fn.log",
                                env={"SYNC_QUEUE_URL": queue_url})
    try:
        process.wait_ready()
        ids = h.build_vpc(moto_url, custom_tables=8)
        [(cidr, eni)] = h.write_main_routes(moto_url, ids, ["10.102.0.0/16"])
        control.config(strict_routes=True, buckets={"mutate": {"capacity": 2, "refill_per_sec": 1}})
        r = process.invoke(client_script_request(ids["vpc"], ids["main"], cidr), deadline_s=3.0)
        assert r.ok, r.body
        assert r.seconds is not None and r.seconds < 3.0, r.seconds
        status, report = r.body["statusCode"], json.loads(r.body["body"])
        assert (status, report["outcome"]) == (202, "progressing"), report
        assert report["counts"]["deferred"] > 0 and report["calls"]["hand_offs"] == 1, report
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        assert len(messages) == 1, messages
        continuation = json.loads(messages[0]["Body"])
        assert continuation["route-table-id"] == ids["main"] and continuation["hand-off"] == 1, continuation
        assert continuation["destination-cidr-block"] == cidr
    finally:
        process.stop()
