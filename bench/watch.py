#!/usr/bin/env python3
"""Benchmarks `sync-routes watch`: the time from a CreateRoute in the main table to the last
custom table updated, at --interval 1 and 5, against moto behind the fault proxy (EC2's
buckets: reads 100 burst and 20/s, writes 50 and 5/s), and the reads it costs.

    .venv/bin/python bench/watch.py [--changes 10] [--bin PATH]

Each change lands at a random moment of the interval, as a failover would. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import lambda_harness as h  # noqa: E402

BUCKETS = {"read": {"capacity": 100, "refill_per_sec": 20}, "mutate": {"capacity": 50, "refill_per_sec": 5}}


def reads(control: h.Control) -> int:
    """DescribeRouteTables calls the proxy has seen since its last reset."""
    return control.calls()["counts"].get("DescribeRouteTables", 0)


def measure(binary: str, moto: str, proxy: str, control: h.Control, interval: float, changes: int,
            rng: random.Random) -> dict:
    ids = h.build_vpc(moto, custom_tables=4)
    control.reset()
    control.config(buckets=BUCKETS, strict_routes=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
           "AWS_ENDPOINT_URL": proxy, "AWS_REGION": h.REGION, "AWS_ACCESS_KEY_ID": "t",
           "AWS_SECRET_ACCESS_KEY": "t", "RUST_LOG": "warn"}
    proc = subprocess.Popen([binary, "watch", "--vpc", ids["vpc"], "--interval", str(interval)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--bin", default=None)
    args = ap.parse_args(argv)
    binary = args.bin or str(h.function_binary())
    moto_proc, moto = h.start_moto()
    proxy_proc, proxy = h.start_fault_proxy(moto)
    control = h.Control(proxy)
    rng = random.Random(12)
    try:
        print("| --interval | change -> last custom table (median, max) | reads per hour | share of the read bucket's refill (72,000/h) | exit on SIGINT |")
        print("|---|---|---|---|---|")
        for interval in (1, 5):
            m = measure(binary, moto, proxy, control, interval, args.changes, rng)
            print(f"| {interval} s | {statistics.median(m['lags']):.2f} s, {max(m['lags']):.2f} s "
                  f"({len(m['lags'])} changes) | {m['reads_per_hour']:.0f} | "
                  f"{m['reads_per_hour'] / 72000 * 100:.1f}% | {m['exit']} |")
    finally:
        h.stop_process(proxy_proc)
        h.stop_process(moto_proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
