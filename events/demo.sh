#!/usr/bin/env bash
# The demo: the whole job, locally, against an EC2 emulator (moto). It builds a VPC with a
# main table and four custom tables, writes a route in the main table the way a failover
# script would, feeds the CloudTrail event for that call to the real binary
# (`sync-routes invoke FILE`), and prints every table before and after, and each alert as
# the e-mail subscriber would receive it. Then it fails the route over to another ENI
# (ReplaceRoute), replays the event (a duplicate: no writes, no alert), and creates a new
# custom table, which is backfilled.
#
# Needs: cargo and python3. Installs its Python tools into .venv (tests/tools/setup.sh).
# SYNC_ROUTES_BIN=path runs that binary instead of building one (the tests do).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash tests/tools/setup.sh
py="$repo/.venv/bin/python"

if [ -n "${SYNC_ROUTES_BIN:-}" ]; then
  bin="$SYNC_ROUTES_BIN"
else
  echo "== building sync-routes (the first build compiles the AWS SDK: several minutes)"
  cargo build --quiet --bin sync-routes
  bin="${CARGO_TARGET_DIR:-$repo/target}/debug/sync-routes"
fi

work=$(mktemp -d)
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$repo/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo
unset AWS_PROFILE AWS_SESSION_TOKEN
for _ in $(seq 100); do
  "$py" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done

ids=$("$py" tests/tools/demo_vpc.py build)
eni_a=$(echo "$ids" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["enis"][0])')
eni_b=$(echo "$ids" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["enis"][1])')
echo "== a VPC in the emulator: $ids"
echo
echo "== before: no route to 10.100.0.0/16 in the main table (one custom table already sends it to an internet gateway)"
"$py" tests/tools/demo_vpc.py show "$ids"

export SNS_TOPIC_ARN=$(echo "$ids" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["topic"])')

run() { # $1: event file. Logs (JSON lines) go to $work/function.log; the report is printed,
  # then the alert e-mail, if the run sent one.
  echo
  echo "\$ sync-routes invoke $(basename "$1")"
  "$bin" invoke "$1" 2>>"$work/function.log"
  echo
  echo "== the alert topic's subscriber receives:"
  "$py" tests/tools/demo_vpc.py mail "$ids"
}

echo
echo "== CreateRoute 10.100.0.0/16 -> $eni_a in the main table, as a failover script would"
"$py" tests/tools/demo_vpc.py route "$ids" 10.100.0.0/16 "$eni_a" create >"$work/create.json"
run "$work/create.json"
echo
echo "== after: three custom tables follow the main table; the internet-gateway route is untouched"
"$py" tests/tools/demo_vpc.py show "$ids"

echo
echo "== failover: ReplaceRoute 10.100.0.0/16 -> $eni_b in the main table"
"$py" tests/tools/demo_vpc.py route "$ids" 10.100.0.0/16 "$eni_b" replace >"$work/replace.json"
run "$work/replace.json"
echo
echo "== the same event again (EventBridge delivers at least once): nothing to do"
run "$work/replace.json"
echo
echo "== after the failover"
"$py" tests/tools/demo_vpc.py show "$ids"
echo
echo "== a new custom table (CreateRouteTable): backfilled from the main table"
"$py" tests/tools/demo_vpc.py new-table "$ids" >"$work/new-table.json"
run "$work/new-table.json"
echo
echo "== the function's log lines (JSON) are in the runs above' stderr; the metric line of the last run:"
grep '"_aws"' "$work/function.log" | tail -n 1
