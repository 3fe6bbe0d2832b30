#!/usr/bin/env bash
# Runs every test, from a fresh clone: installs its tools first (Python tools into .venv,
# npm packages with npm ci), then
#   1. Rust: cargo fmt --check, cargo test (unit tests, and the handler against moto behind
#      the EC2-faithful fault proxy; built while the tools install);
#   2. the deploy build: cargo lambda build --release (the binary Lambda runs), with
#      clippy -D warnings beside it;
#   3. CDK: type check and jest with cdk-nag (also beside step 2), cdk synth with
#      that binary (also as an organization's hub and member template), cfn-lint;
#   4. Python: the fault proxy's own tests, the EventBridge patterns (the hub's and the
#      member's) against moto's matcher, and the deploy binary end to end under a mock
#      Lambda Runtime API.
# Any failure stops the run with a non-zero exit.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
started=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" "$((SECONDS - started))"; }
# Waits for a background job, shows its output, and stops the run if it failed.
finish() { # PID LOG WHAT
  local ok=0
  wait "$1" || ok=$?
  cat "$2"
  if [ "$ok" -ne 0 ]; then
    echo "$3 failed (exit $ok)" >&2
    exit 1
  fi
}

# The test build needs none of the tools (moto is for running the tests), so it compiles
# while they install: from a cold cache that is the tools' minute off the critical path.
step "tools (beside the test build)"
build_log=$(mktemp)
cargo test --no-run --quiet >"$build_log" 2>&1 &
test_build=$!
trap 'kill "$test_build" 2>/dev/null || true; rm -f "$build_log"' EXIT
bash tests/tools/setup.sh
export PATH="$(readlink -f "$repo/.venv")/bin:$PATH" # cargo-lambda (with zig), cfn-lint, pytest
target="${CARGO_TARGET_DIR:-$repo/target}"

step "Rust: format"
cargo fmt --check

step "Rust: tests"
finish "$test_build" "$build_log" "the test build"
cargo test

# The CDK's npm ci, type check and jest need no Rust build (jest uses a placeholder asset
# and never runs cargo), so they run beside the deploy build: much of it is one crate on one
# core (aws-sdk-ec2, then the fat LTO of the binary), and the other core is free. (Not
# beside the Rust tests, whose moto round trips and deadlines would share the CPU.) Their
# output is shown, and their result checked, before the synth that needs the binary.
step "CDK: npm ci, type check, jest and cdk-nag (in the background, beside the deploy build)"
cdk_log=$(mktemp)
(cd cdk && npm ci --no-audit --no-fund --loglevel=error && nice -n 10 npm test) >"$cdk_log" 2>&1 &
cdk_tests=$!
# Clippy too: from a cold cache its check of the dependencies is 4 minutes on the critical
# path, and beside the deploy build it takes the core that build leaves idle. Its own target
# folder, because cargo holds a lock on a target folder for the whole of a build. Niced,
# with jest: at equal priority the cold run of 2026-12-02 took 1416 s for the deploy build
# and clippy together, against 1021 s for the deploy build alone the run before; the
# deploy build is on the critical path, they are not.
step "Rust: clippy -D warnings (in the background, beside the deploy build)"
clippy_log=$(mktemp)
CARGO_TARGET_DIR="$target/clippy" nice -n 10 cargo clippy --all-targets --quiet -- -D warnings >"$clippy_log" 2>&1 &
clippy=$!
trap 'kill "$cdk_tests" "$clippy" 2>/dev/null || true; rm -f "$build_log" "$cdk_log" "$clippy_log"' EXIT

step "Lambda build: cargo lambda build --release"
cargo lambda build --release
bootstrap="$target/lambda/sync-routes/bootstrap"
ls -l "$bootstrap"

step "Rust: the background clippy's result"
finish "$clippy" "$clippy_log" "clippy -D warnings"

step "CDK: the background jest's result, synth, cfn-lint"
finish "$cdk_tests" "$cdk_log" "CDK: npm ci, the type check or jest"
(
  cd cdk
  npx cdk synth --quiet -c lambdaAsset="$(dirname "$bootstrap")"
  # The same app with deletes on, for the EventBridge pattern test (DeleteRoute matches).
  npx cdk synth --quiet -c lambdaAsset="$(dirname "$bootstrap")" -o cdk.out.deletes \
    -c propagateDeletes=true -c destinations=10.0.0.0/8
  # An organization: the hub and the member template a StackSet deploys (and the member
  # pattern test reads).
  npx cdk synth --quiet -c lambdaAsset="$(dirname "$bootstrap")" -o cdk.out.org -c organizationId=o-exampleorg1 -c memberExternalId=example-external-id
)
cfn-lint cdk/cdk.out/SyncRoutes.template.json
cfn-lint cdk/cdk.out.org/SyncRoutes.template.json cdk/cdk.out.org/SyncRoutesMember.template.json

# Three at a time (pytest-xdist, each worker with its own motos and fault proxy): the slow
# tests wait out the proxy's token buckets (issue 13's failovers, about 55 s each) and use
# under half a core between them. (Tried once before, when the work queue shared moto with
# EC2: hand-offs to it hit their bound under two failovers' write storms; since then SQS has
# a moto of its own, as it is a service of its own.)
step "Python: fault proxy, event pattern, Lambda end to end (3 at a time)"
SYNC_ROUTES_BIN="$bootstrap" pytest -q -p no:cacheprovider -n 3 --dist worksteal tests/python

step "all tests passed"
