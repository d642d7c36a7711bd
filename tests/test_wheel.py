"""The package is the product: the wheel built as the Dockerfile builds it holds flixluigi alone,
installs offline with the pinned runtime dependencies only, and every module in it imports.

No network: `scripts/test.sh` downloads the pinned dependencies and build tools once into a
wheelhouse (FLIXLUIGI_WHEELHOUSE), and every install here is `--no-index --find-links` it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
WHEELHOUSE = Path(os.environ.get("FLIXLUIGI_WHEELHOUSE", ROOT / ".run" / "wheelhouse"))
# Test and demo tooling that must never ship (it lives in devkit/).
NOT_SHIPPED = re.compile(r"(^|/)(devkit|tests|benchmarks|sandbox|browser\.py|parquet\.py)(/|$)")


def copies(stage_text: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not from another stage)."""
    found = []
    for line in stage_text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            found.append((words[1:-1], words[-1]))
    return found


def pip(python: Path, *args: str, cwd: Path) -> None:
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=clean_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def clean_env() -> dict[str, str]:
    """No PYTHONPATH, user site or pip settings of the machine: nothing but the wheelhouse reaches the fresh venvs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    return {**env, "PYTHONNOUSERSITE": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE)}


def venv(path: Path) -> Path:
    """A fresh venv; its pip is Python's bundled one (ensurepip reaches no index)."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120, env=clean_env())
    return path / "bin" / "python"


def test_every_file_the_dockerfile_copies_exists():
    for sources, _ in copies(DOCKERFILE):
        for source in sources:
            assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which the checkout does not have"


def test_the_wheel_holds_the_product_only_and_installs_offline_with_its_runtime_dependencies(tmp_path: Path):
    if not (WHEELHOUSE / ".complete").exists():
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: run the tests through scripts/test.sh, which downloads it once")
    # The build stage's context, copied as the Dockerfile copies it: a file it forgets fails here.
    context = tmp_path / "src"
    build_stage = DOCKERFILE.split("\nFROM ")[1]
    for sources, destination in copies(build_stage):
        for source in sources:
            target = context / destination / Path(source).name if destination.endswith("/") else context / destination
            target.parent.mkdir(parents=True, exist_ok=True)
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(ROOT / source, target)

    builder = venv(tmp_path / "build-venv")
    pip(builder, "install", "--quiet", "--constraint", "constraints.txt", "setuptools", "wheel", cwd=context)
    pip(builder, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), ".", cwd=context)
    (wheel,) = (tmp_path / "dist").glob("flixluigi-*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    shipped = [n for n in names if NOT_SHIPPED.search(n)]
    assert not shipped, f"the wheel ships test or demo tooling: {shipped}"
    assert {n.split("/")[0] for n in names} == {"flixluigi", wheel.name.split("-py")[0] + ".dist-info"}
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names if n.endswith(".py"))
    assert "flixluigi.defaults.cfg" not in modules and "flixluigi/defaults.cfg" in names

    runtime = venv(tmp_path / "venv")
    pip(runtime, "install", "--quiet", "--constraint", str(ROOT / "constraints.txt"), str(wheel), cwd=tmp_path)
    probe = ("import importlib, sys\n"
             f"modules = {modules!r}\n"
             "for name in modules: importlib.import_module(name)\n"
             "for name in ('devkit', 'tests', 'pytest', 'playwright', 'duckdb'):\n"
             "    assert importlib.util.find_spec(name) is None, name + ' is importable in the production venv'\n"
             "print(len(modules))\n")
    done = subprocess.run([str(runtime), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) == len(modules) > 20
