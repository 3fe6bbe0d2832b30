"""The function binary end to end, as Lambda runs it: a mock Lambda Runtime API hands it events
(tests/lambda_harness.py), its AWS calls go through tests/fault_proxy.py to moto, and every
assertion is on what an operator would see: the reports, the calls EC2 and SNS received, and
the routes in the tables afterwards.

The binary: env SYNC_ROUTES_BIN, default the deploy binary
${CARGO_TARGET_DIR:-target}/lambda/sync-routes/bootstrap. Missing binary = failure, never a skip.
Setup (VPCs, ENIs, main-table routes, topics) goes straight to moto, so the proxy's counts hold
only the function's calls.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lambda_harness as h  # noqa: E402

TEMPLATE = h.REPO / "cdk" / "cdk.out" / "SyncRoutes.template.json"
WRITES = ("CreateRoute", "ReplaceRoute")

# (service, action) of every call the function made through the proxy, across this module.
OBSERVED: set[tuple[str, str]] = set()
# What the event source mapping does with the function's role (CDK's SqsEventSource grants).
ESM_ACTIONS = {"sqs:receivemessage", "sqs:deletemessage", "sqs:changemessagevisibility",
               "sqs:getqueueattributes", "sqs:getqueueurl"}


@pytest.fixture(autouse=True)
def observe_calls(control):
    """After each test, adds the (service, action) pairs the proxy saw to OBSERVED."""
    yield
    for call in control.calls()["calls"]:
        if call.get("action"):
            OBSERVED.add((call["service"], call["action"]))


def counts(control) -> dict:
    return control.calls()["counts"]


def writes(c: dict) -> int:
    return sum(c.get(a, 0) for a in WRITES)


def assert_synced(moto_url: str, ids: dict, routes: list[tuple[str, str]]):
    tables = h.routes_by_table(moto_url, ids["vpc"])
    for custom in ids["customs"]:
        for cidr, eni in routes:
            assert tables[custom].get(cidr) == eni, f"{custom} lacks {cidr} -> {eni}: {tables[custom]}"


# ------------------------------------------------------------------------------------------------

# What the CDK app deploys (cdk/lib/sync-routes.ts, reservedConcurrency): at most this many
# invocations share EC2's write bucket; more events wait in Lambda's asynchronous queue.
RESERVED_CONCURRENCY = 2


def test_runtime_contract_bad_payloads_then_a_valid_event(function, control, moto_url):
    ids = h.build_vpc(moto_url)
    [(cidr, eni)] = h.write_main_routes(moto_url, ids, ["10.100.0.0/16"])
    fn = function()

    # 1. Not JSON: lambda_runtime cannot deserialize it and answers /error itself.
    r = fn.invoke(b"this is not JSON {")
    assert not r.ok, r.body
    assert "DeserializeError" in r.body["errorType"], r.body

    # 2. JSON of the wrong shapes: the handler rejects them with a report.
    for payload in ({"hello": "world"}, [1, 2, 3], '"a string"',
                    {"reconcile": "yes"},
                    h.cloudtrail_event("rtb-nothex!", cidr, eni)):
        r = fn.invoke(payload)
        assert r.ok, r.body
        assert r.report["outcome"] == "rejected", r.report
        assert r.report["calls"] == {"describe_route_tables": 0, "route_writes": 0, "throttled": 0,
                                     "hand_offs": 0}

    # 3. Well-formed events that are not ours: a failed call, another region's call.
    failed = json.loads((h.REPO / "events" / "cloudtrail-failed-call.json").read_text())
    for payload in (failed, h.cloudtrail_event(ids["main"], cidr, eni, error_code="RouteAlreadyExists"),
                    h.cloudtrail_event(ids["main"], cidr, eni, region="eu-west-1")):
        r = fn.invoke(payload)
        assert r.ok, r.body
        assert r.report["outcome"] == "ignored", r.report

    assert fn.alive(), "the function process died on a bad payload"
    assert counts(control) == {}, "bad payloads must not reach AWS"

    # 4. A valid event, on the same process. CloudTrail records the CIDR as the caller sent
    #    it (host bits set); EC2 stored its network, which is what gets synced.
    r = fn.invoke(h.cloudtrail_event(ids["main"], "10.100.0.1/16", eni))
    assert r.ok, r.body
    assert r.report["outcome"] == "synced", r.report
    assert r.report["destination"] == cidr
    assert sorted(t["route_table_id"] for t in r.report["tables"]) == sorted(ids["customs"])
    assert {t["action"] for t in r.report["tables"]} == {"created"}
    c = counts(control)
    assert c.get("CreateRoute") == 4 and c.get("ReplaceRoute", 0) == 0, c
    assert_synced(moto_url, ids, [(cidr, eni)])
    assert fn.alive()


@pytest.mark.parametrize("throttled_consumes_token", [False, True], ids=["throttled-free", "throttled-cost"])
def test_customer_case_26_routes_x_4_tables_behind_the_write_bucket(function, control, moto_url,
                                                                    throttled_consumes_token):
    """The seed's customer case: 26 routes x 4 custom tables changed at once, 26 events
    handled by as many concurrent function processes as the deployment allows (the CDK
    app's reserved concurrency, 2), behind EC2's mutating-call token bucket (50 burst, 5 per
    second, as EC2 documents it). EC2's documentation does not say whether a throttled call
    costs a token, so both models must hold: where it does, unpaced retries would keep the
    bucket in debt and no write would land."""
    capacity, refill, n_routes, n_procs = 50, 5.0, 26, RESERVED_CONCURRENCY  # floor 10.8 s
    ids = h.build_vpc(moto_url)
    routes = h.write_main_routes(moto_url, ids, h.route_cidrs(n_routes))
    events = [h.cloudtrail_event(ids["main"], cidr, eni) for cidr, eni in routes]
    fns = [function(name=f"fn{i}") for i in range(n_procs)]
    control.config(buckets={"mutate": {"capacity": capacity, "refill_per_sec": refill}}, strict_routes=True,
                   throttled_consumes_token=throttled_consumes_token)

    results, wall = h.run_concurrently(fns, events, deadline_s=60)

    total_writes = n_routes * len(ids["customs"])
    floor = (total_writes - capacity) / refill
    snap = control.calls()
    attempts = snap["counts"].get("CreateRoute", 0)
    throttled = snap["throttled_counts"].get("CreateRoute", 0)
    print(f"\ncustomer case ({'throttled calls cost a token' if throttled_consumes_token else 'throttled calls free'}): wall {wall:.2f}s, floor {floor:.2f}s, ratio {wall / floor:.2f}, "
          f"CreateRoute attempts {attempts} ({throttled} throttled), "
          f"DescribeRouteTables {snap['counts'].get('DescribeRouteTables', 0)}")

    failures = [r.body for r in results if not r.ok]
    assert not failures, failures
    assert [r.report["outcome"] for r in results] == ["synced"] * n_routes
    assert all({t["action"] for t in r.report["tables"]} == {"created"} for r in results)
    assert attempts - throttled == total_writes, "every write lands exactly once"
    assert_synced(moto_url, ids, routes)
    # Throttled calls free (a plain token bucket, as EC2 describes it): within 1.5x the floor.
    # Throttled calls costing a token (a pessimistic model): every call made while the bucket
    # is empty deepens the debt, so AIMD's probing above the refill rate costs more; the bound
    # then only proves there is no livelock (unpaced retries: 13 of 26 events failed, 232 s).
    bound = 5.0 if throttled_consumes_token else 1.5
    assert wall <= bound * floor, f"wall {wall:.2f}s > {bound} x floor {floor:.2f}s"


def test_loop_guard_own_write_echo_costs_one_read(function, control, moto_url):
    """Our own write to a custom table comes back as a CreateRoute event for that table:
    a cold process spends exactly one DescribeRouteTables on it and writes nothing."""
    ids = h.build_vpc(moto_url)
    [(cidr, eni)] = h.write_main_routes(moto_url, ids, ["10.100.0.0/16"])
    fn = function()
    r = fn.invoke(h.cloudtrail_event(ids["customs"][0], cidr, eni))
    assert r.ok, r.body
    assert r.report["outcome"] == "refused", r.report
    assert r.report["calls"] == {"describe_route_tables": 1, "route_writes": 0, "throttled": 0,
                                 "hand_offs": 0}
    assert counts(control) == {"DescribeRouteTables": 1}


def test_warm_process_reads_once_cold_reads_twice_and_each_checks_its_writes(function, control, moto_url):
    ids = h.build_vpc(moto_url)
    routes = h.write_main_routes(moto_url, ids, ["10.100.0.0/16", "10.101.0.0/16"])
    fn = function()

    cold = fn.invoke(h.cloudtrail_event(ids["main"], *routes[0]))
    c1 = counts(control)
    warm = fn.invoke(h.cloudtrail_event(ids["main"], *routes[1]))
    c2 = counts(control)

    assert cold.report["outcome"] == warm.report["outcome"] == "synced", (cold.report, warm.report)
    # Cold: the table, its VPC, and the VPC again after writing; warm: the VPC, and the check.
    assert c1["DescribeRouteTables"] == 3 and cold.report["calls"]["describe_route_tables"] == 3
    assert c2["DescribeRouteTables"] - c1["DescribeRouteTables"] == 2
    assert warm.report["calls"]["describe_route_tables"] == 2
    assert c2["CreateRoute"] == 8
    assert_synced(moto_url, ids, routes)


def test_notices_and_replace_one_publish_per_changing_event(function, control, moto_url):
    """With SNS_TOPIC_ARN set: a create and a replace in the main table each write the 4
    custom tables and publish exactly one notice; a no-op event publishes nothing."""
    ids = h.build_vpc(moto_url)
    topic = h.create_topic(moto_url)
    control.config(strict_routes=True)
    [(cidr, eni0)] = h.write_main_routes(moto_url, ids, ["10.100.0.0/16"], enis=[ids["enis"][0]])
    fn = function(env={"SNS_TOPIC_ARN": topic})

    created = fn.invoke(h.cloudtrail_event(ids["main"], cidr, eni0))
    assert created.report["outcome"] == "synced" and created.report["notice"] == "published", created.report
    eni1 = ids["enis"][1]
    h.write_main_routes(moto_url, ids, [cidr], enis=[eni1], call="replace")
    replaced = fn.invoke(h.cloudtrail_event(ids["main"], cidr, eni1, name="ReplaceRoute"))
    assert replaced.report["outcome"] == "synced" and replaced.report["notice"] == "published", replaced.report
    assert {t["action"] for t in replaced.report["tables"]} == {"replaced"}
    again = fn.invoke(h.cloudtrail_event(ids["main"], cidr, eni1, name="ReplaceRoute"))
    assert again.report["outcome"] == "unchanged", again.report

    c = counts(control)
    assert c.get("CreateRoute") == 4 and c.get("ReplaceRoute") == 4, c
    assert c.get("Publish") == 2, c
    assert_synced(moto_url, ids, [(cidr, eni1)])


# ------------------------------------------------------------------------------------------------
# IAM least privilege, against the CDK-synthesized template. Runs last: it checks what the
# tests above observed (and exercises every call itself, so it also stands alone).

def _function_role_statements(template: dict) -> tuple[str, list[dict], list]:
    res = template["Resources"]
    functions = [(k, v) for k, v in res.items() if v["Type"] == "AWS::Lambda::Function"
                 and v["Properties"].get("Handler") == "bootstrap"]
    assert len(functions) == 1, f"expected one bootstrap function in the template, got {[k for k, _ in functions]}"
    fn_id, fn = functions[0]
    role_ref = fn["Properties"]["Role"]
    assert "Fn::GetAtt" in role_ref, role_ref
    role_id = role_ref["Fn::GetAtt"][0]
    role = res[role_id]["Properties"]
    statements = []
    for p in role.get("Policies", []):
        statements += p["PolicyDocument"]["Statement"]
    for k, v in res.items():
        if v["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in v["Properties"].get("Roles", []):
            statements += v["Properties"]["PolicyDocument"]["Statement"]
    # Lambda's failure destination: the service sends there with the function's role.
    destinations = []
    for v in res.values():
        if v["Type"] == "AWS::Lambda::EventInvokeConfig" and v["Properties"]["FunctionName"] == {"Ref": fn_id}:
            on_failure = v["Properties"].get("DestinationConfig", {}).get("OnFailure", {})
            if on_failure:
                destinations.append(on_failure["Destination"])
    return role_id, statements, role.get("ManagedPolicyArns", []) + destinations


def _actions(statement: dict) -> list[str]:
    a = statement.get("Action", [])
    return [a] if isinstance(a, str) else list(a)


def test_iam_policy_allows_exactly_what_the_function_calls(function, control, moto_url, sqs_url):
    if not TEMPLATE.is_file():
        pytest.fail(f"{TEMPLATE} is missing: run `cd cdk && npm run synth` first", pytrace=False)
    template = json.loads(TEMPLATE.read_text())
    role_id, statements, extra = _function_role_statements(template)
    managed = [a for a in extra if not (isinstance(a, dict) and "Fn::GetAtt" in a)]
    assert not managed, f"managed policies on {role_id}: {managed} (check them by hand)"
    failure_destinations = [a for a in extra if isinstance(a, dict) and "Fn::GetAtt" in a]
    [work_queue_id] = [k for k, v in template["Resources"].items()
                       if v["Type"] == "AWS::SQS::Queue" and "WorkQueue" in k]
    work_queue = {"Fn::GetAtt": [work_queue_id, "Arn"]}

    # Exercise every call the function can make: reads, create, replace, publish.
    ids = h.build_vpc(moto_url)
    topic = h.create_topic(moto_url)
    [(cidr, eni0)] = h.write_main_routes(moto_url, ids, ["10.100.0.0/16"], enis=[ids["enis"][0]])
    fn = function(env={"SNS_TOPIC_ARN": topic})
    assert fn.invoke(h.cloudtrail_event(ids["main"], cidr, eni0)).report["notice"] == "published"
    h.write_main_routes(moto_url, ids, [cidr], enis=[ids["enis"][1]], call="replace")
    assert fn.invoke(h.cloudtrail_event(ids["main"], cidr, ids["enis"][1], name="ReplaceRoute")).ok
    for call in control.calls()["calls"]:
        OBSERVED.add((call["service"], call["action"]))
    # The hand-off: a write bucket too slow for the deadline leaves writes deferred, and the
    # function puts the rest back on its work queue (SYNC_QUEUE_URL, as the CDK app sets it).
    sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name=h.REGION,
                       aws_access_key_id="test", aws_secret_access_key="test")
    queue_url = sqs.create_queue(QueueName="SyncRoutesWork")["QueueUrl"]
    fn.stop()
    fn = function(env={"SNS_TOPIC_ARN": topic, "SYNC_QUEUE_URL": queue_url}, name="fn-queue")
    control.reset()
    control.config(buckets={"mutate": {"capacity": 1, "refill_per_sec": 0.01}})
    [(cidr2, _)] = h.write_main_routes(moto_url, ids, ["10.101.0.0/16"], enis=[ids["enis"][0]])
    r = fn.invoke(h.cloudtrail_event(ids["main"], cidr2, eni0), deadline_s=3)
    assert r.ok and r.report["outcome"] == "progressing", r.body
    sends = [c for c in control.calls()["calls"] if c["action"] == "SendMessage"]
    assert [c["service"] for c in sends] == ["sqs"], sends
    [message] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    assert json.loads(message["Body"]) == {
        "route-table-id": ids["main"], "vpc-id": ids["vpc"], "destination-cidr-block": cidr2,
        "dry-run": False, "hand-off": 1}
    for call in control.calls()["calls"]:
        OBSERVED.add((call["service"], call["action"]))

    # An API operation and the IAM action that allows it share a name, but for Lambda's Invoke.
    iam_action = {"lambda:Invoke": "lambda:InvokeFunction"}
    observed = {iam_action.get(f"{svc}:{action}", f"{svc}:{action}") for svc, action in OBSERVED}
    allow = [s for s in statements if s.get("Effect") == "Allow"]
    allowed = {a for s in allow for a in _actions(s)}

    def permits(action: str) -> bool:
        return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in allowed)

    not_allowed = sorted(a for a in observed if not permits(a))
    assert not not_allowed, f"the function calls {not_allowed}, which {role_id}'s policies do not allow"

    def exempt(statement: dict, action: str) -> bool:
        service = action.split(":", 1)[0].lower()
        if service in ("logs", "kms"):
            return True  # the runtime's log delivery; SNS's encryption of the topic
        # Lambda's failure destination: the service sends there with the function's role and
        # needs sqs:SendMessage only (CDK's SqsDestination also grants GetQueueAttributes and
        # GetQueueUrl, which nothing uses: those are reported as unused).
        if action.lower() == "sqs:sendmessage" and statement.get("Resource") in failure_destinations:
            return True
        # The work queue's event source mapping polls with the function's role: Lambda, not
        # the function, receives, deletes and looks at the queue.
        return statement.get("Resource") == work_queue and action.lower() in ESM_ACTIONS

    unused = sorted({a for s in allow for a in _actions(s) if not exempt(s, a)
                     and not any(fnmatch.fnmatchcase(o.lower(), a.lower()) for o in observed)})
    print(f"\nobserved: {sorted(observed)}\nallowed: {sorted(allowed)}")
    assert not unused, f"{role_id} allows {unused}, which the function never called"
