#!/usr/bin/env bash
# The main job end to end on embedded defaults: local SeaweedFS + X API sandbox.
#   scripts/demo.sh [YYYY-MM-DD]   (default 2022-09-12)
# Starts the local services that are not running and stops those (only those) on exit; services
# you started yourself (scripts/seaweedfs.sh start, scripts/sandbox.sh start) keep running.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
DAY=${1:-2022-09-12}

ensure_venv

started=()
cleanup() {
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do scripts/"${started[i]}".sh stop >/dev/null; done
}
trap cleanup EXIT
for service in seaweedfs sandbox; do
  if scripts/$service.sh status >/dev/null; then
    echo "== $service already running: the demo uses it and leaves it running"
  else
    scripts/$service.sh start
    started+=("$service")
  fi
done

echo "== luigi --module flixluigi CuratedTweets --date $DAY --local-scheduler"
luigi --module flixluigi CuratedTweets --date "$DAY" --local-scheduler
echo "== the curated day"
flixluigi summary --date "$DAY"
flixluigi report --start "$DAY" --end "$DAY" --out "$RUN_DIR/report.html"
# No root, no apt: without a Chromium the screenshot is skipped in one line (the report is written).
if python -c 'from devkit.browser import find_chromium; find_chromium()' 2>/dev/null; then
  python -m devkit.browser "$RUN_DIR/report.html" "$RUN_DIR/report.png" >/dev/null
  echo "== report: $RUN_DIR/report.html  screenshot: $RUN_DIR/report.png"
else
  echo "== report: $RUN_DIR/report.html  (no Chromium: no screenshot; apt-get install chromium or set FLIXLUIGI_CHROMIUM, then: python -m devkit.browser $RUN_DIR/report.html $RUN_DIR/report.png)"
fi
echo "== data stays in $RUN_DIR/seaweedfs between runs; a second run finds the day complete"
echo "== to go on by hand: . scripts/env.sh && scripts/seaweedfs.sh start && scripts/sandbox.sh start"
CONSOLE_PORT=${FLIXLUIGI_CONSOLE_PORT:-8090}
echo "== web console: scripts/luigid.sh start && flixluigi console --port $CONSOLE_PORT"
echo "   then open http://127.0.0.1:$CONSOLE_PORT/ and log in with \$FLIXLUIGI_CONSOLE_TOKEN (scripts/env.sh sets a local one)"
