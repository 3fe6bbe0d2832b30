#!/usr/bin/env python3
"""Benchmarks the scheduled sweep (issue 9): a region of 50 VPCs, each with a main table and
4 custom tables holding 50 routes, behind EC2's token buckets (the fault proxy: reads 100
burst and 20/s, each write action 50 burst and 5/s, pages of 100 tables).

    .venv/bin/python bench/sweep.py [--vpcs 50] [--routes 50] [--drift 0.10] [--runs 3] [--bin PATH]

Measures, with the real binary under the mock Lambda Runtime API (tests/lambda_harness.py):
  * a sweep with nothing to do: reads, wall time, CPU per VPC, peak RSS;
  * a sweep after 10% of the custom tables' routes drifted (half removed, half pointed at
    another ENI): writes (which must equal the drift), wall time against the write buckets'
    floor. CreateRoute and ReplaceRoute have a bucket each, so the floor is the larger of
    (creates - 50) / 5 and (replaces - 50) / 5.
The sweep runs as one invocation with a 900 s deadline (Lambda's longest timeout), so the
figure is the engine's pace behind the buckets, without hand-offs.

Not part of the test suite. Standard library + boto3 (the project's .venv) only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import lambda_harness as h  # noqa: E402

SWEEP = json.loads((REPO / "events" / "scheduled-sweep.json").read_text())
BUCKETS = {"read": {"capacity": 100, "refill_per_sec": 20}, "mutate": {"capacity": 50, "refill_per_sec": 5}}


def build_region(moto: str, vpcs: int, routes: int) -> list[dict]:
    """`vpcs` VPCs, each: main + 4 custom tables, `routes` ENI routes in every table (in sync)."""
    c = h.ec2_client(moto)
    out = []
    cidrs = [f"10.{100 + i // 250}.{i % 250}.0/24" for i in range(routes)]
    for _ in range(vpcs):
        ids = h.build_vpc(moto, custom_tables=4, enis=2)
        for table in [ids["main"], *ids["customs"]]:
            for cidr in cidrs:
                c.create_route(RouteTableId=table, DestinationCidrBlock=cidr, NetworkInterfaceId=ids["enis"][0])
        ids["cidrs"] = cidrs
        out.append(ids)
    return out


def drift(moto: str, region: list[dict], share: float, rng: random.Random) -> tuple[int, int]:
    """Breaks `share` of the custom tables' routes: half deleted, half re-pointed. Returns
    (routes to create, routes to replace)."""
    c = h.ec2_client(moto)
    pairs = [(ids, table, cidr) for ids in region for table in ids["customs"] for cidr in ids["cidrs"]]
    broken = rng.sample(pairs, round(len(pairs) * share))
    creates = replaces = 0
    for i, (ids, table, cidr) in enumerate(broken):
        if i % 2 == 0:
            c.delete_route(RouteTableId=table, DestinationCidrBlock=cidr)
            creates += 1
        else:
            c.replace_route(RouteTableId=table, DestinationCidrBlock=cidr, NetworkInterfaceId=ids["enis"][1])
            replaces += 1
    return creates, replaces


def in_sync(moto: str, region: list[dict]) -> int:
    """Custom-table routes that differ from the main table's."""
    wrong = 0
    for ids in region:
        tables = h.routes_by_table(moto, ids["vpc"])
        main = tables[ids["main"]]
        for table in ids["customs"]:
            wrong += sum(1 for cidr in ids["cidrs"] if tables[table].get(cidr) != main[cidr])
    return wrong


