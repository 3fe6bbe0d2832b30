"""The original tool's HTTP API through API Gateway (a REST proxy event, as the CDK app's
`-c httpEndpoint=true` integration delivers it), end to end with the real binary under the
mock Lambda Runtime API: each outcome's HTTP status, the report as the body, and the routes
in moto afterwards. An API Gateway caller always gets an HTTP response, never a Lambda error.
"""

from __future__ import annotations

import json
import uuid

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
