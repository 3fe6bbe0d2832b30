#!/usr/bin/env python3
"""What a changing event costs with deletes on (the ledger of issue 16), next to deletes off,
with the deploy binary under the mock Lambda Runtime API, against moto behind the fault proxy.

One warm process per setting (deletes off; deletes on, with the ledger in moto's DynamoDB),
the same VPC shape (4 custom tables), events one after the other:

  replace   a ReplaceRoute event that re-points the main route (4 copies replaced);
  delete    (deletes on) a DeleteRoute event of a route sync-routes copied (4 copies deleted).

Printed per setting: invocation wall time (event queued -> answer, median and range), and the
calls each event made, from the proxy's counts: DescribeRouteTables, route writes, and the
ledger's BatchGetItem / BatchWriteItem. `--ledger-delay-ms` adds a delay to every DynamoDB
call (moto answers in about a millisecond; DynamoDB in-region typically in a few).

    .venv/bin/python bench/ledger.py --events 10 [--ledger-delay-ms 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import lambda_harness as h  # noqa: E402

TABLES = 4
CALLS = ("DescribeRouteTables", "CreateRoute", "ReplaceRoute", "DeleteRoute", "BatchGetItem", "BatchWriteItem")


def create_ledger(moto_url: str) -> str:
    name = f"sync-routes-ledger-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", endpoint_url=moto_url, region_name=h.REGION,
                 aws_access_key_id="test", aws_secret_access_key="test").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "RouteTableId", "AttributeType": "S"},
                              {"AttributeName": "Destination", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "RouteTableId", "KeyType": "HASH"},
                   {"AttributeName": "Destination", "KeyType": "RANGE"}])
    return name


def measure(fn: h.FunctionProcess, control: h.Control, config: dict, event: dict) -> dict:
    control.config(**config)
    result = fn.invoke(event)
    report = result.report or {}
    counts = control.calls()["counts"]
    return {"seconds": result.seconds, "outcome": report.get("outcome"),
            **{name: counts.get(name, 0) for name in CALLS}}


def run(setting: str, moto_url: str, proxy_url: str, control: h.Control, binary: Path,
        events: int, config: dict) -> dict[str, list[dict]]:
    ids = h.build_vpc(moto_url, custom_tables=TABLES, enis=2)
    ec2 = h.ec2_client(moto_url)
    env = {"SYNC_VPC_IDS": ids["vpc"]}
    if setting == "deletes on":
        env.update(SYNC_DESTINATIONS="10.0.0.0/8", SYNC_PROPAGATE_DELETES="true",
                   SYNC_LEDGER_TABLE=create_ledger(moto_url))
    out: dict[str, list[dict]] = {"replace": [], "delete": []}
    with h.FunctionProcess(proxy_url, env=env, binary=binary) as fn:
        fn.wait_ready()
        for i in range(events):
            cidr = f"10.{100 + i}.0.0/16"
            # The route exists and is copied (not measured), then the main table re-points it.
            h.write_main_routes(moto_url, ids, [cidr], enis=[ids["enis"][0]])
            fn.invoke(h.cloudtrail_event(ids["main"], cidr, ids["enis"][0]))
            h.write_main_routes(moto_url, ids, [cidr], enis=[ids["enis"][1]], call="replace")
            event = h.cloudtrail_event(ids["main"], cidr, ids["enis"][1], name="ReplaceRoute")
            control.reset()
            out["replace"].append(measure(fn, control, config, event))
            if setting == "deletes on":
                ec2.delete_route(RouteTableId=ids["main"], DestinationCidrBlock=cidr)
                event = h.cloudtrail_event(ids["main"], cidr, ids["enis"][1], name="DeleteRoute")
                event["detail"]["requestParameters"].pop("networkInterfaceId")
                control.reset()
                out["delete"].append(measure(fn, control, config, event))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10)
    ap.add_argument("--ledger-delay-ms", type=int, default=0)
    args = ap.parse_args()
    binary = h.bench_binary()
    if binary is None:
        return 2
    config: dict = {"strict_routes": True}
    if args.ledger_delay_ms:
        config["inject"] = [{"action": a, "service": "dynamodb", "delay_ms": args.ledger_delay_ms, "times": -1}
                            for a in ("BatchGetItem", "BatchWriteItem")]
    with h.moto_and_fault_proxy() as (moto_url, proxy_url):
        control = h.Control(proxy_url)
        results = {s: run(s, moto_url, proxy_url, control, binary, args.events, config)
                   for s in ("deletes off", "deletes on")}
        print(f"\n{args.events} events each, one warm process per setting, {TABLES} custom tables, "
              f"DynamoDB delay {args.ledger_delay_ms} ms\n")
        print("| event | setting | wall per event, median (range) | DescribeRouteTables | route writes "
              "| BatchGetItem | BatchWriteItem | outcomes |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in ("replace", "delete"):
            for setting, by_kind in results.items():
                rows = by_kind[kind]
                if not rows:
                    continue
                ms = [r["seconds"] * 1000 for r in rows]
                per = lambda name: statistics.median(r[name] for r in rows)  # noqa: E731
                writes = statistics.median(r["CreateRoute"] + r["ReplaceRoute"] + r["DeleteRoute"] for r in rows)
                outcomes = ", ".join(sorted({str(r["outcome"]) for r in rows}))
                print(f"| {kind} | {setting} | {statistics.median(ms):.1f} ms ({min(ms):.1f}–{max(ms):.1f}) "
                      f"| {per('DescribeRouteTables'):.0f} | {writes:.0f} | {per('BatchGetItem'):.0f} "
                      f"| {per('BatchWriteItem'):.0f} | {outcomes} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
