"""Client of the X API batch compliance endpoints. Knows nothing of Luigi nor of stored data.

One job is: `POST /2/compliance/jobs` (type `tweets` or `users`), a plain `PUT` of the ids, one per
line, to the job's pre-signed `upload_url`, polls of `GET /2/compliance/jobs/:id` until `complete`,
and a `GET` of the pre-signed `download_url` (JSON lines). Pre-signed URLs carry their own
signature: the bearer token is never sent to them (they point at a storage host, not the API).
A job takes at most 100,000 ids, and X runs one job per type at a time, so larger sets run as
several jobs one after the other.

Errors are one line naming the problem and the fix, subclass the X API error classes of
`flixluigi.errors` (an `except Unauthorized` catches both clients' token errors) and carry
`transient`: whether running again may succeed. Only transient HTTP faults are retried here; a failed or expired job
is transient too (a new job may succeed) but is left to the caller to rerun.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import backoff
import orjson
import requests

from flixluigi.errors import (
    ComplianceDataError,
    ComplianceError,
    ComplianceFault,
    ComplianceMalformed,
    ComplianceRefused,
    ComplianceUnauthorized,
    ComplianceUnreachable,
    JobFailed,
)
from flixluigi.xapi.client import RETRYABLE_STATUS, problem_of, request_failure, wait_for_reset

log = logging.getLogger(__name__)

JOB_TYPES = ("tweets", "users")
MAX_IDS_PER_JOB = 100_000
NAME_MAX = 64
SCRUB_GEO = "scrub_geo"
ID_RE = re.compile(r"^[0-9]{1,19}$")
# A 429 that names no reset: wait this long before asking again.
NO_RESET_WAIT = 60.0


@dataclass(frozen=True)
class Record:
    """One line of a job's results: `{"id", "action", "created_at", "redacted_at", "reason"}`."""

    id: str
    reason: str
    action: str = "delete"
    created_at: str | None = None
    redacted_at: str | None = None

    @classmethod
    def parse(cls, obj: object) -> Record:
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("reason"), str):
            raise ComplianceDataError(f"compliance result {str(obj)[:120]!r} lacks a string id or reason; "
                                      "the download is not a compliance result file")
        return cls(obj["id"], obj["reason"], str(obj.get("action") or "delete"), obj.get("created_at"), obj.get("redacted_at"))

    @property
    def scrubs_geo(self) -> bool:
        return SCRUB_GEO in (self.reason, self.action)


@dataclass(frozen=True)
class Job:
    """A compliance job as the API describes it (`data` of the create and status answers)."""

    id: str
    type: str
    status: str
    upload_url: str
    download_url: str
    name: str | None = None
    created_at: str | None = None
    upload_expires_at: str | None = None
    download_expires_at: str | None = None

    @classmethod
    def parse(cls, body: Any, where: str) -> Job:
        data = body.get("data") if isinstance(body, dict) else None
        if data is None and isinstance(body, dict) and body.get("errors"):
            details = " - ".join(str(e.get("detail") or e.get("message") or e.get("title")) for e in body["errors"] if isinstance(e, dict))
            raise ComplianceRefused(f"{where}: {' '.join(details.split())}; run the compliance check again, which creates a new job")
        try:
            return cls(**{k: data[k] for k in ("id", "type", "status", "upload_url", "download_url")},
                       **{k: data.get(k) for k in ("name", "created_at", "upload_expires_at", "download_expires_at")})
        except (KeyError, TypeError):
            raise ComplianceMalformed(f"{where} answered without a compliance job (data.id/status/upload_url/download_url); "
                                      "is [xapi] base_url an X API?") from None


