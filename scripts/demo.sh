#!/usr/bin/env bash
# The main job end to end on embedded defaults: local SeaweedFS + X API sandbox.
#   scripts/demo.sh [YYYY-MM-DD]   (default 2022-09-12)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
DAY=${1:-2022-09-12}

ensure_venv
# A demo key: the curated objects of a real deployment need a secret key of your own.
export FLIXLUIGI_HMAC_KEY=${FLIXLUIGI_HMAC_KEY:-flixluigi-demo-key-not-secret-0123456789}

cleanup() { scripts/sandbox.sh stop >/dev/null; scripts/seaweedfs.sh stop >/dev/null; }
trap cleanup EXIT
scripts/seaweedfs.sh start
scripts/sandbox.sh start

echo "== luigi --module flixluigi CuratedTweets --date $DAY --local-scheduler"
luigi --module flixluigi CuratedTweets --date "$DAY" --local-scheduler
echo "== the curated day"
flixluigi summary --date "$DAY"
echo "== data stays in $RUN_DIR/seaweedfs between runs; a second run finds the day complete"
