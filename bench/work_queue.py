#!/usr/bin/env python3
"""The customer case (26 CreateRoute events at once, one main table, 4 custom tables) two
ways, side by side in one run, with the deploy binary:

  async   Lambda's asynchronous invocation, one event per invocation, 2 processes
          (tests/lambda_harness.py LambdaService: the deployment before the work queue);
  queue   the work queue's event source mapping as the CDK app deploys it (no batching
          window: batches of whatever is waiting, up to 10; --batch-size 100 --window 1 for
          a 1 s window), 2 processes, the batch's route events coalesced per main table.

`--async-bin PATH` runs the async column with another binary: the function as it was when
issue 17 was filed (the deploy build of 8ac504a, the last commit before the work queue's Rust
code), so that "today's" CPU is today's deployment, side by side in the same run.

Both behind the fault proxy's EC2 buckets (writes 50 burst + 5/s, reads 100 + 20/s) and
strict routes. Printed per run: wall time from the first event to the last route in moto,
its ratio to the bucket's floor ((104 - 50) / 5 = 10.8 s), DescribeRouteTables, route
write attempts and throttled ones (the proxy's counts), SNS notices, and the function
processes' CPU from the scheduler (/proc/PID/task/*/schedstat, nanoseconds).

`--unthrottled` adds a third column: the queue column again, behind buckets the case never
empties, to tell what the work costs from what pacing behind the default bucket adds.

    .venv/bin/python bench/work_queue.py --runs 3 [--unthrottled] [--async-bin /tmp/bootstrap-8ac504a]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import lambda_harness as h  # noqa: E402

EC2_BUCKETS = {"mutate": {"capacity": 50, "refill_per_sec": 5}, "read": {"capacity": 100, "refill_per_sec": 20}}
# --unthrottled: buckets the case never empties, to split the queue column's CPU into what
# the work costs and what pacing behind EC2's default bucket adds.
UNTHROTTLED_BUCKETS = {"mutate": {"capacity": 100_000, "refill_per_sec": 10_000},
                       "read": {"capacity": 100_000, "refill_per_sec": 10_000}}
# The table's columns: name -> (deployment for one_run, EC2 buckets, heading).
COLUMNS = {
    "async": ("async", EC2_BUCKETS, "async (one event per invocation)"),
    "queue": ("queue", EC2_BUCKETS, "queue (batches, coalesced)"),
    "queue-unthrottled": ("queue", UNTHROTTLED_BUCKETS, "queue, buckets never empty"),
}
WRITES = ("CreateRoute", "ReplaceRoute")
ROUTES, TABLES = 26, 4
FLOOR_S = (ROUTES * TABLES - 50) / 5
BATCH_SIZE = 10
BATCHING_WINDOW_S = 0.0


def cpu_ns(pid: int) -> int:
    """CPU time the scheduler counted for every thread of `pid`, in nanoseconds."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def processes_cpu_ns(processes) -> int:
    return sum(cpu_ns(p.pid) for p in processes if p is not None and p.alive())


def all_landed(moto_url: str, ids: dict, routes) -> bool:
    now = h.routes_by_table(moto_url, ids["vpc"])
    return all(now[t].get(cidr) == eni for t in ids["customs"] for cidr, eni in routes)


def throttle_timeline(calls: list[dict]) -> str:
    """Route write attempts and throttled ones per second from the first write, as
    "attempts/throttled" cells: where a run's throttled attempts (their CPU) come from, the
    first burst's herd or the pacing after it."""
    writes = [c for c in calls if c["action"] in WRITES]
    if not writes:
        return ""
    start = min(c["t"] for c in writes)
    cells: dict[int, list[int]] = {}
    for c in writes:
        cell = cells.setdefault(int(c["t"] - start), [0, 0])
        cell[0] += 1
        cell[1] += bool(c["throttled"])
    return " ".join(f"{a}/{t}" for _, (a, t) in sorted(cells.items()))


