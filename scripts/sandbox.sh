#!/usr/bin/env bash
# The X API sandbox on loopback: scripts/sandbox.sh start|stop|status [sandbox options...]
# Environment: SANDBOX_PORT (8700), SANDBOX_DIR (.run/sandbox), SANDBOX_BEARER_TOKEN.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PORT=${SANDBOX_PORT:-8700}
DIR=${SANDBOX_DIR:-$RUN_DIR/sandbox}
PIDFILE=$DIR/sandbox.pid
cmd=${1:-}; shift || true

case "$cmd" in
  start)
    if svc_running "$PIDFILE"; then echo "sandbox already running at http://127.0.0.1:$PORT"; exit 0; fi
    svc_spawn "$PIDFILE" "$DIR/sandbox.log" "$VENV/bin/python" -m devkit.sandbox --port "$PORT" "$@"
    wait_http "http://127.0.0.1:$PORT/2/tweets/search/all" 30 || { cat "$DIR/sandbox.log" >&2; exit 1; }
    echo "X API sandbox running at http://127.0.0.1:$PORT" ;;
  stop) svc_stop "$PIDFILE" "X API sandbox" ;;
  status) if svc_running "$PIDFILE"; then echo running; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status [sandbox options]" >&2; exit 2 ;;
esac
