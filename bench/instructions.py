#!/usr/bin/env python3
"""Instructions one `sync-routes invoke` executes, counted by callgrind: a figure that repeats
to 0.1% run after run, where CPU time on a shared 2-core machine varies by 15% (this machine
has no hardware counters for `perf stat`). For comparing builds of the same code (codegen
units, LTO, an allocator), not for absolute cost: callgrind runs the process about 50 times
slower, and its count includes start-up (about 21 M instructions).

Two cases per binary, each in a fresh VPC of moto (1 main + 4 custom tables, 26 routes in
the main table):
  reconcile  {"reconcile": true, "vpc-id": ...} on empty custom tables: reads, 104 writes;
  no-op      the same request again: reads only.

    .venv/bin/python bench/instructions.py [--runs 2] [BINARY ...]   (default: the deploy binary)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import lambda_harness as h  # noqa: E402

ROUTES, TABLES = 26, 4


def callgrind(binary: Path, event_file: str, env: dict) -> tuple[float, dict]:
    """Millions of instructions of one `invoke`, and its report."""
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out",
                            str(binary), "invoke", event_file],
                           env=env, capture_output=True, text=True, timeout=900)
    collected = re.search(r"Collected : (\d+)", p.stderr)
    if p.returncode != 0 or collected is None:
        raise SystemExit(f"{binary} under callgrind failed (exit {p.returncode}):\n{p.stderr[-2000:]}")
    return int(collected.group(1)) / 1e6, json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("binaries", nargs="*", type=Path)
    args = ap.parse_args()
    binaries = args.binaries or [h.deploy_binary()]
    for binary in binaries:
        missing = h.missing_binary_message(binary)
        if missing:
            print(missing, file=sys.stderr)
            return 2
    if subprocess.run(["valgrind", "--version"], capture_output=True).returncode != 0:
        print("valgrind is missing (Debian package valgrind)", file=sys.stderr)
        return 2
    with h.running_moto() as moto, tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, AWS_ENDPOINT_URL=moto, AWS_REGION=h.REGION, AWS_DEFAULT_REGION=h.REGION,
                   AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", RUST_LOG="info")
        env.pop("AWS_PROFILE", None)
        print("| binary | run | reconcile: M instructions (reads, writes) | no-op: M instructions (reads) |")
        print("|---|---|---|---|")
        for run in range(args.runs):
            for binary in binaries:  # interleaved, though callgrind's count ignores the machine's load
                ids = h.build_vpc(moto, custom_tables=TABLES, enis=1)
                h.write_main_routes(moto, ids, h.route_cidrs(ROUTES))
                event = Path(work) / "reconcile.json"
                event.write_text(json.dumps({"reconcile": True, "vpc-id": ids["vpc"]}))
                full, report = callgrind(binary, str(event), env)
                noop, again = callgrind(binary, str(event), env)
                if report["calls"]["route_writes"] != ROUTES * TABLES or again["calls"]["route_writes"] != 0:
                    raise SystemExit(f"unexpected writes: {report['calls']} then {again['calls']}")
                print(f"| {binary} | {run + 1} | {full:.1f} ({report['calls']['describe_route_tables']}, "
                      f"{report['calls']['route_writes']}) | {noop:.1f} ({again['calls']['describe_route_tables']}) |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
