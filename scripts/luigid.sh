#!/usr/bin/env bash
# Luigi's central scheduler with its web view: scripts/luigid.sh start|stop|status
# Environment: LUIGID_PORT (8082), LUIGID_DIR (.run/luigid: logs and the persisted state).
# Settings: the project's luigi.cfg ([scheduler], [resources]; luigid runs in the checkout, where
# Luigi reads ./luigi.cfg) with luigid.cfg on top (Prometheus metrics on /metrics), as in the image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PORT=${LUIGID_PORT:-8082}
DIR=${LUIGID_DIR:-$RUN_DIR/luigid}
PIDFILE=$DIR/luigid.pid

case "${1:-}" in
  start)
    if svc_running "$PIDFILE"; then echo "luigid already running at http://127.0.0.1:$PORT"; exit 0; fi
    # luigid refuses to start without its log dir; it saves its state on shutdown.
    mkdir -p "$DIR/log"
    (cd "$ROOT" && export LUIGI_CONFIG_PATH="$ROOT/luigid.cfg" && svc_spawn "$PIDFILE" "$DIR/luigid.out" "$VENV/bin/luigid" \
      --address 127.0.0.1 --port "$PORT" --logdir "$DIR/log" --state-path "$DIR/state.pickle")
    wait_http "http://127.0.0.1:$PORT/api/task_list" 30 || { cat "$DIR/luigid.out" >&2; exit 1; }
    echo "luigid running: web view at http://127.0.0.1:$PORT" ;;
  stop) svc_stop "$PIDFILE" luigid ;;
  status) if svc_running "$PIDFILE"; then echo running; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