@dataclass
class ComplianceClient:
    """Runs jobs against `base_url` (the API; pre-signed URLs come in its answers).

    `poll_interval`/`poll_timeout` pace and bound the wait for a job (seconds; tests use
    milliseconds). `session` must not carry an Authorization header: the token is added to API
    calls only. `on_status` receives one-line progress for the scheduler.
    """

    base_url: str
    token: str = field(repr=False)
    timeout: float = 60.0
    poll_interval: float = 30.0
    poll_timeout: float = 6 * 3600.0
    max_ids_per_job: int = MAX_IDS_PER_JOB
    max_tries: int = 8
    backoff_factor: float = 1.0
    max_rate_limit_wait: float = 960.0
    on_status: Callable[[str], None] = lambda message: None
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        if not self.token:
            raise ComplianceUnauthorized("no bearer token: export it in the variable named by [xapi] token_env (X_BEARER_TOKEN)")
        if not 1 <= self.max_ids_per_job <= MAX_IDS_PER_JOB:
            raise ComplianceError(f"max_ids_per_job = {self.max_ids_per_job}; choose 1..{MAX_IDS_PER_JOB} (the API's limit per job)")
        self.base_url = self.base_url.rstrip("/")
        retrying = backoff.on_exception(
            backoff.expo, ComplianceFault, max_tries=self.max_tries, factor=self.backoff_factor, max_value=60,
            jitter=backoff.full_jitter, on_backoff=self._on_backoff, giveup_log_level=logging.DEBUG, logger=None)
        self._request = retrying(self._attempt)
        self._call = retrying(self._call_once)
        self._results = retrying(self._results_once)

    def check(self, kind: str, ids: Iterable[str], name: str | None = None) -> list[Record]:
        """Every result for `ids`: as many jobs as `max_ids_per_job` needs, one after the other."""
        if kind not in JOB_TYPES:
            raise ComplianceError(f"compliance job type {kind!r}; choose one of {', '.join(JOB_TYPES)}")
        wanted = list(dict.fromkeys(ids))
        bad = next((i for i in wanted if not isinstance(i, str) or not ID_RE.match(i)), None)
        if bad is not None:
            raise ComplianceError(f"{bad!r} is not a numeric {kind[:-1]} id; pass the ids as strings of digits")
        chunks = [wanted[i:i + self.max_ids_per_job] for i in range(0, len(wanted), self.max_ids_per_job)]
        records: list[Record] = []
        for number, chunk in enumerate(chunks, 1):
            label = name if name is None or len(chunks) == 1 else f"{name[:NAME_MAX - 12]}-{number}of{len(chunks)}"
            self.on_status(f"compliance {kind} job {number}/{len(chunks)}: {len(chunk)} ids")
            job = self.create(kind, label)
            self.upload(job, chunk)
            records += self.download(self.wait(job))
        return records

    def create(self, kind: str, name: str | None = None) -> Job:
        body: dict[str, str] = {"type": kind}
        if name:
            body["name"] = name[:NAME_MAX]
        return Job.parse(self._api("POST", "/2/compliance/jobs", body), "POST /2/compliance/jobs")

    def status(self, job_id: str) -> Job:
        return Job.parse(self._api("GET", f"/2/compliance/jobs/{job_id}"), f"GET /2/compliance/jobs/{job_id}")

    def upload(self, job: Job, ids: Iterable[str]) -> None:
        payload = "".join(f"{i}\n" for i in ids).encode()
        self._request("PUT", job.upload_url, f"upload of job {job.id}", data=payload, headers={"Content-Type": "text/plain"})

    def wait(self, job: Job) -> Job:
        """Polls until `complete`; `failed`, `expired` or `poll_timeout` raise JobFailed."""
        deadline = time.monotonic() + self.poll_timeout
        while True:
            job = self.status(job.id)
            if job.status == "complete":
                return job
            if job.status in ("failed", "expired"):
                why = "X could not process it" if job.status == "failed" else "its upload or download window closed"
                raise JobFailed(f"compliance {job.type} job {job.id} {job.status} ({why}); nothing was changed: "
                                "run the compliance check again, which creates a new job", job.id, job.status)
            if time.monotonic() >= deadline:
                raise JobFailed(f"compliance {job.type} job {job.id} still {job.status} after {self.poll_timeout:.0f}s; "
                                "nothing was changed: raise the poll timeout or run again later", job.id, job.status)
            self.on_status(f"compliance job {job.id} {job.status}")
            time.sleep(self.poll_interval)

    def download(self, job: Job) -> list[Record]:
        """The job's results; a cut or garbled download is fetched again (transient)."""
        return self._results(job)

    def _results_once(self, job: Job) -> list[Record]:
        records = []
        for line in self._attempt("GET", job.download_url, f"download of job {job.id}").content.splitlines():
            if not line.strip():
                continue
            try:
                records.append(Record.parse(orjson.loads(line)))
            except (orjson.JSONDecodeError, ComplianceDataError):
                raise ComplianceFault(f"results of compliance job {job.id} hold a line that is not a complete result") from None
        return records

    def _api(self, method: str, path: str, body: dict | None = None) -> dict:
        """One API call with the bearer token; waits out a spent rate limit."""
        for _ in range(self.max_tries):
            answer = self._call(method, path, body)
            if isinstance(answer, dict):
                return answer
            self._wait_for_reset(path, answer)
        raise ComplianceError(f"{method} {path} still rate limited after {self.max_tries} waits for the reset; run later")

    def _call_once(self, method: str, path: str, body: dict | None) -> dict | requests.Response:
        """The JSON answer, or the 429 response to wait out."""
        response = self._attempt(method, self.base_url + path, f"{method} {path}", json=body,
                                 headers={"Authorization": f"Bearer {self.token}", "User-Agent": "flixluigi"})
        if response.status_code == 429:
            return response
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ComplianceFault(f"{method} {path}: incomplete JSON body (HTTP {response.status_code})") from None
        if not isinstance(answer, dict):
            raise ComplianceMalformed(f"{method} {path} answered with JSON that is not an object; is [xapi] base_url an X API?")
        return answer

    def _wait_for_reset(self, path: str, response: requests.Response) -> None:
        try:
            reset = float(response.headers["x-rate-limit-reset"])
        except (KeyError, ValueError):
            reset = time.time() + NO_RESET_WAIT
        wait_for_reset(path, reset, self.max_rate_limit_wait, self.on_status, error=ComplianceError)

    def _on_backoff(self, details: dict) -> None:
        log.warning("compliance: %s; retry %d in %.1fs", details["exception"], details["tries"], details["wait"])

    def _attempt(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        """One HTTP request, classified: the answer (2xx, or 429 from the API) or a ComplianceError."""
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.RequestException as exc:
            raise request_failure(exc, _origin(url), self.timeout, first=True, prefix=f"{what}: ",
                                  unreachable=ComplianceUnreachable, fault=ComplianceFault) from None
        status = response.status_code
        api = url.startswith(self.base_url + "/2/")
        if 200 <= status < 300 or (api and status == 429):
            return response
        try:
            problem = problem_of(orjson.loads(response.content), status)
        except orjson.JSONDecodeError:
            problem = _xml_problem(response.text, status)
        if status in RETRYABLE_STATUS or status == 429:
            raise ComplianceFault(f"{what}: HTTP {status}: {problem}")
        if api and status in (401, 403):
            raise ComplianceUnauthorized(f"X API rejected the bearer token for {what} (HTTP {status}: {problem}); "
                                         "check the variable named by [xapi] token_env and the app's compliance access")
        if status in (400, 403, 404):
            raise ComplianceRefused(f"{what} refused (HTTP {status}: {problem}); nothing was changed: run the compliance "
                                    "check again, which creates a new job")
        raise ComplianceError(f"{what}: unexpected HTTP {status} from {_origin(url)}: {problem}")


def _origin(url: str) -> str:
    """Scheme and host only: a pre-signed URL's query is a credential and never goes into a message."""
    return "/".join(url.split("/", 3)[:3])


def _xml_problem(text: str, status: int) -> str:
    """The Code and Message of a storage (GCS/S3-style XML) error, on one line."""
    found = [m.group(1).strip() for tag in ("Code", "Message") if (m := re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S))]
    return " - ".join(" ".join(f.split()) for f in found) or f"HTTP {status}"
