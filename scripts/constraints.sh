#!/usr/bin/env bash
# Rewrites constraints.txt from the venv: the exact version of every package `pip install .`
# needs (flixluigi's requirements with its `luigid` extra, and theirs, as installed now), plus the build tools. The Docker
# image and scripts/test.sh install with it. Run after changing install_requires in setup.cfg
# (it installs the project without the old constraints first), then run the tests:
#   scripts/constraints.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test,luigid]"
"$VENV/bin/python" - "$ROOT/constraints.txt" <<'PY'
import sys
from importlib.metadata import distribution
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

BUILD = {"setuptools": "84.2.1", "wheel": "0.48.0"}  # pyproject.toml's build backend, pinned for the image
# The image installs flixluigi[luigid] (luigid's Prometheus collector): that extra is runtime too.
pins, todo = {}, [Requirement(r) for r in distribution("flixluigi").requires]
while todo:
    requirement = todo.pop()
    if requirement.marker and not requirement.marker.evaluate({"extra": "luigid"}):
        continue
    name = canonicalize_name(requirement.name)
    if name in pins:
        continue
    dist = distribution(name)
    pins[name] = dist.version
    todo += [Requirement(r) for r in dist.requires or () if "extra ==" not in r]
lines = ["# Exact versions of flixluigi's runtime dependencies, from a venv where the tests pass.",
         "# Written by scripts/constraints.sh; the Dockerfile and scripts/test.sh install with them.",
         *(f"{name}=={version}" for name, version in sorted(pins.items())),
         "# Build tools of the image (pyproject.toml's build-system).",
         *(f"{name}=={version}" for name, version in BUILD.items())]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
print(f"{sys.argv[1]}: {len(pins)} runtime packages pinned")
PY
