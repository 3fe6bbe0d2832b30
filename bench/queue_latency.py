#!/usr/bin/env python3
"""A warm single route event through the work queue, with the deploy binary: one CreateRoute
event (one main table, 4 custom tables, no bucket, SNS off) sent to the queue of
tests/lambda_harness.py's event source mapping (2 consumers, warm), timed from SendMessage to
the route in every custom table in moto (polled every 10 ms), and the invocation's own seconds.

    .venv/bin/python bench/queue_latency.py --runs 10 [--batch-size 100 --window 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import lambda_harness as h  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.add_mapping_args(ap, runs=10)
    args = ap.parse_args()
    binary = h.bench_binary()
    if binary is None:
        return 2
    moto, moto_url = h.start_moto()
    try:
        q = h.create_work_queue(moto_url, visibility_timeout_s=360)
        esm = h.EventSourceMapping(moto_url, q.url, binary=binary, max_concurrency=2, batch_size=args.batch_size,
                                   batching_window_s=args.window, deadline_s=60.0)
        try:
            ids = h.build_vpc(moto_url, custom_tables=4, enis=1)
            warm = h.write_main_routes(moto_url, ids, ["10.250.0.0/16"])
            for cidr, eni in warm * 2:  # both consumers' processes started and warm
                esm.submit(h.cloudtrail_event(ids["main"], cidr, eni))
            esm.wait_idle(60)
            landed_s, own_s = [], []
            for run, cidr in enumerate(h.route_cidrs(args.runs)):
                [(cidr, eni)] = h.write_main_routes(moto_url, ids, [cidr])
                before = len(esm.invocations)
                t0 = time.perf_counter()
                esm.submit(h.cloudtrail_event(ids["main"], cidr, eni))
                while any(h.routes_by_table(moto_url, ids["vpc"])[t].get(cidr) != eni for t in ids["customs"]):
                    time.sleep(0.01)
                landed_s.append(time.perf_counter() - t0)
                esm.wait_idle(30, settle_s=0.2)
                own_s.extend(i.seconds for i in esm.invocations[before:] if i.seconds is not None)
                print(f"run {run + 1}: landed after {landed_s[-1] * 1000:.0f} ms", flush=True)
            med = statistics.median(landed_s)
            print(f"\nSendMessage -> route in all 4 tables: median {med * 1000:.0f} ms "
                  f"({min(landed_s) * 1000:.0f}-{max(landed_s) * 1000:.0f}); the invocation's own time: median "
                  f"{statistics.median(own_s) * 1000:.0f} ms; batch size {args.batch_size}, window {args.window:g} s, "
                  f"{args.runs} runs")
        finally:
            esm.close()
    finally:
        h.stop_process(moto)
    return 0


if __name__ == "__main__":
    sys.exit(main())
