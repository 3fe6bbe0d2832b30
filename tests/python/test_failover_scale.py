"""A failover bigger than one invocation (issue 13), under an emulation of Lambda's
asynchronous invocation (tests/lambda_harness.py LambdaService): the deployment's reserved
concurrency, its timeout, Lambda's two retries and the failure queue, and the Invoke API the
function hands work on with.

The scaled case: EC2's route-write bucket (50 burst, 5 per second) and a 60 s timeout are
scaled together to a bucket of 20 burst and 20 per second and a 10 s timeout; 26 routes x 40
custom tables = 1,040 writes, a floor of (1040 - 20) / 20 = 51 s. Measured on main before
the change: 527 of 1,040 writes landed, 23 of 26 events in the failure queue, 75 failed
invocations. Every route must land, with no event in the failure queue and no failed
invocation. The wall time is printed (BENCHMARKS.md has the figures); the bound asserted
here only rules out a pathology, it is not a timing test.
"""

from __future__ import annotations

import time

import pytest

import lambda_harness as h

# What the CDK app deploys (cdk/lib/sync-routes.ts, reservedConcurrency).
RESERVED_CONCURRENCY = 2
SCALED_TIMEOUT_S = 10.0
BUCKET = {"mutate": {"capacity": 20, "refill_per_sec": 20}, "read": {"capacity": 100, "refill_per_sec": 20}}
N_ROUTES, N_TABLES = 26, 40


@pytest.fixture
def lambda_service(sync_routes_bin, proxy_url, tmp_path):
    services: list[h.LambdaService] = []

    def start(**kwargs) -> h.LambdaService:
        service = h.LambdaService(proxy_url, binary=sync_routes_bin, log_dir=tmp_path, **kwargs)
        services.append(service)
        return service

    yield start
    for service in services:
        service.close()


def synced(moto_url: str, ids: dict, routes: list[tuple[str, str]]) -> int:
    """How many (route, custom table) pairs are right in moto."""
    tables = h.routes_by_table(moto_url, ids["vpc"])
    return sum(1 for custom in ids["customs"] for cidr, eni in routes if tables[custom].get(cidr) == eni)


def summary(service: h.LambdaService) -> str:
    outcomes: dict[str, int] = {}
    for r in service.records:
        outcomes[r.outcome or "?"] = outcomes.get(r.outcome or "?", 0) + 1
    return (f"{len(service.records)} invocations {outcomes}, {len(service.hand_offs)} hand-offs, "
            f"{len(service.failure_queue)} in the failure queue")


def test_a_failover_of_26_routes_x_40_tables_lands_completely(lambda_service, control, moto_url):
    ids = h.build_vpc(moto_url, custom_tables=N_TABLES)
    routes = h.write_main_routes(moto_url, ids, h.route_cidrs(N_ROUTES))
    control.config(buckets=BUCKET, strict_routes=True)
    service = lambda_service(concurrency=RESERVED_CONCURRENCY, timeout_s=SCALED_TIMEOUT_S,
                             retries=2, retry_delays_s=(1.0, 2.0))

    t0 = time.perf_counter()
    for cidr, eni in routes:
        service.submit(h.cloudtrail_event(ids["main"], cidr, eni))
    assert service.wait_idle(timeout=400), f"still busy after 400 s: {summary(service)}"
    wall = time.perf_counter() - t0

    total = N_ROUTES * N_TABLES
    floor = (total - BUCKET["mutate"]["capacity"]) / BUCKET["mutate"]["refill_per_sec"]
    calls = control.calls()
    attempts = calls["counts"].get("CreateRoute", 0)
    throttled = calls["throttled_counts"].get("CreateRoute", 0)
    print(f"\nscaled failover: wall {wall:.1f} s, floor {floor:.0f} s, {wall / floor:.2f}x; "
          f"CreateRoute {attempts} ({throttled} throttled); {summary(service)}")

    assert synced(moto_url, ids, routes) == total, summary(service)
    assert service.failure_queue == [], summary(service)
    assert service.failed_invocations() == [], summary(service)
    # Landed, not attempted less throttled: a write the deadline cut off can land after the
    # continuation read the table, whose CreateRoute is then refused RouteAlreadyExists.
    landed = [c for c in calls["calls"] if c["action"] == "CreateRoute" and c["status"] == 200]
    assert len(landed) == total, f"{len(landed)} writes landed: every write lands exactly once"
    assert wall <= 2.0 * floor, f"wall {wall:.1f} s > 2 x floor {floor:.0f} s"


def test_a_reconcile_bigger_than_one_invocation_is_handed_on_until_done(lambda_service, control, moto_url):
    """One request whose writes cannot fit in one invocation: every invocation that meets
    its deadline hands the rest on (progressing, not failed), and the chain ends with every
    route in place."""
    ids = h.build_vpc(moto_url, custom_tables=N_TABLES)
    routes = h.write_main_routes(moto_url, ids, h.route_cidrs(N_ROUTES))
    control.config(buckets=BUCKET, strict_routes=True)
    service = lambda_service(concurrency=1, timeout_s=SCALED_TIMEOUT_S, retries=2, retry_delays_s=(1.0, 2.0))

    t0 = time.perf_counter()
    service.submit({"reconcile": True, "vpc-id": ids["vpc"]})
    assert service.wait_idle(timeout=400), f"still busy after 400 s: {summary(service)}"
    wall = time.perf_counter() - t0
    print(f"\nreconcile of 1,040 writes: wall {wall:.1f} s; {summary(service)}")

    assert synced(moto_url, ids, routes) == N_ROUTES * N_TABLES, summary(service)
    assert service.failure_queue == [] and service.failed_invocations() == [], summary(service)
    outcomes = [r.outcome for r in service.records]
    assert outcomes[-1] == "synced" and set(outcomes[:-1]) == {"progressing"}, outcomes
    # 1,040 writes at 20 per second cannot fit in 10 s: at least four hand-offs, each one
    # the same VPC, its hop count one higher than the last.
    assert len(service.hand_offs) >= 4, summary(service)
    hops = [o["payload"]["hand-off"] for o in service.hand_offs]
    assert hops == list(range(1, len(hops) + 1)), hops
    assert all(o["payload"]["vpc-id"] == ids["vpc"] and o["type"] == "Event" for o in service.hand_offs)
    assert sum(r.report["counts"]["deferred"] for r in service.records if r.report) >= 1
