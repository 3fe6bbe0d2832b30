#!/usr/bin/env python3
"""Benchmarks `sync-routes watch` against moto behind the fault proxy (EC2's buckets: reads
100 burst and 20/s, writes 50 and 5/s unless --bucket says otherwise), strict routes.

    .venv/bin/python bench/watch.py [--changes 10] [--bin PATH] [--bucket CAP,RATE]
    .venv/bin/python bench/watch.py --failover 12x4 --bucket 2,2 [--interval 1] [--runs 3]

Without --failover: the time from a CreateRoute in the main table to the last custom table
updated, at --interval 1 and 5, and the reads it costs. Each change lands at a random moment
of the interval, as a failover would.

--failover TABLESxROUTES: a VPC of TABLES custom tables and ROUTES main-table routes, all on
eni-A (straight into moto); `watch --interval N` (default 1) runs with SNS_TOPIC_ARN set to a
moto topic (its Publish calls go through the proxy); at a random moment of the interval every
main route is replaced to eni-B (straight into moto), TABLES x ROUTES writes for watch to make
behind the mutating bucket (--bucket CAP,RATE; floor (writes - CAP) / RATE). Per run: the time
from the first main-table change until every custom route is on eni-B (moto polled every
50 ms) against that floor, the ReplaceRoute attempts and how many the bucket throttled, the
reads, and the notices published, with how many of them mention FAILED.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import lambda_harness as h  # noqa: E402

READ_BUCKET = {"capacity": 100, "refill_per_sec": 20}
EC2_WRITE_BUCKET = (50.0, 5.0)


def buckets(write_bucket: tuple[float, float]) -> dict:
    capacity, refill = write_bucket
    return {"read": READ_BUCKET, "mutate": {"capacity": capacity, "refill_per_sec": refill}}


def reads(control: h.Control) -> int:
    """DescribeRouteTables calls the proxy has seen since its last reset."""
    return control.calls()["counts"].get("DescribeRouteTables", 0)


def watch_env(proxy: str, extra: dict | None = None) -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SYNC_", "SNS_"))},
            "AWS_ENDPOINT_URL": proxy, "AWS_REGION": h.REGION, "AWS_ACCESS_KEY_ID": "t",
            "AWS_SECRET_ACCESS_KEY": "t", "RUST_LOG": "warn", **(extra or {})}


def measure(binary: str, moto: str, proxy: str, control: h.Control, interval: float, changes: int,
            rng: random.Random, write_bucket: tuple[float, float]) -> dict:
    ids = h.build_vpc(moto, custom_tables=4)
    control.reset()
    control.config(buckets=buckets(write_bucket), strict_routes=True)
    proc = subprocess.Popen([binary, "watch", "--vpc", ids["vpc"], "--interval", str(interval)],
                            env=watch_env(proxy), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = h.ec2_client(moto)
    lags = []
    try:
        time.sleep(interval + 0.5)
        # Count the reads of the measured stretch only, not those of the warm-up above.
        reads_before = reads(control)
        started = time.monotonic()
        for i in range(changes):
            time.sleep(rng.uniform(0, interval))
            cidr = f"10.{100 + i}.0.0/16"
            t0 = time.monotonic()
            c.create_route(RouteTableId=ids["main"], DestinationCidrBlock=cidr, NetworkInterfaceId=ids["enis"][0])
            while True:
                tables = h.routes_by_table(moto, ids["vpc"])
                if all(tables[t].get(cidr) == ids["enis"][0] for t in ids["customs"]):
                    lags.append(time.monotonic() - t0)
                    break
                if time.monotonic() - t0 > 4 * interval + 10:
                    raise RuntimeError(f"{cidr} did not reach every custom table")
                time.sleep(0.02)
        elapsed = time.monotonic() - started
        reads_measured = reads(control) - reads_before
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    return {"lags": lags, "reads_per_hour": reads_measured / elapsed * 3600, "exit": code}


def latency_table(binary, moto, proxy, control, changes, write_bucket) -> int:
    rng = random.Random(12)
    cap, rate = write_bucket
    print(f"write bucket: {cap:g} burst, {rate:g}/s; reads 100 burst, 20/s\n")
    print("| --interval | change -> last custom table (median, max) | reads per hour | share of the read bucket's refill (72,000/h) | exit on SIGINT |")
    print("|---|---|---|---|---|")
    for interval in (1, 5):
        m = measure(binary, moto, proxy, control, interval, changes, rng, write_bucket)
        print(f"| {interval} s | {statistics.median(m['lags']):.2f} s, {max(m['lags']):.2f} s "
              f"({len(m['lags'])} changes) | {m['reads_per_hour']:.0f} | "
              f"{m['reads_per_hour'] / 72000 * 100:.1f}% | {m['exit']} |")
    return 0


# ------------------------------------------------------------------------------------------------
# --failover

def failover_run(binary: str, moto: str, proxy: str, control: h.Control, tables: int, routes: int,
                 interval: float, write_bucket: tuple[float, float], rng: random.Random, log_dir: Path,
                 run: int) -> dict:
    ids = h.build_vpc(moto, custom_tables=tables)
    eni_a, eni_b = ids["enis"][:2]
    cidrs = h.route_cidrs(routes)
    c = h.ec2_client(moto)
    for table in [ids["main"], *ids["customs"]]:
        for cidr in cidrs:
            c.create_route(RouteTableId=table, DestinationCidrBlock=cidr, NetworkInterfaceId=eni_a)
    topic = h.create_topic(moto)
    control.reset()
    control.config(buckets=buckets(write_bucket), strict_routes=True)
    out_path, err_path = log_dir / f"failover{run}.stdout", log_dir / f"failover{run}.log"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([binary, "watch", "--vpc", ids["vpc"], "--interval", str(interval)],
                                env=watch_env(proxy, {"SNS_TOPIC_ARN": topic, "RUST_LOG": "info"}),
                                stdout=out, stderr=err)
    writes = tables * routes
    capacity, refill = write_bucket
    floor = max(0.0, (writes - capacity) / refill)
    try:
        time.sleep(interval + 0.5)  # the first pass: nothing to do
        if proc.poll() is not None:
            raise RuntimeError(f"watch exited with {proc.returncode}: {err_path.read_text()[-2000:]}")
        time.sleep(rng.uniform(0, interval))
        t0 = time.monotonic()
        for cidr in cidrs:
            c.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=cidr, NetworkInterfaceId=eni_b)
        t_changed = time.monotonic() - t0
        limit = 3 * floor + 4 * interval + 30
        while True:
            now = h.routes_by_table(moto, ids["vpc"])
            if all(now[t].get(cidr) == eni_b for t in ids["customs"] for cidr in cidrs):
                wall = time.monotonic() - t0
                break
            if time.monotonic() - t0 > limit:
                raise RuntimeError(f"the failover did not reach every custom table within {limit:.0f} s")
            time.sleep(0.05)
        time.sleep(2 * interval + 0.5)  # the pass that checks, and one that finds nothing
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    snap = control.calls()
    publishes = [x for x in snap["calls"] if x["action"] == "Publish"]
    failed_notices = [p for p in publishes
                      if "FAILED" in (p["params"].get("Subject", "") + p["params"].get("Message", ""))]
    summaries = out_path.read_text(errors="replace")
    return {
        "wall": wall,
        "floor": floor,
        "writes": writes,
        "main_change_s": t_changed,
        "attempts": snap["counts"].get("ReplaceRoute", 0),
        "throttled": snap["throttled_counts"].get("ReplaceRoute", 0),
        "creates": snap["counts"].get("CreateRoute", 0),
        "reads": snap["counts"].get("DescribeRouteTables", 0),
        "reads_throttled": snap["throttled_counts"].get("DescribeRouteTables", 0),
        "notices": len(publishes),
        "failed_notices": len(failed_notices),
        # The outcome of each pass that printed (watch prints a pass that changed, deferred or
        # failed something): "progressing", "synced", "failed", ...
        "passes": dict(Counter(line.split(":", 1)[0] for line in summaries.splitlines()
                               if line and not line[0].isspace() and ":" in line)),
        "exit": code,
        "stdout": str(out_path),
    }


def failover_table(binary, moto, proxy, control, spec: str, interval: float, runs: int, write_bucket,
                   log_dir: Path) -> int:
    tables, routes = (int(x) for x in spec.lower().split("x"))
    rng = random.Random(19)
    results = []
    for i in range(runs):
        m = failover_run(binary, moto, proxy, control, tables, routes, interval, write_bucket, rng, log_dir, i + 1)
        results.append(m)
        print(f"run {i + 1}: {m['wall']:.2f} s = {m['wall'] / m['floor']:.2f}x the floor {m['floor']:.1f} s; "
              f"ReplaceRoute {m['attempts']} ({m['throttled']} throttled), CreateRoute {m['creates']}, "
              f"DescribeRouteTables {m['reads']} ({m['reads_throttled']} throttled), notices {m['notices']} "
              f"({m['failed_notices']} FAILED), passes printed {m['passes']}, exit {m['exit']}, "
              f"{m['stdout']}", file=sys.stderr, flush=True)
    cap, rate = write_bucket

    def mr(xs, fmt):
        return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"

    sec = lambda s: f"{s:.2f} s"  # noqa: E731
    num = lambda x: f"{x:g}"  # noqa: E731
    ratio = lambda x: f"{x:.2f}×"  # noqa: E731
    r0 = results[0]
    print(f"watch --interval {interval:g}, failover of {tables} custom tables x {routes} routes = {r0['writes']} writes, "
          f"write bucket {cap:g} burst {rate:g}/s (floor {r0['floor']:.1f} s), reads 100 burst 20/s; "
          f"{runs} runs, median (min–max)\n")
    print("| measure | median (min–max) | target |")
    print("|---|---|---|")
    print(f"| main-table change → last custom table right | {mr([m['wall'] for m in results], sec)} | |")
    print(f"| … / floor | {mr([m['wall'] / m['floor'] for m in results], ratio)} | ≤ 1.5× |")
    print(f"| ReplaceRoute attempts | {mr([m['attempts'] for m in results], num)} | |")
    print(f"| … throttled | {mr([m['throttled'] for m in results], num)} | |")
    print(f"| DescribeRouteTables (the whole run, warm-up pass included) | {mr([m['reads'] for m in results], num)} | |")
    print(f"| notices published | {mr([m['notices'] for m in results], num)} | |")
    print(f"| notices mentioning FAILED | {mr([m['failed_notices'] for m in results], num)} | 0 |")
    print(f"| exit on SIGINT | {mr([m['exit'] for m in results], num)} | 0 |")
    return 0 if all(m["failed_notices"] == 0 and m["exit"] == 0 for m in results) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--bin", default=None)
    ap.add_argument("--bucket", default=None,
                    help="mutating bucket CAPACITY,REFILL_PER_SEC (default EC2's 50,5)")
    ap.add_argument("--failover", default=None, metavar="TABLESxROUTES",
                    help="measure a failover of TABLES custom tables x ROUTES routes instead (e.g. 12x4)")
    ap.add_argument("--interval", type=float, default=1.0, help="watch --interval for --failover")
    ap.add_argument("--runs", type=int, default=3, help="runs of --failover")
    ap.add_argument("--logs", type=Path, default=None, help="keep watch's output here (--failover)")
    args = ap.parse_args(argv)
    write_bucket = tuple(float(x) for x in args.bucket.split(",")) if args.bucket else EC2_WRITE_BUCKET
    binary = args.bin or str(h.function_binary())
    msg = h.missing_binary_message(Path(binary))
    if msg:
        print(f"bench: {msg}", file=sys.stderr)
        return 2
    moto_proc, moto = h.start_moto()
    proxy_proc, proxy = h.start_fault_proxy(moto)
    control = h.Control(proxy)
    try:
        if args.failover:
            log_dir = args.logs or Path(tempfile.mkdtemp(prefix="sync-routes-watch-"))
            log_dir.mkdir(parents=True, exist_ok=True)
            return failover_table(binary, moto, proxy, control, args.failover, args.interval, args.runs,
                                  write_bucket, log_dir)
        return latency_table(binary, moto, proxy, control, args.changes, write_bucket)
    finally:
        h.stop_process(proxy_proc)
        h.stop_process(moto_proc)


if __name__ == "__main__":
    sys.exit(main())