def sweep(fn: h.FunctionProcess, control: h.Control) -> dict:
    control.reset()
    control.config(buckets=BUCKETS, page_size=100)
    cpu0 = fn.cpu_seconds()
    t0 = time.perf_counter()
    result = fn.invoke(SWEEP, deadline_s=900, timeout=1000)
    wall = time.perf_counter() - t0
    cpu = fn.cpu_seconds() - cpu0
    calls = control.calls()
    counts = calls["counts"]
    report = result.body if isinstance(result.body, dict) else {}
    return {
        "ok": result.ok,
        "outcome": report.get("outcome"),
        "wall": wall,
        "cpu": cpu,
        "reads": counts.get("DescribeRouteTables", 0),
        "creates": counts.get("CreateRoute", 0),
        "replaces": counts.get("ReplaceRoute", 0),
        "throttled": sum(calls.get("throttled_counts", {}).get(a, 0) for a in ("CreateRoute", "ReplaceRoute")),
        "read_throttled": calls.get("throttled_counts", {}).get("DescribeRouteTables", 0),
        "rss_kb": fn.peak_rss_kb(),
        "report_counts": report.get("counts"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vpcs", type=int, default=50)
    ap.add_argument("--routes", type=int, default=50)
    ap.add_argument("--drift", type=float, default=0.10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=None, help="the binary (default: the deploy build)")
    ap.add_argument("--seed", type=int, default=9)
    args = ap.parse_args(argv)

    moto_proc, moto = h.start_moto()
    proxy_proc, proxy = h.start_fault_proxy(moto)
    control = h.Control(proxy)
    rng = random.Random(args.seed)
    try:
        t = time.perf_counter()
        region = build_region(moto, args.vpcs, args.routes)
        print(f"built {args.vpcs} VPCs x 5 tables x {args.routes} routes in {time.perf_counter() - t:.0f} s",
              file=sys.stderr)
        fn = h.FunctionProcess(proxy, binary=args.bin, env={"RUST_LOG": "warn"})
        fn.wait_ready()
        noop, drifts = [], []
        for run in range(args.runs):
            r = sweep(fn, control)
            assert r["ok"] and r["outcome"] == "unchanged", r
            assert r["creates"] + r["replaces"] == 0, r
            noop.append(r)
            creates, replaces = drift(moto, region, args.drift, rng)
            r = sweep(fn, control)
            left = in_sync(moto, region)
            r["floor"] = max(0, creates - 50, replaces - 50) / 5
            r["drifted"] = creates + replaces
            r["left"] = left
            assert r["ok"] and r["outcome"] == "synced", r
            drifts.append(r)
            print(f"run {run + 1}: no-op {noop[-1]['wall']:.2f} s, {noop[-1]['reads']} reads; "
                  f"drift {r['drifted']} -> wall {r['wall']:.1f} s (floor {r['floor']:.1f} s), "
                  f"{r['creates']} CreateRoute + {r['replaces']} ReplaceRoute calls, {r['throttled']} throttled, "
                  f"{left} routes still wrong", file=sys.stderr)
        fn.stop()
        med = statistics.median
        vpcs = args.vpcs
        print("| measure | result | target |")
        print("|---|---|---|")
        print(f"| no-op sweep: reads | {med(r['reads'] for r in noop):.0f} "
              f"(pages of 100 of {vpcs * 5} tables) | about 1 per 100 tables |")
        print(f"| no-op sweep: wall | {med(r['wall'] for r in noop):.2f} s | - |")
        print(f"| no-op sweep: CPU per VPC | {med(r['cpu'] for r in noop) / vpcs * 1000:.2f} ms | <= 3 ms |")
        print(f"| peak RSS | {max(r['rss_kb'] for r in noop + drifts) / 1024:.1f} MiB | <= 30 MB |")
        for r in drifts:
            writes = r["creates"] + r["replaces"] - r["throttled"]
            print(f"| drift sweep: {r['drifted']} routes drifted | {writes} writes landed "
                  f"({r['throttled']} throttled attempts), {r['left']} left wrong; wall {r['wall']:.1f} s = "
                  f"{r['wall'] / r['floor']:.2f}x the floor of {r['floor']:.0f} s | writes = drift; <= 1.5x |")
        return 0
    finally:
        h.stop_process(proxy_proc)
        h.stop_process(moto_proc)


if __name__ == "__main__":
    sys.exit(main())
