# The local environment of this checkout, for running the README's commands yourself:
#   . scripts/env.sh            (bash or zsh, from any directory)
# Puts the venv's `luigi`, `luigid` and `flixluigi` on PATH and exports the local services'
# stand-in S3 credentials, the X API sandbox's token, a demo HMAC key, and LUIGI_CONFIG_PATH at
# this checkout's luigi.cfg, so that `luigi` and `luigid` use the project's settings from any
# directory. A value already set in the environment wins. The scripts in scripts/ source it too.
# For local use only: the demo key is public, so curated data made with it is not pseudonymous.

_flixluigi_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_flixluigi_venv=${FLIXLUIGI_VENV:-$_flixluigi_root/.venv}

case ":$PATH:" in
  *":$_flixluigi_venv/bin:"*) ;;
  *) if [ -x "$_flixluigi_venv/bin/python" ]; then
       export PATH="$_flixluigi_venv/bin:$PATH"
     elif [ -n "${PS1:-}" ]; then
       echo "no virtual environment at $_flixluigi_venv yet: run scripts/demo.sh or scripts/test.sh once to create it" >&2
     fi ;;
esac

export LUIGI_CONFIG_PATH=${LUIGI_CONFIG_PATH:-$_flixluigi_root/luigi.cfg}
# Throwaway credentials of the local SeaweedFS (scripts/seaweedfs.sh starts it with them).
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-flixluigi-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-flixluigi-local-secret}
# The token the X API sandbox accepts (scripts/sandbox.sh).
export X_BEARER_TOKEN=${X_BEARER_TOKEN:-sandbox-bearer-token}
export SANDBOX_BEARER_TOKEN=${SANDBOX_BEARER_TOKEN:-$X_BEARER_TOKEN}
export FLIXLUIGI_HMAC_KEY=${FLIXLUIGI_HMAC_KEY:-flixluigi-demo-key-not-secret-0123456789}
# The web console's token (`flixluigi console`), public like the demo key: loopback use only.
export FLIXLUIGI_CONSOLE_TOKEN=${FLIXLUIGI_CONSOLE_TOKEN:-flixluigi-demo-console-token-not-secret}

unset _flixluigi_root _flixluigi_venv
