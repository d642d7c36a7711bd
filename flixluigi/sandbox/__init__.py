"""An X API v2-compatible stand-in server for demos and tests (no internet here).

`start(...)` runs it in a background thread of the calling process; `python -m
flixluigi.sandbox` runs it as its own process. Both serve real HTTP on loopback.
"""

from __future__ import annotations

import threading
from pathlib import Path

from flixluigi.sandbox.api import Corpus, SandboxApi
from flixluigi.sandbox.compliance import ComplianceConfig, ComplianceHandler, ComplianceRouter, ComplianceSandbox
from flixluigi.sandbox.replay import load_pages
from flixluigi.sandbox.server import FAULTS, Faults, RateLimiter, SandboxServer

DEFAULT_TOKEN = "sandbox-bearer-token"

__all__ = ["DEFAULT_TOKEN", "FAULTS", "ComplianceConfig", "Faults", "RateLimiter", "SandboxServer", "start"]


def start(host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_TOKEN, volume: int = 300, seed: int = 0,
          replay: tuple[str | Path, ...] = (), rate_limit: int = 300, rate_window: float = 900.0,
          faults: Faults | None = None, compliance: ComplianceConfig | None = None) -> SandboxServer:
    """Serve in a daemon thread; `server.server_address` has the bound port, `shutdown()` stops it."""
    corpus = Corpus(volume=volume, seed=seed, replay_pages=load_pages(*replay) if replay else [])
    api = ComplianceRouter(SandboxApi(corpus), ComplianceSandbox(compliance))  # compliance jobs: server.api.compliance
    server = SandboxServer((host, port), api, token, RateLimiter(rate_limit, rate_window), faults or Faults())
    server.RequestHandlerClass = ComplianceHandler  # adds POST of jobs and the pre-signed storage URLs
    threading.Thread(target=server.serve_forever, name="x-api-sandbox", daemon=True).start()
    return server
