"""Every bad input gets one line that names the problem and the fix (fault-injection suite).

Dates, ranges, luigi.cfg values, keys, API payloads (from a canned HTTP server) and S3 set-ups:
each case runs the real code path and checks the message and that it is a single line.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.config
import pytest

from devkit import sandbox
from flixluigi import Reprocess, config
from flixluigi.cli import parse_day
from flixluigi.curation.pseudonym import load_key
from flixluigi.store.s3 import Storage
from flixluigi.tasks import DayParameter
from flixluigi.xapi.client import XClient, day_window
from tests.conftest import free_port

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class Canned(ThreadingHTTPServer):
    """Answers every GET with the status and raw body it is given."""

    daemon_threads = True

    def __init__(self, status: int, body: bytes):
        super().__init__(("127.0.0.1", 0), _CannedHandler)
        self.status, self.body = status, body
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _CannedHandler(BaseHTTPRequestHandler):
    server: Canned

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)


def api_answer(status: int, body: object, call: str = "search") -> Callable[[], object]:
    def run() -> object:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        server = Canned(status, raw)
        try:
            client = XClient(f"http://127.0.0.1:{server.server_address[1]}", "token", max_tries=2, backoff_factor=0.01)
            window = day_window(date(2022, 9, 12), "all")
            if call == "count":
                return client.daily_counts("#FlixBus", date(2022, 9, 12), date(2022, 9, 12))
            return next(client.search("#FlixBus", window))
        finally:
            server.shutdown()
    return run


def setting(section: str, key: str, value: str, check: Callable[[], None] = config.check_settings) -> Callable[[], object]:
    def run() -> object:
        import luigi.configuration
        from luigi.task_register import Register

        cfg = luigi.configuration.get_config()
        had = cfg.has_option(section, key) and cfg.get(section, key)
        if not cfg.has_section(section):
            cfg.add_section(section)
        cfg.set(section, key, value)
        Register.clear_instance_cache()
        try:
            return check()
        finally:
            if had is False:
                cfg.remove_option(section, key)
                if not cfg.options(section):
                    cfg.remove_section(section)
            else:
                cfg.set(section, key, had)
            Register.clear_instance_cache()
    return run


def key_from(env: str | None, file_text: bytes | None, tmp_path) -> Callable[[], object]:
    def run() -> object:
        import os

        os.environ.pop("BAD_INPUT_KEY", None)
        if env is not None:
            os.environ["BAD_INPUT_KEY"] = env
        path = ""
        if file_text is not None:
            (tmp_path / "key").write_bytes(file_text)
            path = str(tmp_path / "key")
        try:
            return load_key("BAD_INPUT_KEY", path)
        finally:
            os.environ.pop("BAD_INPUT_KEY", None)
    return run


def storage(seaweed, bucket: str = "flixluigi-test", endpoint: str | None = None, secret: str | None = None):
    def run() -> object:

        client = boto3.client("s3", endpoint_url=endpoint or seaweed.endpoint, region_name="us-east-1",
                              aws_access_key_id="flixluigi-test", aws_secret_access_key=secret or "flixluigi-test-secret",
                              config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2))
        return Storage(bucket, client).check()
    return run


def replay_of(text: str, tmp_path) -> Callable[[], object]:
    def run() -> object:
        (tmp_path / "rec.jsonl").write_text(text)
        return sandbox.load_pages(tmp_path / "rec.jsonl")
    return run


CASES: list[tuple[str, Callable[..., Callable[[], object]], str]] = [
    # dates and ranges
    ("month 13", lambda t, s: lambda: DayParameter().parse("2022-13-45"), "'2022-13-45' is not a date: use YYYY-MM-DD"),
    ("dotted date", lambda t, s: lambda: DayParameter().parse("12.09.2022"), "'12.09.2022' is not a date"),
    ("cli date", lambda t, s: lambda: parse_day("yesterday"), "'yesterday' is not a date; use YYYY-MM-DD"),
    ("reversed range", lambda t, s: lambda: Reprocess.from_str_params({"start": "2022-09-14", "end": "2022-09-10"}),
     "--end 2022-09-10 is before --start 2022-09-14"),
    ("today", lambda t, s: lambda: day_window(NOW.date(), "all", NOW), "has not ended yet in UTC; a partial day is never stored"),
    ("future", lambda t, s: lambda: day_window(date(2030, 1, 1), "all", NOW), "2030-01-01 has not ended yet"),
    ("old day on recent", lambda t, s: lambda: day_window(date(2022, 9, 12), "recent", NOW), "set [xapi] endpoint = all"),
    ("before twitter", lambda t, s: lambda: day_window(date(2005, 1, 1), "all", NOW), "before the first tweet (2006-03-21)"),
    # luigi.cfg values
    ("max_results low", lambda t, s: setting("xapi", "max_results", "5"), "[xapi] max_results = 5 must be 10..500 for endpoint = all"),
    ("max_results not int", lambda t, s: setting("xapi", "max_results", "many"),
     "[xapi] max_results = 'many' must be a whole number (tweets per page"),
    ("endpoint choice", lambda t, s: setting("xapi", "endpoint", "archive"),
     "[xapi] endpoint = 'archive' must be one of all, recent"),
    ("timeout zero", lambda t, s: setting("xapi", "timeout", "0"), "[xapi] timeout = 0.0 must be more than 0 seconds"),
    ("base_url scheme", lambda t, s: setting("xapi", "base_url", "ftp://x"), "[xapi] base_url = 'ftp://x' must start with http"),
    ("empty query", lambda t, s: setting("xapi", "query", " "), "[xapi] query is empty"),
    ("tolerance", lambda t, s: setting("xapi", "count_tolerance", "1.5"), "[xapi] count_tolerance = 1.5 must be a share"),
    ("reconcile choice", lambda t, s: setting("xapi", "reconcile", "maybe"),
     "[xapi] reconcile = 'maybe' must be one of fail, off, warn"),
    ("bucket name", lambda t, s: setting("storage", "bucket", "My_Bucket"), "[storage] bucket = 'My_Bucket' is not an S3 bucket name"),
    ("same prefixes", lambda t, s: setting("storage", "curated_prefix", "raw/tweets"),
     "raw_prefix, curated_prefix and records_prefix must be non-empty and none inside another"),
    ("nested prefixes", lambda t, s: setting("storage", "records_prefix", "raw/tweets/records"),
     "raw_prefix, curated_prefix and records_prefix must be non-empty and none inside another"),
    ("misspelt key", lambda t, s: setting("xapi", "endpont", "all", config.check_names),
     "[xapi] has no setting 'endpont'; did you mean 'endpoint'?"),
    ("days retry_delay unit", lambda t, s: setting("days", "retry_delay", "30s"),
     "[days] retry_delay = '30s' must be a number (no unit) (seconds between those tries)"),
    ("misspelt section", lambda t, s: setting("xpai", "base_url", "https://api.x.com", config.check_names),
     "luigi.cfg has an unknown section [xpai]; did you mean [xapi]?"),
    ("day tries", lambda t, s: setting("days", "tries", "0"), "[days] tries = 0 must be at least 1"),
    ("notify timeout", lambda t, s: setting("notify", "timeout", "-1"), "[notify] timeout = -1.0 must be more than 0"),
    # HMAC keys
    ("no key", lambda t, s: key_from(None, None, t), "no HMAC key: set $BAD_INPUT_KEY"),
    ("short key", lambda t, s: key_from("short", None, t), "is 5 bytes, needs at least 32"),
    ("empty key file", lambda t, s: key_from(None, b"\n", t), "is 0 bytes, needs at least 32"),
    # API payloads
    ("JSON array", lambda t, s: api_answer(200, [1, 2]), "answered with JSON that is not an object"),
    ("no meta", lambda t, s: api_answer(200, {"data": []}), "/2/tweets/search/all answered a page without meta/data lists"),
    ("data not a list", lambda t, s: api_answer(200, {"data": {}, "meta": {}}), "answered a page without meta/data lists"),
    ("counts without buckets", lambda t, s: api_answer(200, {"data": [{"end": "x"}]}, "count"),
     "/2/tweets/counts/all answered a bucket without start/tweet_count"),
    ("not JSON", lambda t, s: api_answer(200, b"<html>gateway</html>"),
     "/2/tweets/search/all: the API answered HTML, not JSON: a proxy, or a wrong [xapi] base_url?"),
    ("400", lambda t, s: api_answer(400, {"title": "Invalid Request", "errors": [{"message": "bad query"}]}),
     "X API refused the request (HTTP 400: Invalid Request - bad query)"),
    ("403", lambda t, s: api_answer(403, {"title": "Forbidden", "detail": "client-not-enrolled"}),
     "X API rejected the bearer token (HTTP 403: Forbidden - client-not-enrolled)"),
    ("418", lambda t, s: api_answer(418, {"title": "Teapot"}), "unexpected HTTP 418"),
    ("usage cap", lambda t, s: api_answer(429, {"type": "https://api.twitter.com/2/problems/usage-capped", "title": "UsageCapExceeded"}),
     "X API usage cap reached (UsageCapExceeded)"),
    # S3 set-ups
    ("missing bucket", lambda t, s: storage(s, bucket="no-such-bucket"), "S3 bucket 'no-such-bucket' does not exist"),
    ("wrong secret", lambda t, s: storage(s, secret="wrong"), "refused the credentials"),
    ("no S3 there", lambda t, s: storage(s, endpoint=f"http://127.0.0.1:{free_port()}"), "is unreachable; start it"),
    # recorded pages
    ("replay not JSON", lambda t, s: replay_of('{"data": []}\nnot json\n', t), "rec.jsonl:2: not a JSON page"),
]


@pytest.mark.faults
@pytest.mark.parametrize("name, make, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(name, make, message, tmp_path, seaweed):
    with pytest.raises(Exception) as caught:
        make(tmp_path, seaweed)()
    text = str(caught.value)
    assert message in text, text
    assert "\n" not in text and len(text) < 400
