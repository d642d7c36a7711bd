# Shared set-up of the demo, service and test scripts: virtual environment, local ports, and the
# local environment of scripts/env.sh. Source it from a script: `. "$(dirname "$0")/lib.sh"`.

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FLIXLUIGI_VENV:-$ROOT/.venv}
RUN_DIR=${FLIXLUIGI_RUN_DIR:-$ROOT/.run}
PYTHON=${PYTHON:-python3}

ensure_venv() {
  # Creates the venv and installs the project with its test and luigid extras; quiet when already done.
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.flixluigi-installed"
  if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ] || [ "$ROOT/constraints.txt" -nt "$stamp" ]; then
    echo "== installing flixluigi and its dependencies"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    # The versions of constraints.txt, the ones the Docker image installs: tests run what deploys.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --constraint "$ROOT/constraints.txt" -e "$ROOT[test,luigid]"
    touch "$stamp"
  fi
  # devkit/ (the sandbox, the browser checker) is not packaged: the checkout itself goes on the
  # venv's path, so `python -m devkit.sandbox` and the tests find it from any directory.
  local site; site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  [ "$(cat "$site/flixluigi-devkit.pth" 2>/dev/null)" = "$ROOT" ] || echo "$ROOT" >"$site/flixluigi-devkit.pth"
  case ":$PATH:" in *":$VENV/bin:"*) ;; *) export PATH="$VENV/bin:$PATH" ;; esac
}

ensure_wheelhouse() {
  # The pinned runtime dependencies and build tools of constraints.txt as files, downloaded once:
  # tests/test_wheel.py installs the built wheel from them with no index (no network in a test).
  local dir="$RUN_DIR/wheelhouse"
  if [ ! -f "$dir/.complete" ] || [ "$ROOT/constraints.txt" -nt "$dir/.complete" ]; then
    echo "== downloading the pinned dependencies into $dir"
    mkdir -p "$dir"
    grep -E '^[A-Za-z0-9_.-]+==' "$ROOT/constraints.txt" >"$dir/pins.txt"
    # (pip's warnings about this machine's configured local indexes that do not exist are left out)
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -r "$dir/pins.txt" -d "$dir" \
      2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    touch "$dir/.complete"
  fi
  export FLIXLUIGI_WHEELHOUSE=$dir
}

ensure_chromium() {
  # Headless Chromium from the distribution, for the report's browser tests and screenshots: installed
  # with apt-get only as root or with password-less sudo; otherwise the browser tests are skipped.
  if [ -n "${FLIXLUIGI_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then return; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
      echo "== no Chromium and no root to install it: browser tests are skipped (apt-get install chromium, or set FLIXLUIGI_CHROMIUM)"
      return
    fi
    sudo="sudo"
  fi
  echo "== installing chromium (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-dejavu-core
}

wait_http() {
  # wait_http URL SECONDS: until the URL answers at all (any HTTP status).
  local url=$1 deadline=$((SECONDS + $2))
  until curl -s -o /dev/null "$url"; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $url" >&2; return 1; }
    sleep 0.3
  done
}

svc_running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

svc_spawn() {
  # svc_spawn PIDFILE LOG CMD...: runs CMD in its own session (so stop can end all it forked).
  local pidfile=$1 logfile=$2; shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

svc_stop() {
  # svc_stop PIDFILE NAME: TERM the service's process group, KILL it after 10 s.
  local pidfile=$1 name=$2
  if svc_running "$pidfile"; then
    local pid; pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "$name stopped"
  fi
  rm -f "$pidfile"
}
