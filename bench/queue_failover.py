#!/usr/bin/env python3
"""Issue 13's scaled failover through the work queue, with the deploy binary: 26 route events
x 40 custom tables = 1,040 writes behind a write bucket of 20 burst + 20/s (EC2's 50 + 5/s and
the 60 s timeout scaled together: a 10 s deadline), 2 consumers (`maxConcurrency`), the
event source mapping of tests/lambda_harness.py. The floor is (1040 - 20) / 20 = 51 s.

Printed per run: the time from the first event to the last route in moto and its ratio to the
floor, CreateRoute attempts (throttled), reads, SendMessage (continuations), and each
invocation (start, seconds, batch size); then the routes landed a second, every 2 s.

    .venv/bin/python bench/queue_failover.py --runs 3 [--batch-size 100 --window 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import lambda_harness as h  # noqa: E402

BUCKET = {"mutate": {"capacity": 20, "refill_per_sec": 20}, "read": {"capacity": 100, "refill_per_sec": 20}}
ROUTES, TABLES = 26, 40
FLOOR_S = (ROUTES * TABLES - 20) / 20


def landed(moto_url: str, ids: dict, routes) -> int:
    now = h.routes_by_table(moto_url, ids["vpc"])
    return sum(now[t].get(cidr) == eni for t in ids["customs"] for cidr, eni in routes)


def one_run(moto_url: str, sqs_url: str, proxy_url: str, control: h.Control, binary: Path, batch: int, window: float) -> dict:
    ids = h.build_vpc(moto_url, custom_tables=TABLES)
    routes = h.write_main_routes(moto_url, ids, h.route_cidrs(ROUTES))
    control.reset()
    control.config(buckets=BUCKET, strict_routes=True)
    q = h.create_work_queue(sqs_url, visibility_timeout_s=60, max_receive_count=5)
    esm = h.EventSourceMapping(proxy_url, q.url, binary=binary, max_concurrency=2, batch_size=batch,
                               batching_window_s=window, deadline_s=10.0)
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    try:
        t0 = time.perf_counter()
        for cidr, eni in routes:
            esm.submit(h.cloudtrail_event(ids["main"], cidr, eni))

        def sample():
            while not done.is_set():
                c = control.calls()
                samples.append((time.perf_counter() - t0,
                                c["counts"].get("CreateRoute", 0) - c["throttled_counts"].get("CreateRoute", 0)))
                time.sleep(2.0)

        threading.Thread(target=sample, daemon=True).start()
        last_route_at = None
        while time.perf_counter() - t0 < 400:
            if landed(moto_url, ids, routes) == ROUTES * TABLES:
                last_route_at = time.perf_counter() - t0
                break
            time.sleep(0.1)
        esm.wait_idle(120)
        done.set()
        c = control.calls()
        return {
            "wall": last_route_at, "attempts": c["counts"].get("CreateRoute", 0),
            "throttled": c["throttled_counts"].get("CreateRoute", 0),
            "reads": c["counts"].get("DescribeRouteTables", 0), "sends": c["counts"].get("SendMessage", 0),
            "dead": len(esm.dlq_messages()), "failed": len(esm.failed_invocations()),
            "invocations": [(i.t_start - t0, i.seconds, i.size) for i in sorted(esm.invocations, key=lambda i: i.t_start)],
            "rates": [(t, (n - pn) / (t - pt)) for (pt, pn), (t, n) in zip(samples, samples[1:])],
        }
    finally:
        done.set()
        esm.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.add_mapping_args(ap, runs=3)
    args = ap.parse_args()
    binary = h.bench_binary()
    if binary is None:
        return 2
    with h.moto_sqs_and_fault_proxy() as (moto_url, sqs_url, proxy_url):
        control = h.Control(proxy_url)
        walls = []
        for run in range(args.runs):
            r = one_run(moto_url, sqs_url, proxy_url, control, binary, args.batch_size, args.window)
            wall = f"{r['wall']:.1f} s = {r['wall'] / FLOOR_S:.2f}x" if r["wall"] else "NOT ALL LANDED"
            if r["wall"]:
                walls.append(r["wall"])
            print(f"run {run + 1}: last route {wall}; CreateRoute {r['attempts']} ({r['throttled']} throttled), "
                  f"reads {r['reads']}, SendMessage {r['sends']}, dead-lettered {r['dead']}, "
                  f"failed invocations {r['failed']}", flush=True)
            print("  invocations (start s, seconds, batch size):",
                  " ".join(f"{s:.1f}+{d:.1f}/{n}" for s, d, n in r["invocations"]))
            print("  routes landed a second:", " ".join(f"{t:.0f}:{v:.1f}" for t, v in r["rates"]))
        if walls:
            med = statistics.median(walls)
            print(f"\nmedian {med:.1f} s = {med / FLOOR_S:.2f}x the {FLOOR_S:.0f} s floor "
                  f"({min(walls) / FLOOR_S:.2f}-{max(walls) / FLOOR_S:.2f}x), batch size {args.batch_size}, "
                  f"window {args.window:g} s, {args.runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