def one_run(way: str, moto_url: str, sqs_url: str, proxy_url: str, control: h.Control, binary: Path, topic: str,
            on_warm=None, buckets: dict = EC2_BUCKETS) -> dict:
    """One customer case; `on_warm(processes)`, if given, is called once both processes are
    warm, right before the measured part (bench/profile.py starts perf there)."""
    ids = h.build_vpc(moto_url, custom_tables=TABLES, enis=1)
    routes = h.write_main_routes(moto_url, ids, h.route_cidrs(ROUTES))
    env = {"SNS_TOPIC_ARN": topic}
    if way == "async":
        service = h.LambdaService(proxy_url, binary=binary, env=env, concurrency=2, timeout_s=60.0)
    else:
        q = h.create_work_queue(sqs_url, visibility_timeout_s=360)
        service = h.EventSourceMapping(proxy_url, q.url, binary=binary, env=env, max_concurrency=2,
                                       batch_size=BATCH_SIZE, batching_window_s=BATCHING_WINDOW_S, deadline_s=60.0)
    try:
        # Warm both processes with a no-op each, so that start-up is not measured.
        warm = h.build_vpc(moto_url, custom_tables=1, enis=1)
        [(wc, we)] = h.write_main_routes(moto_url, warm, ["10.250.0.0/16"])
        for _ in range(2):
            service.submit(h.cloudtrail_event(warm["main"], wc, we))
        service.wait_idle(60)
        time.sleep(1.5)
        if on_warm is not None:
            on_warm([p for p in service.processes if p is not None])
        cpu_before = processes_cpu_ns(service.processes)
        control.reset()
        control.config(buckets=buckets, strict_routes=True)
        t0 = time.perf_counter()
        for cidr, eni in routes:
            service.submit(h.cloudtrail_event(ids["main"], cidr, eni))
        landed_at = None
        while time.perf_counter() - t0 < 180:
            if all_landed(moto_url, ids, routes):
                landed_at = time.perf_counter() - t0
                break
            time.sleep(0.05)
        service.wait_idle(120)
        cpu = processes_cpu_ns(service.processes) - cpu_before
        c = control.calls()
        counts, throttled = c["counts"], c["throttled_counts"]
        timeline = throttle_timeline(c["calls"])
        batches = ([inv.size for inv in sorted(service.invocations, key=lambda i: i.t_start)][2:]
                   if way == "queue" else None)  # the 2 warm-ups first
        return {
            "batches": batches,
            "wall": landed_at, "reads": counts.get("DescribeRouteTables", 0),
            "writes": sum(counts.get(a, 0) for a in WRITES),
            "throttled": sum(throttled.get(a, 0) for a in WRITES),
            "notices": counts.get("Publish", 0), "cpu_ms": cpu / 1e6,
            "timeline": timeline,
        }
    finally:
        service.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.add_mapping_args(ap, runs=3)
    ap.add_argument("--timeline", action="store_true",
                    help="print each run's write attempts and throttled ones, second by second")
    ap.add_argument("--async-bin", type=Path, help="the binary of the async column (default: the function binary)")
    ap.add_argument("--unthrottled", action="store_true",
                    help="also run the queue column behind buckets it never empties (column queue-unthrottled)")
    args = ap.parse_args()
    globals()["BATCH_SIZE"] = args.batch_size
    globals()["BATCHING_WINDOW_S"] = args.window
    binary = h.bench_binary()
    if binary is None:
        return 2
    async_binary = args.async_bin or binary
    missing = h.missing_binary_message(async_binary)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    print(f"async column: {async_binary}\nqueue column: {binary}", flush=True)
    with h.moto_sqs_and_fault_proxy() as (moto_url, sqs_url, proxy_url):
        control = h.Control(proxy_url)
        topic = h.create_topic(moto_url)
        ways = ("async", "queue") + (("queue-unthrottled",) if args.unthrottled else ())
        results = {way: [] for way in ways}
        for run in range(args.runs):
            for way in ways:  # interleaved, so that all see the same machine
                deployment, buckets, _ = COLUMNS[way]
                r = one_run(deployment, moto_url, sqs_url, proxy_url, control,
                            async_binary if deployment == "async" else binary, topic, buckets=buckets)
                results[way].append(r)
                wall = f"{r['wall']:.2f} s ({r['wall'] / FLOOR_S:.2f}x)" if r["wall"] else "not all landed"
                print(f"run {run + 1} {way:5}: wall {wall}, reads {r['reads']}, write attempts {r['writes']} "
                      f"({r['throttled']} throttled), notices {r['notices']}, CPU {r['cpu_ms']:.1f} ms"
                      + (f", batches {r['batches']}" if r["batches"] is not None else ""), flush=True)
                if args.timeline:
                    print(f"    writes/throttled a second: {r['timeline']}", flush=True)
        print("\n| measure | " + " | ".join(COLUMNS[way][2] for way in ways) + " |")
        print("|---|" + "---|" * len(ways))
        for key, label, fmt in [("wall", "wall, first event to last route", "{:.2f} s"),
                                ("reads", "DescribeRouteTables", "{:.0f}"),
                                ("writes", "route write attempts", "{:.0f}"),
                                ("throttled", "… throttled", "{:.0f}"),
                                ("notices", "SNS notices", "{:.0f}"),
                                ("cpu_ms", "function CPU, both processes", "{:.1f} ms")]:
            cells = []
            for way in ways:
                values = [r[key] for r in results[way] if r[key] is not None]
                if not values:
                    cells.append("—")
                    continue
                med = statistics.median(values)
                cells.append(f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})")
            print(f"| {label} | " + " | ".join(cells) + " |")
        print(f"\nfloor of the write bucket: {FLOOR_S:.1f} s; {args.runs} runs each, interleaved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
