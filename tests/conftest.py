"""Real services for the tests: SeaweedFS and the X API sandbox over HTTP on loopback.

SeaweedFS is started once per session through `scripts/seaweedfs.sh` (the same script the demo
uses) on free ports in a temporary directory. Every test gets its own key prefixes in the bucket,
so tests never see each other's days.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import luigi
import luigi.configuration
import pytest
from luigi.task_register import Register

from devkit import sandbox
from flixluigi import runs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "x_api_v2"
ACCESS_KEY, SECRET_KEY = "flixluigi-test", "flixluigi-test-secret"
TOKEN = "test-bearer-token"
HMAC_KEY = "test-hmac-key-0123456789abcdef0123456789"
BUCKET = "flixluigi-test"
# The sandbox applies the API's intervals and windows at this scale (1 s -> 10 ms); clients pace to match.
TIME_SCALE = 0.01


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seaweed_ports() -> tuple[int, int]:
    """An S3 port and a base port whose next three, and each one's gRPC port (+10000), are free."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 29000)
        ports = [base + i for i in range(5)]
        if all(_bindable(p) and _bindable(p + 10000) for p in ports):
            return ports[4], base
    raise RuntimeError("no free loopback ports for SeaweedFS")


class Seaweed:
    def __init__(self, tmp: Path):
        self.s3_port, self.base = seaweed_ports()
        self.dir = tmp
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SEAWEED_DIR": str(self.dir), "SEAWEED_S3_PORT": str(self.s3_port),
                "SEAWEED_PORT_BASE": str(self.base), "S3_BUCKET": BUCKET,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def run(self, action: str) -> None:
        subprocess.run([str(ROOT / "scripts" / "seaweedfs.sh"), action], env=self.env(), check=True,
                       capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session", autouse=True)
def quiet_run_summary():
    """The run's failure lines are printed at exit of a `luigi` command, not of the test session."""
    import atexit

    atexit.unregister(runs._print_summary)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory):
    server = Seaweed(tmp_path_factory.mktemp("seaweedfs"))
    server.run("start")
    yield server
    server.run("stop")


@pytest.fixture(scope="session")
def api_server():
    server = sandbox.start(token=TOKEN, volume=300, time_scale=TIME_SCALE)
    yield server
    server.shutdown()


@pytest.fixture
def serve():
    """Sandboxes of a test's own (options as sandbox.start takes them), shut down after it."""
    started = []

    def start(**options) -> sandbox.SandboxServer:
        server = sandbox.start(token=TOKEN, **{"time_scale": TIME_SCALE, **options})
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()


def api_url(server: sandbox.SandboxServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


_prefixes = itertools.count()


@pytest.fixture
def pipeline(seaweed: Seaweed, api_server: sandbox.SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Luigi configured for the test services, under key prefixes of this test alone."""
    run = f"t{next(_prefixes)}-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("FLIXLUIGI_HMAC_KEY", HMAC_KEY)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    for name in ("FLIXLUIGI_SLACK_WEBHOOK", "FLIXLUIGI_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    settings = {
        "s3": {"endpoint_url": seaweed.endpoint, "region_name": "us-east-1"},
        "storage": {"bucket": BUCKET, "raw_prefix": f"{run}/raw/tweets", "curated_prefix": f"{run}/curated/tweets",
                    "records_prefix": f"{run}/records"},
        # Transient failures are retried inside a task; the tests do not wait between tries.
        "days": {"retry_delay": "0"},
        "xapi": {"base_url": api_url(api_server), "endpoint": "all", "max_results": "100", "backoff_factor": "0.05",
                 "timeout": "10", "min_interval_all": str(TIME_SCALE)},
        "pseudonym": {"key_env": "FLIXLUIGI_HMAC_KEY", "key_file": ""},
    }
    cfg = luigi.configuration.get_config()
    # Every section as it was: a test's `Pipeline.set` may add sections of its own (left behind, they
    # would reach the next test in this process).
    saved = {s: dict(cfg.items(s)) for s in cfg.sections()}
    for section, values in settings.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            cfg.set(section, key, value)
    Register.clear_instance_cache()
    # Each test is a run of its own: its start-up checks are its own.
    monkeypatch.setattr(runs, "RUN_ID", f"test-{run}")
    yield Pipeline(run, settings, seaweed, api_server)
    for section in settings:
        cfg.remove_section(section)
        if section in saved:
            cfg.add_section(section)
            for key, value in saved[section].items():
                cfg.set(section, key, value)
    Register.clear_instance_cache()


class Pipeline:
    """What a test needs to reach the services it runs against."""

    def __init__(self, run: str, settings: dict, seaweed: Seaweed, api_server: sandbox.SandboxServer):
        self.run, self.settings, self.seaweed, self.api_server = run, settings, seaweed, api_server

    def set(self, section: str, key: str, value: str) -> None:
        luigi.configuration.get_config().set(section, key, value)
        self.settings.setdefault(section, {})[key] = value
        Register.clear_instance_cache()

    def write_cfg(self, path: Path) -> Path:
        """The same settings as a luigi.cfg file, for `luigi` run as a command."""
        lines = []  # no [retcode]: the package's own defaults must make a failed run exit non-zero
        for section, values in self.settings.items():
            lines += [f"[{section}]", *(f"{k} = {v}" for k, v in values.items()), ""]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines))
        return path


@pytest.fixture
def failures():
    """Exceptions of failed tasks, collected through Luigi's own FAILURE event."""
    seen: list[tuple[luigi.Task, BaseException]] = []

    def record(task: luigi.Task, exception: BaseException) -> None:
        seen.append((task, exception))

    luigi.Task.event_handler(luigi.Event.FAILURE)(record)
    yield seen
    luigi.Task._event_callbacks[luigi.Task][luigi.Event.FAILURE].discard(record)


class Recorder(ThreadingHTTPServer):
    """Stands in for Slack and a JSON webhook: records every POSTed body by path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.received: list[tuple[str, dict]] = []
        self.delay = 0.0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def bodies(self, path: str) -> list[dict]:
        return [body for where, body in self.received if where == path]


class _RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.server.delay)
        self.server.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def slack(pipeline, monkeypatch):
    """Slack (/slack) and JSON webhook (/hook) stand-ins, wired through the environment."""
    recorder = Recorder()
    monkeypatch.setenv("FLIXLUIGI_SLACK_WEBHOOK", recorder.url("/slack"))
    monkeypatch.setenv("FLIXLUIGI_WEBHOOK", recorder.url("/hook"))
    import flixluigi.notify

    flixluigi.notify._sent.clear()
    yield recorder
    recorder.shutdown()
