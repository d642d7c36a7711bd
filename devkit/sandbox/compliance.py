"""The batch compliance endpoints of the sandbox, with pre-signed-style storage URLs it serves itself.

API (bearer token, rate limits and fault injection like the search endpoints):
`POST /2/compliance/jobs` (`{"type": "tweets"|"users", "name"?}`), `GET /2/compliance/jobs/:id`,
`GET /2/compliance/jobs?type=` — the real JSON shapes (`data` with id, type, name, status,
created_at, upload_url, upload_expires_at, download_url, download_expires_at).
Storage (no bearer token: `Expires` and an HMAC `Signature` in the query, like S3 query auth, valid 15 minutes
for the upload and 7 days for the download): `PUT /_storage/compliance/<job>/submission` takes the
ids one per line; `GET /_storage/compliance/<job>/results` returns JSON lines `{"id", "action",
"created_at", "redacted_at", "reason"}` for the affected ids only. A storage request that carries an
Authorization header is refused (and counted), so tests prove the token never reaches it.

Which ids are affected is `ComplianceConfig`: explicit ids, or a share of all ids chosen by a
seeded hash; an id's state may change from one check of it to the next. A job is `in_progress`
after its upload and `complete` at the `polls_to_complete`-th status request; `outcomes` makes a
given job (by creation order) end `failed` or `expired` instead.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from devkit.sandbox.api import INVALID_REQUEST, BadRequest, SandboxApi, fmt_time
from devkit.sandbox.generator import TWITTER_EPOCH_MS
from devkit.sandbox.server import TOO_MANY, UNAUTHORIZED, Handler

API_PREFIX = "/2/compliance/jobs"
STORAGE_PREFIX = "/_storage/compliance/"
UPLOAD_WINDOW = timedelta(minutes=15)
DOWNLOAD_WINDOW = timedelta(days=7)
TWEET_REASONS = ("deleted", "protected", "suspended", "scrub_geo")
USER_REASONS = ("deleted", "protected", "suspended", "deactivated")
OUTCOMES = ("failed", "expired")
MAX_BODY = 64 << 20
NOT_FOUND = {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}

State = str | Sequence[str | None]


@dataclass
class ComplianceConfig:
    """What the compliance endpoints report.

    `tweets`/`users`: id -> reason, or a sequence of reasons (None: no event) for the 1st, 2nd, ...
    check of that id, the last one repeating: `(None, "deleted")` is deleted from the second check on.
    `rate`: share of all other ids affected, drawn from a hash of (`seed`, id); a further half of that
    share turns `deleted` from their second check on. `outcomes`: job number (1 = first created) ->
    `failed` | `expired`. `max_ids`: ids a job accepts (more fail the job, as X refuses them).
    """

    tweets: Mapping[str, State] = field(default_factory=dict)
    users: Mapping[str, State] = field(default_factory=dict)
    rate: float = 0.0
    seed: int = 0
    polls_to_complete: int = 1
    max_ids: int = 100_000
    outcomes: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 0.5:
            raise ValueError(f"compliance rate {self.rate}; choose 0..0.5")
        if self.polls_to_complete < 0 or self.max_ids < 1:
            raise ValueError("compliance polls_to_complete must be >= 0 and max_ids >= 1")
        unknown = set(self.outcomes.values()) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown compliance job outcomes {sorted(unknown)}; choose from {', '.join(OUTCOMES)}")

    def reason(self, kind: str, item: str, check: int) -> str | None:
        """The reason reported for `item` at its `check`-th check (1-based), None if it is fine."""
        explicit = (self.tweets if kind == "tweets" else self.users).get(item)
        if explicit is not None:
            if isinstance(explicit, str):
                return explicit
            return explicit[min(check, len(explicit)) - 1] if explicit else None
        if not self.rate:
            return None
        draw = int.from_bytes(hashlib.sha256(f"{self.seed}:{kind}:{item}".encode()).digest()[:8], "big") / 2**64
        reasons = TWEET_REASONS if kind == "tweets" else USER_REASONS
        if draw < self.rate:
            return reasons[int(draw / self.rate * len(reasons))]
        if draw < self.rate * 1.5 and check > 1:
            return "deleted"
        return None


@dataclass
class Job:
    number: int
    id: str
    type: str
    name: str | None
    host: str  # the Host the job was created through: its storage URLs point there
    created: datetime
    status: str = "created"
    polls: int = 0
    ids: list[str] = field(default_factory=list)
    results: bytes = b""


class ComplianceSandbox:
    """The jobs, the signing key of the storage URLs, and counters tests assert on."""

    def __init__(self, config: ComplianceConfig | None = None):
        self.config = config or ComplianceConfig()
        self.jobs: dict[str, Job] = {}
        self.checks: Counter[tuple[str, str]] = Counter()
        self.storage_with_token = 0  # storage requests refused for carrying an Authorization header
        self.uploads = 0
        self.downloads = 0
        self._numbers = itertools.count(1)
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()

    # -- API ---------------------------------------------------------------------------------

    def create(self, body: bytes, host: str) -> tuple[int, dict]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"title": "Invalid Request", "detail": "Request body is not valid JSON.", "type": INVALID_REQUEST}
        try:
            kind = request.get("type") if isinstance(request, dict) else None
            if kind not in ("tweets", "users"):
                raise BadRequest("type", str(kind or ""), f"The `type` parameter value [{kind or ''}] is not one of [tweets,users]")
            name = request.get("name")
            if name is not None and (not isinstance(name, str) or len(name) > 64):
                raise BadRequest("name", str(name), "The `name` parameter must be a string of at most 64 characters")
        except BadRequest as exc:
            return 400, exc.body
        with self._lock:
            number = next(self._numbers)
            job = Job(number, str(1_500_000_000_000_000_000 + number * 7919), kind, name, host, datetime.now(UTC))
            self.jobs[job.id] = job
        return 200, {"data": self._describe(job)}

    def handle(self, path: str, params: dict[str, str]) -> tuple[int, dict]:
        """`GET /2/compliance/jobs/:id` (each one a poll) and `GET /2/compliance/jobs?type=`."""
        if path.rstrip("/") == API_PREFIX:
            kind = params.get("type", "")
            if kind not in ("tweets", "users"):
                return 400, BadRequest("type", kind, f"The `type` query parameter value [{kind}] is not one of [tweets,users]").body
            jobs = [self._describe(self._poll(j, count=False)) for j in list(self.jobs.values()) if j.type == kind]
            return 200, {"data": jobs, "meta": {"result_count": len(jobs)}} if jobs else {"meta": {"result_count": 0}}
        job = self.jobs.get(path.rsplit("/", 1)[-1])
        if job is None:
            job_id = path.rsplit("/", 1)[-1]
            return 200, {"errors": [{"value": job_id, "detail": f"Could not find compliance job with id: [{job_id}].",
                                     "title": "Not Found Error", "resource_type": "compliance_job", "parameter": "id",
                                     "resource_id": job_id, "type": "https://api.twitter.com/2/problems/resource-not-found"}]}
        return 200, {"data": self._describe(self._poll(job, count=True))}

    def _poll(self, job: Job, count: bool) -> Job:
        with self._lock:
            if job.status == "created" and datetime.now(UTC) > job.created + UPLOAD_WINDOW:
                job.status = "expired"
            if job.status == "in_progress":
                job.polls += count
                if job.polls >= self.config.polls_to_complete:
                    self._finish(job)
        return job

    def _finish(self, job: Job) -> None:
        outcome = self.config.outcomes.get(job.number)
        if outcome or len(job.ids) > self.config.max_ids or not all(i.isdigit() and len(i) <= 19 for i in job.ids):
            job.status = outcome or "failed"
            return
        now = fmt_time(datetime.now(UTC))
        lines = []
        for item in job.ids:
            self.checks[(job.type, item)] += 1
            reason = self.config.reason(job.type, item, self.checks[(job.type, item)])
            if reason:
                lines.append(json.dumps({"id": item, "action": "delete", "created_at": _created_at(item),
                                         "redacted_at": now, "reason": reason}, separators=(",", ":")))
        job.results = "".join(line + "\n" for line in lines).encode()
        job.status = "complete"

    def _describe(self, job: Job) -> dict:
        described = {"id": job.id, "type": job.type, "created_at": fmt_time(job.created),
                     "upload_url": self._signed(job, "submission", job.created + UPLOAD_WINDOW),
                     "upload_expires_at": fmt_time(job.created + UPLOAD_WINDOW),
                     "download_url": self._signed(job, "results", job.created + DOWNLOAD_WINDOW),
                     "download_expires_at": fmt_time(job.created + DOWNLOAD_WINDOW), "status": job.status}
        if job.name is not None:
            described["name"] = job.name
        return described

    # -- storage -----------------------------------------------------------------------------

    def _signed(self, job: Job, what: str, expires: datetime) -> str:
        path = f"{STORAGE_PREFIX}{job.id}/{what}"
        stamp = int(expires.timestamp())
        return f"http://{job.host}{path}?Expires={stamp}&Signature={self._sign(path, stamp)}"

    def _sign(self, path: str, stamp: int) -> str:
        return hmac.new(self._secret, f"{path}\n{stamp}".encode(), hashlib.sha256).hexdigest()

    def storage(self, method: str, target: str, authorization: str | None, body: bytes) -> tuple[int, bytes, str]:
        """A PUT of the ids or a GET of the results: (status, body, content type)."""
        url = urlsplit(target)
        query = dict(parse_qsl(url.query))
        if authorization:
            with self._lock:
                self.storage_with_token += 1
            return _xml(400, "InvalidArgument", "A signed URL request must not carry an Authorization header.")
        try:
            stamp = int(query.get("Expires", ""))
        except ValueError:
            stamp = 0
        if not hmac.compare_digest(self._sign(url.path, stamp), query.get("Signature", "")):
            return _xml(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
        if datetime.now(UTC).timestamp() > stamp:
            return _xml(400, "ExpiredToken", "Invalid argument.")
        job_id, what = url.path[len(STORAGE_PREFIX):].split("/", 1)
        job = self.jobs[job_id]
        with self._lock:
            if method == "PUT" and what == "submission" and job.status in ("created", "in_progress"):
                job.ids = body.decode("utf-8", "replace").split()
                job.status, job.polls = "in_progress", 0
                self.uploads += 1
                if self.config.polls_to_complete == 0:
                    self._finish(job)
                return 200, b"", "text/plain"
            if method == "GET" and what == "results" and job.status == "complete":
                self.downloads += 1
                return 200, job.results, "application/json"
        return _xml(404, "NoSuchKey", "The specified key does not exist.")


def _created_at(item: str) -> str:
    """A post's creation time, read from its snowflake id like X's own results give it."""
    ms = (int(item) >> 22) + TWITTER_EPOCH_MS
    return fmt_time(datetime.fromtimestamp(ms / 1000, UTC))


def _xml(status: int, code: str, message: str) -> tuple[int, bytes, str]:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return status, body.encode(), "application/xml; charset=UTF-8"


class ComplianceRouter:
    """Sends `GET /2/compliance/jobs...` to the compliance sandbox, every other path to the search API."""

    def __init__(self, api: SandboxApi, compliance: ComplianceSandbox):
        self.api, self.compliance = api, compliance

    def handle(self, path: str, params: dict[str, str]) -> tuple[int, dict]:
        if path.startswith(API_PREFIX):
            return self.compliance.handle(path, params)
        return self.api.handle(path, params)


class ComplianceHandler(Handler):
    """The sandbox's handler plus POST of jobs and the storage URLs; API GETs keep its auth, limits and faults."""

    def do_GET(self) -> None:  # noqa: N802 (http.server names)
        if self.path.startswith(STORAGE_PREFIX):
            return self._storage()
        return super().do_GET()

    def do_PUT(self) -> None:  # noqa: N802
        if self.path.startswith(STORAGE_PREFIX):
            return self._storage()
        return self._send(404, NOT_FOUND, {})

    def do_POST(self) -> None:  # noqa: N802
        self.server.requests_served += 1
        body = self._body()
        if urlsplit(self.path).path.rstrip("/") != API_PREFIX:
            return self._send(404, NOT_FOUND, {})
        if self.headers.get("Authorization", "") != f"Bearer {self.server.token}":
            return self._send(401, UNAUTHORIZED, {})
        allowed, headers = self.server.limiter.take("POST " + API_PREFIX)
        if not allowed:
            return self._send(429, TOO_MANY, headers)
        status, answer = self.server.api.compliance.create(body, self.headers.get("Host", ""))
        return self._send(status, answer, headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY))

    def _storage(self) -> None:
        self.server.requests_served += 1
        body = self._body() if self.command == "PUT" else b""
        try:
            status, payload, kind = self.server.api.compliance.storage(self.command, self.path, self.headers.get("Authorization"), body)
        except (KeyError, ValueError):
            status, payload, kind = _xml(404, "NoSuchKey", "The specified key does not exist.")
        self.server.statuses[status] += 1
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
