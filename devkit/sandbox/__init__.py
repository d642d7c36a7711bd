"""An X API v2-compatible stand-in server for demos and tests (no internet here).

`start(...)` runs it in a background thread of the calling process; `python -m
devkit.sandbox` runs it as its own process. Both serve real HTTP on loopback.
"""

from __future__ import annotations

import threading
from pathlib import Path

from devkit.sandbox.api import Corpus, SandboxApi
from devkit.sandbox.compliance import ComplianceConfig, ComplianceHandler, ComplianceRouter, ComplianceSandbox
from devkit.sandbox.misbehave import PAGE_FAULTS
from devkit.sandbox.replay import load_pages
from devkit.sandbox.server import FAULTS, MIN_INTERVALS, TRANSIENT_FAULTS, Billing, Faults, Pacer, RateLimiter, SandboxServer

DEFAULT_TOKEN = "sandbox-bearer-token"

__all__ = ["DEFAULT_TOKEN", "FAULTS", "PAGE_FAULTS", "TRANSIENT_FAULTS", "Billing", "ComplianceConfig", "Faults", "RateLimiter",
           "SandboxServer", "start"]


def start(host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_TOKEN, volume: int = 300, seed: int = 0,
          replay: tuple[str | Path, ...] = (), rate_limit: int = 300, rate_window: float = 900.0,
          faults: Faults | None = None, legacy: bool = False, time_scale: float = 1.0,
          usage_cap: int | None = None, compliance: ComplianceConfig | None = None) -> SandboxServer:
    """Serve in a daemon thread; `server.server_address` has the bound port, `shutdown()` stops it.

    The 2026 rules apply unless `legacy` (the API and posts as before 2023: no per-second rule,
    long posts, edits, retweet filter or context_annotations limit). `time_scale` multiplies
    every interval and window (the 1 s rule and `rate_window`), so tests apply them in
    milliseconds. `usage_cap`: billed posts after which the usage-cap 429 answers. `compliance`:
    what the batch compliance endpoints report (jobs in `server.api.compliance`).
    """
    if time_scale <= 0:
        raise ValueError(f"time_scale = {time_scale} must be more than 0 (1 = real time)")
    corpus = Corpus(volume=volume, seed=seed, replay_pages=load_pages(*replay) if replay else [], modern=not legacy)
    pacer = Pacer({} if legacy else {path: seconds * time_scale for path, seconds in MIN_INTERVALS.items()})
    api = ComplianceRouter(SandboxApi(corpus, modern=not legacy), ComplianceSandbox(compliance))
    server = SandboxServer((host, port), api, token, RateLimiter(rate_limit, rate_window * time_scale, time_scale == 1),
                           faults or Faults(), pacer, Billing(usage_cap))
    server.RequestHandlerClass = ComplianceHandler  # adds POST of jobs and the pre-signed storage URLs
    threading.Thread(target=server.serve_forever, name="x-api-sandbox", daemon=True).start()
    return server
