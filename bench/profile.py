#!/usr/bin/env python3
"""Where the function's CPU goes in the customer case (bench/work_queue.py's case, either way):
`perf record` of the 2 function processes only, from the moment they are warm to the last
route, then the symbols that took the most samples.

The deploy binary is stripped, so build the same code with its symbols first:

    cargo build --profile profiling        # Cargo.toml [profile.profiling]: release, not stripped
    SYNC_ROUTES_BIN=$CARGO_TARGET_DIR/profiling/sync-routes .venv/bin/python bench/profile.py [--way async]

Needs `perf` (linux-tools) and the right to trace the processes (root, or
kernel.perf_event_paranoid <= 1). The samples are kept in --out for `perf report -i`.
"""

from __future__ import annotations

import argparse
import collections
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import lambda_harness as h  # noqa: E402
import work_queue as wq  # noqa: E402


def leaf_symbols(data: Path) -> collections.Counter:
    """Samples per symbol of the leaf frame."""
    out = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym", "-G"],
                         capture_output=True, text=True, check=True).stdout
    symbols = collections.Counter()
    for line in out.splitlines():
        ip, _, symbol = line.strip().partition(" ")
        if ip:
            symbols[symbol.strip() or "?"] += 1
    return symbols


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--way", choices=("queue", "async"), default="queue")
    ap.add_argument("--frequency", type=int, default=4000, help="samples a second (perf -F)")
    ap.add_argument("--out", type=Path, default=Path("perf-customer-case.data"))
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    binary = h.bench_binary()
    if binary is None:
        return 2
    with h.moto_sqs_and_fault_proxy() as (moto_url, sqs_url, proxy_url):
        control = h.Control(proxy_url)
        topic = h.create_topic(moto_url)
        perf: list[subprocess.Popen] = []

        def start_perf(processes):
            perf.append(subprocess.Popen(["perf", "record", "-F", str(args.frequency),
                                          "-p", ",".join(str(p.pid) for p in processes), "-o", str(args.out)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.5)  # perf attaches before the first event goes out

        result = wq.one_run(args.way, moto_url, sqs_url, proxy_url, control, binary, topic, on_warm=start_perf)
        if not perf:
            print("the run never reached its measured part", file=sys.stderr)
            return 1
        perf[0].send_signal(signal.SIGINT)
        perf[0].wait()
    print({k: v for k, v in result.items() if k != "timeline"})
    symbols = leaf_symbols(args.out)
    total = sum(symbols.values())
    print(f"\n{total} samples at {args.frequency}/s in {args.out}; the leaf symbols that took most:")
    for symbol, n in symbols.most_common(args.top):
        print(f"{n:6d} {100 * n / max(total, 1):5.1f}%  {symbol[:140]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
