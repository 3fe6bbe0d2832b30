"""The last word wins (issue 19), with the deploy binary as Lambda runs it: two function
processes (each its own mock Lambda Runtime API, tests/lambda_harness.py) on one VPC, behind
tests/fault_proxy.py with strict routes and slow writes (every ReplaceRoute to a custom table
takes 150 ms, SYNC_MAX_CONCURRENT_WRITES=1, 8 custom tables: a failover of about 1.2 s).

Process A handles the failover (main table -> eni-B). After A has written 2 custom tables the
main table fails back to eni-A and process B handles that event, while A is still writing
eni-B into the rest. Whatever the interleaving, every custom table must end on eni-A (read
from moto, never through the proxy). Neither invocation may fail, but for one whose three
checks after writing all found the tables still changing (the other process was still
writing them) and that could not hand its next check on: that one is retried, as Lambda
would, and must then succeed.

The second test adds the proxy's read lag (DescribeRouteTables shows a route write 1 s after
it was made), with the main-table changes made through the proxy so that they lag too, and
events whose eventTime is now (fresh: a read that contradicts them is read again). A waiting
event (`waiting-for-ec2`) is not handed on here (no SYNC_QUEUE_URL, no function name), so the
test runs it again 2 s later, as Lambda's retry would.

Hand-offs are off in both tests (AWS_LAMBDA_FUNCTION_NAME empty, no SYNC_QUEUE_URL): a
hand-off to moto's Lambda would fail the invocation for a reason that is not the race.
The binary: SYNC_ROUTES_BIN, else the deploy binary; missing = failure, never a skip.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

import lambda_harness as h

DEST = "10.100.0.0/16"
N_TABLES = 8
WRITE_DELAY_MS = 150
HOUR = 3600.0
FUNCTION_ENV = {
    "SYNC_MAX_CONCURRENT_WRITES": "1",
    # No hand-off: FunctionProcess sets a function name by default, and an empty one turns the
    # Lambda hand-off off (src/runtime.rs build_for_lambda_with).
    "AWS_LAMBDA_FUNCTION_NAME": "",
    "SYNC_QUEUE_URL": None,
}


@pytest.fixture
def two_processes(sync_routes_bin, proxy_url, tmp_path):
    """Processes A and B against the proxy, ready; stopped (and their logs kept) at the end."""
    fns = [h.FunctionProcess(proxy_url, env=FUNCTION_ENV, binary=sync_routes_bin,
                             log_path=tmp_path / f"{name}.log") for name in ("A", "B")]
    try:
        for fn in fns:
            fn.wait_ready()
        yield fns
    finally:
        for fn in fns:
            fn.stop()


def replace_event(table: str, eni: str, age_s: float) -> dict:
    """A CloudTrail ReplaceRoute record of DEST -> eni in `table`, made `age_s` seconds ago
    (RFC 3339, milliseconds)."""
    event = h.cloudtrail_event(table, DEST, eni, name="ReplaceRoute")
    at = datetime.now(timezone.utc) - timedelta(seconds=age_s)
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["detail"]["eventTime"] = stamp
    return event


def all_on(moto_url: str, ids: dict, eni: str):
    """The main table and every custom table route DEST to `eni` (straight into moto)."""
    c = h.ec2_client(moto_url)
    for table in [ids["main"], *ids["customs"]]:
        c.create_route(RouteTableId=table, DestinationCidrBlock=DEST, NetworkInterfaceId=eni)


def custom_targets(moto_url: str, ids: dict) -> list[str | None]:
    tables = h.routes_by_table(moto_url, ids["vpc"])
    return [tables[t].get(DEST) for t in ids["customs"]]


def slow_custom_writes(ids: dict) -> list[dict]:
    """150 ms on every ReplaceRoute to a custom table, for ever (the main table's are not slowed,
    so that a failback made through the proxy lands at once)."""
    return [{"action": "ReplaceRoute", "delay_ms": WRITE_DELAY_MS, "times": -1, "match": {"RouteTableId": t}}
            for t in ids["customs"]]


def wait_custom_writes(control, ids: dict, n: int, timeout: float = 30.0):
    """Until the proxy has answered `n` ReplaceRoutes to custom tables with 200."""
    customs = set(ids["customs"])
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = [c for c in control.calls()["calls"]
                if c["action"] == "ReplaceRoute" and c["status"] == 200 and c["params"].get("RouteTableId") in customs]
        if len(done) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"fewer than {n} ReplaceRoutes to custom tables within {timeout}s")


def warm_up(fns, ids: dict, eni: str):
    """A no-op event on each process (an hour old), so that the table -> VPC cache is warm and a
    route event's first read is one call: calls.describe_route_tables >= 2 then means it read
    again after writing."""
    for fn in fns:
        r = fn.invoke(replace_event(ids["main"], eni, HOUR))
        assert r.ok and r.report["outcome"] == "unchanged", r.body


def still_changing(r: h.Result) -> bool:
    """A failed invocation whose last check found the tables still changing (another process
    was still writing them) and could not hand the check on: Lambda retries it."""
    return (not r.ok and r.report is not None and r.report["outcome"] == "failed"
            and "still changing" in r.report["message"])


def retried(fn: h.FunctionProcess, event: dict, r: h.Result) -> h.Result:
    """Runs `event` again while it failed that way, as Lambda's retries would (twice)."""
    for _ in range(2):
        if not still_changing(r):
            break
        time.sleep(1)
        r = fn.invoke(event)
    return r


