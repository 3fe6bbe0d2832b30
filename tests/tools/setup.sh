#!/usr/bin/env bash
# Installs every tool the demo and the tests need, from the package registries only:
# Python tools into .venv (moto, cfn-lint, cargo-lambda with its zig), nothing globally.
# Idempotent and quiet when already done; sourced or run by tests/run.sh and events/demo.sh.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# .venv may be a link to a venv kept elsewhere (.ci/run does that); create it at its real
# path, which pip writes into every script's shebang.
venv=$(readlink -f "$repo/.venv")
req="$repo/tests/tools/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python tools into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
