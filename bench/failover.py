#!/usr/bin/env python3
"""Benchmarks failovers behind EC2's route-write bucket, as Lambda runs the function
(tests/lambda_harness.py LambdaService: reserved concurrency, timeout, retries, hand-offs).

    .venv/bin/python bench/failover.py [--runs 3] [--bin PATH] [--svg bench/customer-case.svg]

  * the customer case: 26 routes x 4 custom tables flipped at once, 26 CloudTrail events,
    EC2's real bucket (50 burst, 5 per second; floor (104 - 50) / 5 = 10.8 s), 60 s timeout;
    draws the cumulative routes written over time against the bucket's line (an SVG);
  * issue 13's scaled case: 26 routes x 40 tables = 1,040 writes behind 20 burst and 20 per
    second (floor 51 s) with a 10 s timeout (EC2's 60 s scaled by the same factor); and the
    projection for 26 x 100 tables on EC2's real bucket (2,600 writes, floor 510 s).

Reserved concurrency 2, as the CDK app deploys. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import lambda_harness as h  # noqa: E402

CONCURRENCY = 2


def run_case(moto: str, control: h.Control, proxy: str, binary, routes: int, tables: int, capacity: int,
             refill: float, timeout_s: float) -> dict:
    h.reset_moto(moto)
    control.reset()
    ids = h.build_vpc(moto, custom_tables=tables)
    written = h.write_main_routes(moto, ids, h.route_cidrs(routes))
    control.config(buckets={"mutate": {"capacity": capacity, "refill_per_sec": refill},
                            "read": {"capacity": 100, "refill_per_sec": 20}}, strict_routes=True)
    service = h.LambdaService(proxy, binary=binary, concurrency=CONCURRENCY, timeout_s=timeout_s,
                              retries=2, retry_delays_s=(1.0, 2.0))
    try:
        # Warm the processes first: a cold start is not what this measures.
        for _ in range(CONCURRENCY):
            service.submit({"reconcile": True, "vpc-id": "vpc-00000000"})
        service.wait_idle(30)
        service.records.clear()
        control.reset()
        control.config(buckets={"mutate": {"capacity": capacity, "refill_per_sec": refill},
                                "read": {"capacity": 100, "refill_per_sec": 20}}, strict_routes=True)
        t0 = time.monotonic()
        for cidr, eni in written:
            service.submit(h.cloudtrail_event(ids["main"], cidr, eni))
        assert service.wait_idle(1200), "did not finish"
        wall = time.monotonic() - t0
    finally:
        service.close()
    calls = control.calls()
    landed = sorted(c["t"] - t0 for c in calls["calls"]
                    if c["action"] == "CreateRoute" and not c["throttled"] and c["status"] == 200)
    total = routes * tables
    tabled = h.routes_by_table(moto, ids["vpc"])
    right = sum(1 for t in ids["customs"] for cidr, eni in written if tabled[t].get(cidr) == eni)
    return {
        "wall": wall,
        "floor": (total - capacity) / refill,
        "total": total,
        "right": right,
        "landed": landed,
        "attempts": calls["counts"].get("CreateRoute", 0),
        "throttled": calls["throttled_counts"].get("CreateRoute", 0),
        "invocations": len(service.records),
        "failed": len(service.failed_invocations()),
        "failure_queue": len(service.failure_queue),
        "hand_offs": len(service.hand_offs),
        "capacity": capacity,
        "refill": refill,
    }


def svg(run: dict, path: Path) -> None:
    """Cumulative routes written over time against the bucket: at most capacity + refill * t."""
    w, h_, pad = 640, 360, 48
    t_max = max(run["wall"], run["floor"]) * 1.05
    n = run["total"]

    def xy(t: float, k: float) -> str:
        return f"{pad + t / t_max * (w - 2 * pad):.1f},{h_ - pad - k / n * (h_ - 2 * pad):.1f}"

    points = [xy(0, 0)]
    for i, t in enumerate(run["landed"], 1):
        points.append(xy(t, i - 1))
        points.append(xy(t, i))
    bucket = [xy(0, run["capacity"]), xy(run["floor"], n), xy(t_max, n)]
    ticks = "".join(
        f'<line x1="{pad + s / t_max * (w - 2 * pad):.1f}" y1="{h_ - pad}" x2="{pad + s / t_max * (w - 2 * pad):.1f}" '
        f'y2="{h_ - pad + 4}" stroke="#444"/><text x="{pad + s / t_max * (w - 2 * pad):.1f}" y="{h_ - pad + 16}" '
        f'font-size="11" text-anchor="middle">{s} s</text>'
        for s in range(0, int(t_max) + 1, max(1, int(t_max // 6) or 1)))
    body = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h_}" viewBox="0 0 {w} {h_}" font-family="sans-serif">
<rect width="{w}" height="{h_}" fill="white"/>
<text x="{w / 2}" y="20" font-size="14" text-anchor="middle">Customer case: {n} route writes behind EC2's bucket ({run['capacity']} burst, {run['refill']:g}/s)</text>
<line x1="{pad}" y1="{h_ - pad}" x2="{w - pad}" y2="{h_ - pad}" stroke="#444"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h_ - pad}" stroke="#444"/>
{ticks}
<text x="{pad - 6}" y="{pad + 4}" font-size="11" text-anchor="end">{n}</text>
<text x="{pad - 6}" y="{h_ - pad}" font-size="11" text-anchor="end">0</text>
<text x="14" y="{h_ / 2}" font-size="11" transform="rotate(-90 14 {h_ / 2})" text-anchor="middle">routes written</text>
<polyline points="{' '.join(bucket)}" fill="none" stroke="#999" stroke-dasharray="6 4" stroke-width="1.5"/>
<polyline points="{' '.join(points)}" fill="none" stroke="#1f6feb" stroke-width="2"/>
<text x="{w - pad}" y="{pad + 14}" font-size="12" text-anchor="end" fill="#1f6feb">written: all {n} in {run['wall']:.1f} s ({run['wall'] / run['floor']:.2f}x the floor)</text>
<text x="{w - pad}" y="{pad + 30}" font-size="12" text-anchor="end" fill="#777">bucket's limit: {run['capacity']} + {run['refill']:g}/s, floor {run['floor']:.1f} s</text>
</svg>
"""
    path.write_text(body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", default=None)
    ap.add_argument("--svg", default=str(REPO / "bench" / "customer-case.svg"))
    args = ap.parse_args(argv)
    moto_proc, moto = h.start_moto()
    proxy_proc, proxy = h.start_fault_proxy(moto)
    control = h.Control(proxy)
    try:
        customer = [run_case(moto, control, proxy, args.bin, 26, 4, 50, 5.0, 60.0) for _ in range(args.runs)]
        best = sorted(customer, key=lambda r: r["wall"])[len(customer) // 2]
        svg(best, Path(args.svg))
        scaled = [run_case(moto, control, proxy, args.bin, 26, 40, 20, 20.0, 10.0) for _ in range(args.runs)]
    finally:
        h.stop_process(proxy_proc)
        h.stop_process(moto_proc)

    def line(name, runs):
        ratios = [r["wall"] / r["floor"] for r in runs]
        r = runs[0]
        print(f"| {name} | {r['total']} writes, floor {r['floor']:.1f} s | median {statistics.median(r['wall'] for r in runs):.1f} s "
              f"= {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}) | "
              f"{sum(x['right'] for x in runs)}/{sum(x['total'] for x in runs)} routes right; "
              f"{sum(x['failed'] for x in runs)} failed invocations; {sum(x['failure_queue'] for x in runs)} in the failure queue; "
              f"{sum(x['hand_offs'] for x in runs)} hand-offs; {sum(x['attempts'] for x in runs)} CreateRoute calls, "
              f"{sum(x['throttled'] for x in runs)} throttled |")
        return statistics.median(ratios)

    print("| case | size | wall | outcome |")
    print("|---|---|---|---|")
    line("customer case, EC2's bucket, 60 s timeout", customer)
    ratio = line("scaled failover (issue 13), 20 + 20/s, 10 s timeout", scaled)
    print(f"\nprojection, 26 routes x 100 tables on EC2's bucket (floor 510 s): about {510 * ratio:.0f} s "
          f"({ratio:.2f}x), in about {510 * ratio / 58:.0f} invocations of 60 s chained by the queue")
    print(f"svg: {args.svg}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
