"""events/demo.sh, end to end with the binary the suite tests (SYNC_ROUTES_BIN): the README
promises that the demo shows each alert as the e-mail subscriber receives it, and none for
the duplicate event."""

from __future__ import annotations

import os
import re
import subprocess

import lambda_harness as h


def test_the_demo_shows_each_alert_and_none_for_the_duplicate():
    binary = h.function_binary()
    msg = h.missing_binary_message(binary)
    assert msg is None, msg
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SYNC_ROUTES_BIN"] = str(binary)
    run = subprocess.run(["bash", str(h.REPO / "events" / "demo.sh")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    steps = re.split(r"\n== ", out)

    def step(starting: str) -> str:
        found = [s for s in steps if s.startswith(starting)]
        assert found, f"no step '{starting}' in:\n{out}"
        return "\n".join(steps[steps.index(found[0]):steps.index(found[0]) + 2])

    create = step("CreateRoute 10.100.0.0/16")
    assert re.search(r"\| Subject: sync-routes: 10\.100\.0\.0/16 -> eni-\w+ synced to 3 tables in vpc-\w+", create), create
    assert re.search(r"\|   rtb-\w+  skipped .*a different kind of next hop", create), create
    failover = step("failover: ReplaceRoute")
    assert re.search(r"\|   rtb-\w+  replaced +eni-\w+ -> eni-\w+", failover), failover
    duplicate = step("the same event again")
    assert "(no e-mail: nothing changed, so no notice was sent)" in duplicate, duplicate
    assert "Subject:" not in duplicate, duplicate
    backfill = step("a new custom table")
    assert re.search(r"\| Subject: sync-routes: 1 route change in vpc-\w+", backfill), backfill
    assert out.count("| Subject:") == 3, out
