#!/usr/bin/env bash
# The whole test suite on a fresh machine: venv, packages, the wheelhouse of the pinned
# dependencies (for the wheel test), Chromium, then pytest. The session fixtures
# start SeaweedFS, the X API sandbox and luigid themselves, on free loopback ports.
#   scripts/test.sh [pytest args...]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
ensure_wheelhouse
ensure_chromium
echo "== ruff"
ruff check flixluigi tests benchmarks devkit
echo "== pytest"
exec python -m pytest "$@"
