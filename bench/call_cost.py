#!/usr/bin/env python3
"""What one call costs the function in CPU, with the deploy binary on a warm process: a no-op
route event (one read of the customer case's VPC: 1 main + 4 custom tables, 26 routes each,
an invocation, its report), a route write that lands, one that EC2 throttles, and an SNS
notice. These are the parts that issue 17's "CPU for the whole case" is made of.

Each figure is the difference in the process's CPU (the scheduler's count,
/proc/PID/task/*/schedstat, ns) between two invocations that differ only in that part,
divided by how many of it the second made; medians over --runs repetitions, behind the fault
proxy (as bench/work_queue.py), on moto.

    .venv/bin/python bench/call_cost.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import lambda_harness as h  # noqa: E402
from work_queue import cpu_ns  # noqa: E402

ROUTES, TABLES = 26, 4
WIDE = 40  # custom tables of the VPC the write figures use: one event, 40 writes


def invoke_cpu_ms(fn: h.FunctionProcess, event) -> tuple[float, dict]:
    before = cpu_ns(fn.pid)
    result = fn.invoke(event)
    time.sleep(0.05)  # the process logs after it answers
    return (cpu_ns(fn.pid) - before) / 1e6, result.body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    binary = h.bench_binary()
    if binary is None:
        return 2
    figures: dict[str, list[float]] = {"no-op event (1 read, 5 tables)": [], "write landed": [],
                                       "write throttled": [], "notice": []}
    with h.moto_and_fault_proxy() as (moto_url, proxy_url):
        control = h.Control(proxy_url)
        topic = h.create_topic(moto_url)
        # The customer case's VPC, synced once, so that its events are no-ops.
        ids = h.build_vpc(moto_url, custom_tables=TABLES, enis=1)
        routes = h.write_main_routes(moto_url, ids, h.route_cidrs(ROUTES))
        plain = h.FunctionProcess(proxy_url, binary=binary)
        noticed = h.FunctionProcess(proxy_url, binary=binary, env={"SNS_TOPIC_ARN": topic})
        try:
            plain.wait_ready()
            noticed.wait_ready()
            for cidr, eni in routes:
                plain.invoke(h.cloudtrail_event(ids["main"], cidr, eni))
            for cidr, eni in routes[:3]:  # warm, on no-ops
                noticed.invoke(h.cloudtrail_event(ids["main"], cidr, eni))
            wide = h.build_vpc(moto_url, custom_tables=WIDE, enis=2)
            ec2 = h.ec2_client(moto_url)
            for run in range(args.runs):
                control.reset()
                cidr, eni = routes[run % ROUTES]
                noop, _ = invoke_cpu_ms(plain, h.cloudtrail_event(ids["main"], cidr, eni))
                figures["no-op event (1 read, 5 tables)"].append(noop)

                # One route to 40 tables, then the same route to the other ENI: 40 writes each
                # (and 2 reads and a check), against a no-op of that VPC.
                [(wcidr, _)] = h.write_main_routes(moto_url, wide, [f"10.{200 + run}.0.0/16"],
                                                   enis=[wide["enis"][0]])

                def point_main(eni: int, wcidr=wcidr):
                    """The wide VPC's main route straight in moto, as another tool would."""
                    ec2.replace_route(RouteTableId=wide["main"], DestinationCidrBlock=wcidr,
                                      NetworkInterfaceId=wide["enis"][eni])
                plain.invoke(h.cloudtrail_event(wide["main"], wcidr, wide["enis"][0]))
                wide_noop, _ = invoke_cpu_ms(plain, h.cloudtrail_event(wide["main"], wcidr, wide["enis"][0]))
                point_main(1)
                written, _ = invoke_cpu_ms(plain, h.cloudtrail_event(wide["main"], wcidr, wide["enis"][1],
                                                                        name="ReplaceRoute"))
                # The write event made 2 reads (its plan's and the check's) where the no-op made 1,
                # and one invocation: what is left over two no-ops is 40 writes less one
                # invocation's overhead (under 0.02 ms a write).
                figures["write landed"].append((written - 2 * wide_noop) / WIDE)

                # The same 40 writes by a fresh process, first behind no bucket (warm: its
                # connections open, the VPC known), then behind a bucket of 1 + 40/s, where
                # about every other attempt is throttled and retried. (The pacer then paces
                # that process, so it is not reused.)
                with h.FunctionProcess(proxy_url, binary=binary) as fresh:
                    fresh.wait_ready()
                    for cidr, eni in routes[:3]:  # warm, on no-ops of the other VPC
                        fresh.invoke(h.cloudtrail_event(ids["main"], cidr, eni))
                    fresh.invoke(h.cloudtrail_event(wide["main"], wcidr, wide["enis"][1]))  # a no-op
                    point_main(0)
                    unthrottled, _ = invoke_cpu_ms(fresh, h.cloudtrail_event(
                        wide["main"], wcidr, wide["enis"][0], name="ReplaceRoute"))
                    point_main(1)
                    control.reset()
                    control.config(buckets={"mutate": {"capacity": 1, "refill_per_sec": 40}})
                    throttled_ms, _ = invoke_cpu_ms(fresh, h.cloudtrail_event(
                        wide["main"], wcidr, wide["enis"][1], name="ReplaceRoute"))
                    n_throttled = control.calls()["throttled_counts"].get("ReplaceRoute", 0)
                    control.config(buckets={})
                if n_throttled:
                    figures["write throttled"].append((throttled_ms - unthrottled) / n_throttled)

                # A notice: two changes of the wide VPC alike (40 writes each), one by a process
                # with a topic. The tables are on the second ENI here.
                noticed.invoke(h.cloudtrail_event(wide["main"], wcidr, wide["enis"][1]))  # a warm no-op
                point_main(0)
                with_notice, body = invoke_cpu_ms(noticed, h.cloudtrail_event(wide["main"], wcidr, wide["enis"][0],
                                                                              name="ReplaceRoute"))
                point_main(1)
                without, _ = invoke_cpu_ms(plain, h.cloudtrail_event(wide["main"], wcidr, wide["enis"][1],
                                                                     name="ReplaceRoute"))
                if body.get("notice") == "published":
                    figures["notice"].append(with_notice - without)
        finally:
            plain.stop()
            noticed.stop()
    print("| part | CPU, median (range) | runs |")
    print("|---|---|---|")
    for name, values in figures.items():
        if values:
            print(f"| {name} | {statistics.median(values):.2f} ms ({min(values):.2f}–{max(values):.2f}) | "
                  f"{len(values)} |")
        else:
            print(f"| {name} | not measured | 0 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