def describe(name: str, r: h.Result) -> str:
    rep = r.report or {}
    return (f"{name}: ok={r.ok} outcome={rep.get('outcome')} target={rep.get('target')} calls={rep.get('calls')} "
            f"error={rep.get('error')} tables={[(t.get('route_table_id'), t.get('action'), t.get('code'), t.get('reason')) for t in rep.get('tables', [])]}"
            if rep else f"{name}: ok={r.ok} body={json.dumps(r.body)[:400]}")


def test_failback_during_a_failover_ends_on_the_last_word(two_processes, control, moto_url):
    a, b = two_processes
    ids = h.build_vpc(moto_url, custom_tables=N_TABLES)
    eni_a, eni_b = ids["enis"][:2]
    all_on(moto_url, ids, eni_a)
    warm_up((a, b), ids, eni_a)
    control.reset()
    control.config(strict_routes=True, inject=slow_custom_writes(ids))
    c = h.ec2_client(moto_url)

    # Freshness must not matter here: events an hour old are decided from the read.
    c.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=DEST, NetworkInterfaceId=eni_b)  # failover
    inv_a = a.submit(replace_event(ids["main"], eni_b, HOUR))
    wait_custom_writes(control, ids, 2)
    c.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=DEST, NetworkInterfaceId=eni_a)  # failback
    event_b = replace_event(ids["main"], eni_a, HOUR)
    inv_b = b.submit(event_b)
    ra, rb = a.wait(inv_a), b.wait(inv_b)
    # B may chase A's stale writes through its three checks and fail "still changing" (no
    # hand-off here): Lambda retries it.
    first_b = rb
    rb = retried(b, event_b, rb)

    detail = describe("A", ra) + "\n" + describe("B (first)", first_b) + "\n" + describe("B", rb)
    assert custom_targets(moto_url, ids) == [eni_a] * N_TABLES, detail
    for r in (ra, rb):
        assert r.ok and r.report["outcome"] in ("synced", "unchanged"), detail
    assert ra.report["calls"]["describe_route_tables"] >= 2, "A read again after writing\n" + detail
    assert ra.report["target"] == eni_a, "A's last read shows the failback\n" + detail
    assert ra.report["calls"]["route_writes"] > N_TABLES, "A wrote again what B's event changed\n" + detail


def test_failback_during_a_failover_with_lagging_reads(two_processes, control, moto_url, proxy_url):
    a, b = two_processes
    ids = h.build_vpc(moto_url, custom_tables=N_TABLES)
    eni_a, eni_b = ids["enis"][:2]
    all_on(moto_url, ids, eni_a)
    warm_up((a, b), ids, eni_a)
    control.reset()
    control.config(strict_routes=True, inject=slow_custom_writes(ids), read_lag_s=1)
    # Through the proxy: the main table's changes lag in DescribeRouteTables like the function's.
    via_proxy = h.ec2_client(proxy_url)

    via_proxy.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=DEST, NetworkInterfaceId=eni_b)
    event_a = replace_event(ids["main"], eni_b, 0)  # fresh
    inv_a = a.submit(event_a)
    wait_custom_writes(control, ids, 2)
    via_proxy.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=DEST, NetworkInterfaceId=eni_a)
    event_b = replace_event(ids["main"], eni_a, 0)  # fresh
    inv_b = b.submit(event_b)
    results = {"A": a.wait(inv_a), "B": b.wait(inv_b)}
    first = dict(results)

    # A waiting event is not handed on without a queue or a function name: run it again after
    # 2 s, as Lambda's retry would (a few times at most).
    retries = {"A": 0, "B": 0}
    for name, fn, event in (("A", a, event_a), ("B", b, event_b)):
        while results[name].report and results[name].report["outcome"] == "waiting-for-ec2" and retries[name] < 5:
            time.sleep(2)
            retries[name] += 1
            results[name] = fn.invoke(event)
        results[name] = retried(fn, event, results[name])

    detail = "\n".join([describe(f"{n} (first)", r) for n, r in first.items()]
                       + [describe(n, r) for n, r in results.items()] + [f"retries: {retries}"])
    assert custom_targets(moto_url, ids) == [eni_a] * N_TABLES, detail
    for r in list(first.values()) + list(results.values()):
        assert (r.ok and r.report["outcome"] in ("synced", "unchanged", "waiting-for-ec2")) or still_changing(r), detail
    for r in results.values():
        assert r.report["outcome"] in ("synced", "unchanged"), detail
    assert first["A"].report["calls"]["describe_route_tables"] >= 2, "A read again\n" + detail
    print("\n" + detail)
