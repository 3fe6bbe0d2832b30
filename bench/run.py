#!/usr/bin/env python3
"""Benchmarks the sync-routes binary as Lambda runs it, against moto on loopback.

    .venv/bin/python bench/run.py [--runs 5] [--bin PATH] [--bucket 50,5] [--write BENCHMARKS.md]

Each run starts from an empty moto (reset) and measures, with the mock Lambda Runtime API of
tests/lambda_harness.py:

  * init: processes spawned and stopped once ready: spawn -> first `next`, CPU, RSS;
  * single event: one CreateRoute event on a cold process, then warm ones on the same process,
    4 custom tables, SNS on. The function talks to a timing forwarder in front of moto, so each
    event's wall time (event queued -> answer posted) sits next to the API time on its critical
    path (its reads one after the other + its slowest write + its publish);
  * the customer case: 26 routes x 4 custom tables changed at once, 26 events through 2
    concurrent processes (each one event at a time): wall, reads, writes, SNS messages;
    then the same 26 events again (no-op); then 26 new routes through 2 fresh processes behind
    tests/fault_proxy.py's EC2 token buckets (mutating: --bucket CAPACITY,REFILL, EC2's real
    50,5 by default; reads 100,20): wall against the bucket's floor (writes - capacity) / refill;
  * CPU: lifetime user+sys CPU of each process (wait4 rusage) minus the median init CPU,
    per event handled; peak RSS (VmHWM) of every process; the deploy zip's size.

Not part of the test suite. Standard library + boto3 (the project's .venv) only.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import lambda_harness as h  # noqa: E402

# N_PROCS: the CDK app's reserved concurrency (cdk/lib/sync-routes.ts): at most that many
# invocations run at once; the other events wait in Lambda's queue.
N_ROUTES, N_PROCS, N_TABLES = 26, 2, 4
INIT_PROCS_PER_RUN = 3
WARM_EVENTS = 5


# ------------------------------------------------------------------------------------------------
# Facts about the machine and the artifact.

def machine_facts(binary: Path) -> list[tuple[str, str]]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        import moto
        moto_version = moto.__version__
    except Exception:  # noqa: BLE001
        moto_version = "?"
    try:
        kind = subprocess.run(["file", "-b", str(binary)], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        kind = "?"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        ("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("nproc", str(os.cpu_count())),
        ("CPU", cpu),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("load average at start (1, 5, 15 min)", load),
        ("python", platform.python_version()),
        ("moto", moto_version),
        ("binary", str(binary)),
        ("binary kind", ", ".join(p.strip() for p in kind.split(",")
                                  if not p.strip().startswith(("interpreter", "BuildID", "for GNU")))),
        ("binary size", f"{binary.stat().st_size / 2**20:.2f} MiB"),
    ]


def zip_size(binary: Path) -> int:
    """Size of the deploy zip: the binary as `bootstrap`, DEFLATED (as cargo lambda / CDK)."""
    with tempfile.TemporaryFile() as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(binary, "rb") as src, z.open(info, "w") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        f.seek(0, io.SEEK_END)
        return f.tell()


# ------------------------------------------------------------------------------------------------
# One run.

class Env:
    def __init__(self):
        self.moto_proc, self.moto = h.start_moto()
        self.fault_proc, self.fault = h.start_fault_proxy(self.moto)
        self.control = h.Control(self.fault)
        self.timing = h.TimingProxy(self.moto)

    def close(self):
        self.timing.close()
        h.stop_process(self.fault_proc)
        h.stop_process(self.moto_proc)


def count(calls, *actions) -> int:
    return sum(1 for c in calls if c.action in actions)


def check_synced(env: Env, ids: dict, routes, problems: list, what: str):
    tables = h.routes_by_table(env.moto, ids["vpc"])
    missing = [(t, cidr) for t in ids["customs"] for cidr, eni in routes if tables[t].get(cidr) != eni]
    if missing:
        problems.append(f"{what}: {len(missing)} routes missing in the custom tables, e.g. {missing[:3]}")


def outcomes(results) -> dict:
    out: dict[str, int] = {}
    for r in results:
        key = (r.report or {}).get("outcome") or f"error:{r.error_type}"
        out[key] = out.get(key, 0) + 1
    return out


def one_run(env: Env, binary: Path, logs: Path, bucket: tuple[float, float], run: int,
            consume_on_throttle: bool = False) -> dict:
    h.reset_moto(env.moto)
    env.control.reset()
    env.timing.take()
    topic = h.create_topic(env.moto)
    fenv = {"SNS_TOPIC_ARN": topic}
    m: dict = {"problems": []}
    problems = m["problems"]

    def spawn(endpoint, name):
        return h.FunctionProcess(endpoint, env=fenv, binary=binary, log_path=logs / f"run{run}-{name}.log")

    # -- init only: spawn -> ready, CPU and RSS of a process that handled nothing.
    m["ready"], m["ready_concurrent"], m["init_cpu"], m["init_rss"] = [], [], [], []
    for i in range(INIT_PROCS_PER_RUN):
        fn = spawn(env.timing.url, f"init{i}")
        m["ready"].append(fn.wait_ready())
        fn.stop()
        m["init_cpu"].append(fn.rusage_cpu)
        m["init_rss"].append(fn.final_hwm_kb)

    # -- single event: cold, then warm, on one process.
    ids = h.build_vpc(env.moto, custom_tables=N_TABLES)
    routes = h.write_main_routes(env.moto, ids, h.route_cidrs(1 + WARM_EVENTS))
    fn = spawn(env.timing.url, "single")
    m["ready"].append(fn.wait_ready())
    env.timing.take()
    m["cold"], m["warm"] = [], []
    for i, (cidr, eni) in enumerate(routes):
        r = fn.invoke(h.cloudtrail_event(ids["main"], cidr, eni))
        calls = env.timing.take()
        rep = r.report or {}
        if rep.get("outcome") != "synced" or rep.get("notice") != "published":
            problems.append(f"single event {i}: {rep.get('outcome')} notice {rep.get('notice')} {r.body!r:.200}")
        row = {"wall": r.seconds, "api": h.critical_path_seconds(calls),
               "reads": count(calls, "DescribeRouteTables"), "writes": count(calls, "CreateRoute", "ReplaceRoute"),
               "publish": count(calls, "Publish")}
        (m["cold"] if i == 0 else m["warm"]).append(row)
    fn.stop()
    check_synced(env, ids, routes, problems, "single")
    m["single_cpu"] = fn.rusage_cpu
    m["single_events"] = len(routes)
    m["rss"] = [fn.final_hwm_kb]

    # -- the customer case, unthrottled, then the same events again (no-op).
    ids = h.build_vpc(env.moto, custom_tables=N_TABLES)
    routes = h.write_main_routes(env.moto, ids, h.route_cidrs(N_ROUTES))
    events = [h.cloudtrail_event(ids["main"], cidr, eni) for cidr, eni in routes]
    fns = [spawn(env.timing.url, f"burst{i}") for i in range(N_PROCS)]
    m["ready_concurrent"] += [f.wait_ready() for f in fns]
    env.timing.take()
    cpu0 = [f.cpu_seconds() for f in fns]
    def round_of_events(label: str, expected_outcome: str):
        """The 26 events through the processes: wall, outcomes and calls, under m[label_*]."""
        results, m[f"{label}_wall"] = h.run_concurrently(fns, events)
        calls = env.timing.take()
        m[f"{label}_outcomes"] = outcomes(results)
        if m[f"{label}_outcomes"] != {expected_outcome: N_ROUTES}:
            problems.append(f"{label} outcomes {m[f'{label}_outcomes']}")
        m[f"{label}_reads"] = count(calls, "DescribeRouteTables")
        m[f"{label}_writes"] = count(calls, "CreateRoute", "ReplaceRoute")
        m[f"{label}_publish"] = count(calls, "Publish")

    round_of_events("burst", "synced")
    cpu1 = [f.cpu_seconds() for f in fns]
    check_synced(env, ids, routes, problems, "burst")
    round_of_events("noop", "unchanged")
    cpu2 = [f.cpu_seconds() for f in fns]
    m["burst_cpu_ticks"] = sum(b - a for a, b in zip(cpu0, cpu1))
    m["noop_cpu_ticks"] = sum(b - a for a, b in zip(cpu1, cpu2))
    for f in fns:
        f.stop()
    m["rss"] += [f.final_hwm_kb for f in fns]
    m["burst_cpu"] = sum(f.rusage_cpu for f in fns)
    m["burst_events"] = 2 * N_ROUTES

    # -- the customer case behind EC2's token buckets, fresh processes.
    capacity, refill = bucket
    ids = h.build_vpc(env.moto, custom_tables=N_TABLES)
    routes = h.write_main_routes(env.moto, ids, h.route_cidrs(N_ROUTES))
    events = [h.cloudtrail_event(ids["main"], cidr, eni) for cidr, eni in routes]
    fns = [spawn(env.fault, f"bucket{i}") for i in range(N_PROCS)]
    m["ready_concurrent"] += [f.wait_ready() for f in fns]
    env.control.reset()
    env.control.config(buckets={"mutate": {"capacity": capacity, "refill_per_sec": refill},
                                "read": {"capacity": 100, "refill_per_sec": 20}}, strict_routes=True,
                       throttled_consumes_token=consume_on_throttle)
    results, m["bucket_wall"] = h.run_concurrently(fns, events)
    snap = env.control.calls()
    for f in fns:
        f.stop()
    m["rss"] += [f.final_hwm_kb for f in fns]
    total_writes = N_ROUTES * N_TABLES
    m["bucket_floor"] = max(0.0, (total_writes - capacity) / refill)
    m["bucket_attempts"] = snap["counts"].get("CreateRoute", 0)
    m["bucket_throttled"] = snap["throttled"]
    m["bucket_reads"] = snap["counts"].get("DescribeRouteTables", 0)
    m["bucket_publish"] = snap["counts"].get("Publish", 0)
    m["bucket_outcomes"] = outcomes(results)
    if m["bucket_outcomes"] != {"synced": N_ROUTES}:
        problems.append(f"bucket outcomes {m['bucket_outcomes']}")
    check_synced(env, ids, routes, problems, "bucket")
    return m


# ------------------------------------------------------------------------------------------------
# Report.

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt):
    xs = [x for x in xs if x is not None]
    return f"{fmt(min(xs))} – {fmt(max(xs))}" if xs else "–"


def report(runs: list[dict], facts, zip_bytes: int | None, args, command: str) -> str:
    ms = lambda s: f"{s * 1000:.1f} ms"  # noqa: E731
    sec = lambda s: f"{s:.2f} s"  # noqa: E731
    num = lambda x: f"{x:g}"  # noqa: E731
    ratio = lambda x: f"{x:.2f}×"  # noqa: E731
    mib = lambda kb: f"{kb / 1024:.1f} MiB"  # noqa: E731
    rows = []

    def row(name, values, fmt, target="", ok=None):
        v = med(values)
        verdict = "" if ok is None else ("yes" if ok(v) else "**no**")
        rows.append(f"| {name} | {fmt(v)} | {spread(values, fmt)} | {target} | {verdict} |")

    cold = [r for m in runs for r in m["cold"]]
    warm = [r for m in runs for r in m["warm"]]
    init_cpu = med([c for m in runs for c in m["init_cpu"]])

    row("single event, cold: wall (queued → answer)", [r["wall"] for r in cold], ms)
    row("single event, cold: API time on its critical path", [r["api"] for r in cold], ms)
    row("single event, cold: wall / API time", [r["wall"] / r["api"] for r in cold], ratio)
    row("single event, warm: wall (queued → answer)", [r["wall"] for r in warm], ms)
    row("single event, warm: API time on its critical path", [r["api"] for r in warm], ms)
    row("single event, warm: wall / API time", [r["wall"] / r["api"] for r in warm], ratio, "≤ 1.2×",
        lambda v: v <= 1.2)
    # A changing event reads once more after writing, to check (issue 19); a no-op reads once.
    row("reads per changing event, cold", [r["reads"] for r in cold], num, "≤ 3", lambda v: v <= 3)
    row("reads per changing event, warm", [r["reads"] for r in warm], num, "2", lambda v: v == 2)
    row("SNS messages per changing event", [r["publish"] for r in cold + warm], num, "1", lambda v: v == 1)
    row(f"customer case (26 routes × 4 tables, {N_PROCS} processes): wall", [m["burst_wall"] for m in runs], sec)
    row("customer case: DescribeRouteTables", [m["burst_reads"] for m in runs], num,
        f"≤ 2 × 26 + {N_PROCS} (2 warm, ≤ 3 cold)", lambda v: v <= 2 * N_ROUTES + N_PROCS)
    row("customer case: route writes", [m["burst_writes"] for m in runs], num, "104", lambda v: v == 104)
    row("customer case: SNS messages", [m["burst_publish"] for m in runs], num, "26", lambda v: v == 26)
    cap, refill = args.bucket
    model = ", throttled calls take tokens" if args.throttled_consumes_token else ""
    row(f"customer case behind the write bucket ({cap:g} burst, {refill:g}/s{model}): wall",
        [m["bucket_wall"] for m in runs], sec)
    row("  … the bucket's floor ((104 − burst) / refill)", [m["bucket_floor"] for m in runs], sec)
    row("  … wall / floor", [m["bucket_wall"] / m["bucket_floor"] if m["bucket_floor"] else None for m in runs],
        ratio, "≤ 1.5×", lambda v: v <= 1.5)
    row("  … CreateRoute attempts (throttled ones included)", [m["bucket_attempts"] for m in runs], num)
    row("  … of which throttled", [m["bucket_throttled"] for m in runs], num)
    row("  … DescribeRouteTables (fault proxy; 2 cold processes)", [m["bucket_reads"] for m in runs], num)
    row("no-op (the same 26 events again, warm): wall", [m["noop_wall"] for m in runs], sec)
    row("no-op: DescribeRouteTables", [m["noop_reads"] for m in runs], num, "26", lambda v: v == N_ROUTES)
    row("no-op: route writes", [m["noop_writes"] for m in runs], num, "0", lambda v: v == 0)
    row("no-op: SNS messages", [m["noop_publish"] for m in runs], num, "0", lambda v: v == 0)
    row("CPU per event (user+sys, lifetime − init, customer case + no-op)",
        [(m["burst_cpu"] - N_PROCS * init_cpu) / m["burst_events"] for m in runs], ms, "< 2 ms",
        lambda v: v < 0.002)
    row("CPU per event (single-event process, lifetime − init)",
        [(m["single_cpu"] - init_cpu) / m["single_events"] for m in runs], ms, "< 2 ms", lambda v: v < 0.002)
    row("  … changing events only (/proc ticks, 10 ms resolution)",
        [m["burst_cpu_ticks"] / N_ROUTES for m in runs], ms)
    row("  … no-op events only (/proc ticks, 10 ms resolution)",
        [m["noop_cpu_ticks"] / N_ROUTES for m in runs], ms)
    row("CPU of init (spawn → ready)", [c for m in runs for c in m["init_cpu"]], ms)
    row("process start → ready (spawn → first `next`), one process at a time",
        [r for m in runs for r in m["ready"]], ms, "< 20 ms", lambda v: v < 0.020)
    row(f"  … {N_PROCS} processes spawned at once", [r for m in runs for r in m["ready_concurrent"]], ms)
    row("peak RSS across the burst (max VmHWM of any process, per run)", [max(m["rss"]) for m in runs], mib,
        "< 25 MB", lambda v: v < 25 * 1000 * 1000 / 1024)
    row("RSS of an idle process at ready", [r for m in runs for r in m["init_rss"]], mib)
    if zip_bytes is not None:
        row("deploy zip (bootstrap, DEFLATED)", [zip_bytes / 1024], mib, "< 6 MB",
            lambda v: v < 6 * 1000 * 1000 / 1024)

    out = [f"$ {command}", ""]
    out += [f"- {k}: {v}" for k, v in facts]
    out += [f"- runs: {len(runs)} (medians; min – max over the runs, or over every event for per-event rows)", ""]
    out += ["| measure | median | min – max | target | met |", "|---|---|---|---|---|"] + rows
    problems = [f"run {i + 1}: {p}" for i, m in enumerate(runs) for p in m["problems"]]
    out += ["", "Problems: " + ("none" if not problems else "")] + [f"- {p}" for p in problems]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin", type=Path, default=None, help="default: SYNC_ROUTES_BIN, else the deploy binary")
    ap.add_argument("--bucket", default="50,5", help="mutating bucket CAPACITY,REFILL_PER_SEC (EC2: 50,5)")
    ap.add_argument("--throttled-consumes-token", action="store_true",
                    help="bucket scenario with fault_proxy's pessimistic model: a throttled call "
                         "also takes a token (down to -capacity)")
    ap.add_argument("--write", type=Path, default=None, help="also write the result into this Markdown file")
    ap.add_argument("--no-zip", action="store_true", help="skip zipping the binary")
    ap.add_argument("--logs", type=Path, default=None, help="keep the function logs here")
    args = ap.parse_args(argv)
    args.bucket = tuple(float(x) for x in args.bucket.split(","))
    binary = args.bin or h.function_binary()
    msg = h.missing_binary_message(binary)
    if msg:
        print(f"bench: {msg}", file=sys.stderr)
        return 2
    env_prefix = [f"{k}={shlex.quote(os.environ[k])}" for k in ("CARGO_TARGET_DIR", "SYNC_ROUTES_BIN")
                  if os.environ.get(k) and not args.bin]
    command = " ".join(env_prefix + [".venv/bin/python", "bench/run.py"]
                       + [shlex.quote(a) for a in (argv or sys.argv[1:])])

    facts = machine_facts(binary)
    t0 = time.monotonic()
    zip_bytes = None if args.no_zip else zip_size(binary)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="sync-routes-bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    env = Env()
    runs = []
    try:
        for i in range(args.runs):
            t = time.monotonic()
            runs.append(one_run(env, binary, logs, args.bucket, i + 1, args.throttled_consumes_token))
            print(f"run {i + 1}/{args.runs}: {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
    finally:
        env.close()
    facts.append(("bench duration", f"{time.monotonic() - t0:.0f} s"))
    facts.append(("function logs", str(logs)))
    text = report(runs, facts, zip_bytes, args, command)
    print(text)
    if args.write:
        write_markdown(args.write, text, binary)
    return 0 if not any(m["problems"] for m in runs) else 1


def write_markdown(path: Path, text: str, binary: Path):
    """Rewrites `path` with this run; a hand-written "## Notes" section at its end is kept."""
    notes = ""
    if path.exists():
        old = path.read_text()
        at = old.find("\n## Notes")
        notes = old[at:] if at >= 0 else ""
    path.write_text(f"""# Benchmarks

`bench/run.py` runs the function binary as Lambda does (a mock Lambda Runtime API per process,
tests/lambda_harness.py) against moto on loopback, with tests/fault_proxy.py's EC2 token buckets
where the bucket matters. Each run starts from an empty moto; medians are over the runs (per-event
rows: over every event of every run). See the docstring of bench/run.py for what each row measures.

How to read the figures:
- "API time on its critical path" is measured by a timing forwarder between the function and moto:
  the event's reads one after the other + its slowest write + its SNS publish. moto answers in
  milliseconds where EC2 takes tens, so the wall / API ratio here is a pessimistic bound on the
  function's own overhead.
- The bucket rows use EC2's documented mutating-call bucket (50 burst, 5 per second, per action)
  unless the command says otherwise; the floor is the time the bucket needs to refill for the writes
  beyond its burst, whatever the client does.
- Every function process runs on the same machine as moto and the proxies, so CPU-bound figures
  (wall times, start to ready) depend on the load average shown.

## Latest run

Binary: `{binary}`

```
{text}
```
{notes}""")


if __name__ == "__main__":
    sys.exit(main())
