#!/usr/bin/env python3
"""Benchmarks a failback during a failover (issue 19, "the last word wins") as Lambda runs
the function: tests/lambda_harness.py's LambdaService (2 function processes, one event at a
time each, the 60 s timeout, retries, the hand-off Invoke API), behind tests/fault_proxy.py
with EC2's buckets (writes 50 burst and 5/s per action, reads 100 and 20/s) and strict routes.

    .venv/bin/python bench/failback.py [--runs 3] [--tables 20] [--slow-ms 150] [--bin PATH]

Each run: a fresh VPC whose main table and custom tables all route 10.100.0.0/16 to eni-A;
both processes warmed with a no-op event. Then the failover (main -> eni-B, straight into
moto) and its CloudTrail event; once the proxy has answered half the custom tables'
ReplaceRoutes, the failback (main -> eni-A, straight into moto) and its event. moto is
polled every 50 ms until both events (and any hand-off) have ended; the figure is the time
from the failback's answer to the start of the last stretch in which every custom table
routes to eni-A (so a table put right and then overwritten counts from its last fix).

--slow-ms N injects N ms into every ReplaceRoute to a custom table (0: none), so that the
failover lasts long enough for the failback to land mid-way. Events carry an eventTime of
now. SYNC_MAX_CONCURRENT_WRITES is the function's default unless --max-concurrent-writes.

Prints, per run and as median and range over the runs: the time to right, and the calls
the proxy saw (DescribeRouteTables, ReplaceRoute/CreateRoute attempts, throttled), for the
whole episode and from the failback on. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import lambda_harness as h  # noqa: E402

DEST = "10.100.0.0/16"
BUCKETS = {"mutate": {"capacity": 50, "refill_per_sec": 5}, "read": {"capacity": 100, "refill_per_sec": 20}}
POLL_S = 0.05
WRITES = ("ReplaceRoute", "CreateRoute")


def event(table: str, eni: str, age_s: float = 0.0) -> dict:
    ev = h.cloudtrail_event(table, DEST, eni, name="ReplaceRoute")
    at = datetime.fromtimestamp(time.time() - age_s, timezone.utc)
    ev["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    ev["detail"]["eventTime"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return ev


class Poller:
    """Reads moto every POLL_S; `right_since` is the start of the current all-on-eni-A stretch."""

    def __init__(self, moto: str, ids: dict, eni: str):
        self.moto, self.ids, self.eni = moto, ids, eni
        self.right_since: float | None = None
        self.flaps = 0  # all right, then wrong again
        self.polls = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        c = h.ec2_client(self.moto)
        customs = set(self.ids["customs"])
        while not self.stopping.is_set():
            t = time.monotonic()
            tables = c.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [self.ids["vpc"]]}])["RouteTables"]
            right = all(any(r.get("DestinationCidrBlock") == DEST and r.get("NetworkInterfaceId") == self.eni
                            for r in tb.get("Routes", []))
                        for tb in tables if tb["RouteTableId"] in customs)
            self.polls += 1
            if right and self.right_since is None:
                self.right_since = t
            elif not right and self.right_since is not None:
                self.right_since = None
                self.flaps += 1
            self.stopping.wait(max(0.0, POLL_S - (time.monotonic() - t)))

    def stop(self):
        self.stopping.set()
        self.thread.join()


def custom_writes_answered(control: h.Control, customs: set) -> int:
    return sum(1 for c in control.calls()["calls"]
               if c["action"] == "ReplaceRoute" and c["status"] == 200 and c["params"].get("RouteTableId") in customs)


def tally(calls: list[dict]) -> dict:
    return {
        "reads": sum(1 for c in calls if c["action"] == "DescribeRouteTables"),
        "writes": sum(1 for c in calls if c["action"] in WRITES),
        "throttled": sum(1 for c in calls if c["action"] in WRITES and c["throttled"]),
        "landed": sum(1 for c in calls if c["action"] in WRITES and c["status"] == 200),
    }


def one_run(moto: str, proxy: str, control: h.Control, binary, tables: int, slow_ms: int,
            max_writes: int | None, log_dir: Path | None) -> dict:
    h.reset_moto(moto)
    control.reset()
    ids = h.build_vpc(moto, custom_tables=tables)
    eni_a, eni_b = ids["enis"][:2]
    c = h.ec2_client(moto)
    for t in [ids["main"], *ids["customs"]]:
        c.create_route(RouteTableId=t, DestinationCidrBlock=DEST, NetworkInterfaceId=eni_a)
    env = {"SYNC_MAX_CONCURRENT_WRITES": str(max_writes)} if max_writes else {}
    service = h.LambdaService(proxy, binary=binary, env=env, concurrency=2, timeout_s=60.0, retries=2,
                              retry_delays_s=(1.0, 2.0), log_dir=log_dir)
    try:
        # Warm both processes (an hour-old no-op event each, submitted together).
        for _ in range(2):
            service.submit(event(ids["main"], eni_a, 3600))
        assert service.wait_idle(30), "warm-up did not finish"
        warm = [r.outcome for r in service.records]
        service.records.clear()
        control.reset()
        inject = [{"action": "ReplaceRoute", "delay_ms": slow_ms, "times": -1, "match": {"RouteTableId": t}}
                  for t in ids["customs"]] if slow_ms else []
        control.config(buckets=BUCKETS, strict_routes=True, inject=inject)

        customs = set(ids["customs"])
        t_failover = time.monotonic()
        c.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=DEST, NetworkInterfaceId=eni_b)
        service.submit(event(ids["main"], eni_b))
        while custom_writes_answered(control, customs) < tables // 2:
            if time.monotonic() - t_failover > 60:
                raise RuntimeError("the failover did not write half the tables within 60 s")
            time.sleep(0.005)
        written_at_failback = custom_writes_answered(control, customs)
        c.replace_route(RouteTableId=ids["main"], DestinationCidrBlock=DEST, NetworkInterfaceId=eni_a)
        t_failback = time.monotonic()
        poller = Poller(moto, ids, eni_a)
        poller.start()
        service.submit(event(ids["main"], eni_a))
        done = service.wait_idle(300)
        t_idle = time.monotonic()
        # One more poll after the last invocation ended, so the final state is what is measured.
        time.sleep(2 * POLL_S)
        poller.stop()
    finally:
        service.close()
    snap = control.calls()
    calls = snap["calls"]
    final = h.routes_by_table(moto, ids["vpc"])
    wrong = [t for t in ids["customs"] if final[t].get(DEST) != eni_a]
    records = service.records
    return {
        "right_s": None if (wrong or poller.right_since is None) else poller.right_since - t_failback,
        "idle_s": t_idle - t_failback,
        "failover_to_failback_s": t_failback - t_failover,
        "written_at_failback": written_at_failback,
        "flaps": poller.flaps,
        "polls": poller.polls,
        "wrong": wrong,
        "finished": done,
        "warm": warm,
        "all": tally(calls),
        "after": tally([x for x in calls if x["t"] >= t_failback]),
        "outcomes": [r.outcome for r in records],
        "reports": [((r.report or {}).get("calls"), (r.report or {}).get("error")) for r in records],
        "hand_offs": len(service.hand_offs),
        "failed": len(service.failed_invocations()),
    }


def med_range(xs, fmt="{:.2f}") -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tables", type=int, default=20)
    ap.add_argument("--slow-ms", type=int, default=150, help="delay injected into each custom-table ReplaceRoute; 0 = none")
    ap.add_argument("--max-concurrent-writes", type=int, default=None, help="SYNC_MAX_CONCURRENT_WRITES (default: the function's)")
    ap.add_argument("--bin", default=None)
    ap.add_argument("--logs", type=Path, default=None, help="keep the function logs here")
    args = ap.parse_args(argv)
    binary = args.bin or str(h.function_binary())
    msg = h.missing_binary_message(Path(binary))
    if msg:
        print(f"bench: {msg}", file=sys.stderr)
        return 2
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    moto_proc, moto = h.start_moto()
    proxy_proc, proxy = h.start_fault_proxy(moto)
    control = h.Control(proxy)
    runs = []
    try:
        for i in range(args.runs):
            m = one_run(moto, proxy, control, binary, args.tables, args.slow_ms, args.max_concurrent_writes, args.logs)
            runs.append(m)
            print(f"run {i + 1}: right after {m['right_s'] if m['right_s'] is None else round(m['right_s'], 3)} s, "
                  f"idle after {m['idle_s']:.2f} s, failback {m['failover_to_failback_s']:.2f} s after the failover "
                  f"({m['written_at_failback']} tables written), flaps {m['flaps']}, wrong {m['wrong']}, "
                  f"calls all {m['all']}, after the failback {m['after']}, outcomes {m['outcomes']}, "
                  f"hand-offs {m['hand_offs']}, failed {m['failed']}, reports {m['reports']}, warm-up {m['warm']}",
                  file=sys.stderr, flush=True)
    finally:
        h.stop_process(proxy_proc)
        h.stop_process(moto_proc)

    slow = f"{args.slow_ms} ms injected into each custom-table ReplaceRoute" if args.slow_ms else "no write delay injected"
    conc = args.max_concurrent_writes or "default (16)"
    print(f"failback mid-way: {args.tables} custom tables, 2 processes, writes 50 burst 5/s, reads 100 burst 20/s, "
          f"{slow}, SYNC_MAX_CONCURRENT_WRITES {conc}; {len(runs)} runs, median (min–max)\n")
    print("| measure | median (min–max) |")
    print("|---|---|")
    rows = [
        ("failback → every custom table on eni-A (last stretch, moto polled every 50 ms)", [m["right_s"] for m in runs], "{:.2f} s"),
        ("failback → both invocations (and hand-offs) ended", [m["idle_s"] for m in runs], "{:.2f} s"),
        ("failover → failback (half the tables written)", [m["failover_to_failback_s"] for m in runs], "{:.2f} s"),
        ("DescribeRouteTables, whole episode", [m["all"]["reads"] for m in runs], "{:g}"),
        ("route write attempts, whole episode", [m["all"]["writes"] for m in runs], "{:g}"),
        ("  … landed (200)", [m["all"]["landed"] for m in runs], "{:g}"),
        ("  … throttled", [m["all"]["throttled"] for m in runs], "{:g}"),
        ("DescribeRouteTables from the failback on", [m["after"]["reads"] for m in runs], "{:g}"),
        ("route write attempts from the failback on", [m["after"]["writes"] for m in runs], "{:g}"),
        ("  … landed (200)", [m["after"]["landed"] for m in runs], "{:g}"),
        ("times all right, then wrong again (flaps)", [m["flaps"] for m in runs], "{:g}"),
        ("hand-offs", [m["hand_offs"] for m in runs], "{:g}"),
        ("failed invocations", [m["failed"] for m in runs], "{:g}"),
    ]
    for name, xs, fmt in rows:
        print(f"| {name} | {med_range(xs, fmt)} |")
    bad = [i + 1 for i, m in enumerate(runs) if m["wrong"] or m["failed"] or not m["finished"]]
    print(f"\nruns with a table left wrong, a failed invocation or unfinished: {bad or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
