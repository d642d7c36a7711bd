"""`flixluigi metrics` after real runs: a complete day, a stale one, a failed one and missing ones,
read back with prometheus_client's own parser and checked against figures the test reads itself
from the stored raw pages and the curated table."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from luigi.execution_summary import LuigiStatusCode
from prometheus_client.parser import text_string_to_metric_families

from flixluigi import CuratedTweets, cli, work
from flixluigi.errors import SettingsError
from flixluigi.ops import metrics
from flixluigi.ops.status import DayStatus
from tests.conftest import ROOT, free_port
from tests.helpers import build, curated, current_fetch, raw_pages

FIRST, STALE, DONE, FAILED = date(2022, 9, 10), date(2022, 9, 11), date(2022, 9, 12), date(2022, 9, 13)
NOW = datetime(2022, 9, 14, 6, 0, tzinfo=UTC)  # yesterday is FAILED's day


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(name, labels) -> value of every sample, through prometheus_client's parser (which refuses malformed text)."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation, family.name
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _fail(*args: object, **kwargs: object) -> None:
    raise OSError("disk on fire")


def test_totals_latest_day_and_day_states(pipeline, monkeypatch, capsys):
    pipeline.set("sharing", "text", "drop")
    assert build(CuratedTweets(STALE)).status == LuigiStatusCode.SUCCESS
    pipeline.set("sharing", "text", "keep")  # the day built with text dropped is stale now
    assert build(CuratedTweets(DONE)).status == LuigiStatusCode.SUCCESS
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(work, "check_batch", _fail)
        assert build(CuratedTweets(FAILED)).status == LuigiStatusCode.FAILED
    pipeline.set("metrics", "first_day", str(FIRST))

    endpoint = pipeline.seaweed.endpoint
    posts = {day: sum(len(page.get("data", ())) for page in raw_pages(endpoint, current_fetch(endpoint, pipeline.run, day)))
             for day in (STALE, DONE, FAILED)}
    rows = {day: curated(endpoint, pipeline.run, day).num_rows for day in (STALE, DONE)}
    found = samples(metrics.metrics_text(NOW))

    assert found["flixluigi_days", (("state", "complete"),)] == 1
    assert found["flixluigi_days", (("state", "stale"),)] == 1
    assert found["flixluigi_days", (("state", "missing"),)] == 2  # FIRST, and FAILED whose curation failed
    assert found["flixluigi_days", (("state", "failed"),)] == 1
    assert found["flixluigi_posts_read", (("days", "all"),)] == sum(posts.values())
    assert found["flixluigi_posts_read", (("days", "latest"),)] == posts[DONE]
    assert found["flixluigi_rows", (("days", "all"),)] == sum(rows.values())
    assert found["flixluigi_rows", (("days", "latest"),)] == rows[DONE]
    assert found["flixluigi_cost_usd", (("days", "all"),)] > found["flixluigi_cost_usd", (("days", "latest"),)] > 0
    for name in ("fetch_seconds", "curate_seconds"):
        assert found[f"flixluigi_{name}", (("days", "all"),)] >= found[f"flixluigi_{name}", (("days", "latest"),)] > 0
    assert found["flixluigi_last_complete_day_timestamp_seconds", ()] == datetime(2022, 9, 12, tzinfo=UTC).timestamp()
    assert found["flixluigi_last_complete_day_age_seconds", ()] == 30 * 3600  # from the end of 09-12 to 09-14 06:00
    assert len(found) == 2 * len(metrics.FIGURES) + 4 + 2, "totals and the latest day, never a series per day"

    assert cli.main(["metrics"]) == 0  # today's view: every day since 2022-09-14 is missing
    out = capsys.readouterr().out
    assert samples(out)["flixluigi_days", (("state", "complete"),)] == 1
    assert cli.main(["metrics", "--first-day", str(DONE)]) == 0
    assert samples(capsys.readouterr().out)["flixluigi_days", (("state", "stale"),)] == 0

    with Gateway() as gateway:
        assert cli.main(["metrics", "--push", gateway.url]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line == f"pushed {len(samples(out))} samples to {gateway.url}/metrics/job/flixluigi"
    ((path, content_type, pushed),) = gateway.received
    assert (path, content_type) == ("/metrics/job/flixluigi", "text/plain; version=0.0.4")
    pushed_samples, printed = samples(pushed), samples(out)
    age = ("flixluigi_last_complete_day_age_seconds", ())
    assert pushed_samples.pop(age) >= printed.pop(age) and pushed_samples == printed  # the age has grown since
    assert cli.main(["metrics", "--push", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "the Pushgateway at http://127.0.0.1:" in capsys.readouterr().err


class Gateway(ThreadingHTTPServer):
    """Stands in for a Pushgateway: records each PUT (path, content type, body) and answers 200 as it does."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PutHandler)
        self.received: list[tuple[str, str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Gateway:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _PutHandler(BaseHTTPRequestHandler):
    server: Gateway

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.server.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_metrics_need_a_first_day_in_the_past(pipeline, capsys):
    pipeline.set("metrics", "first_day", "")
    with pytest.raises(SettingsError, match=r"^\[metrics\] first_day is not set; set it \(or pass --first-day\) to the first UTC day"):
        metrics.metrics_text(NOW)
    pipeline.set("metrics", "first_day", "2022-09-14")
    with pytest.raises(SettingsError, match=r"^\[metrics\] first_day = 2022-09-14 is not before today \(2022-09-14 UTC\)"):
        metrics.metrics_text(NOW)
    assert cli.main(["metrics", "--first-day", "2022-13-45"]) == 1
    assert capsys.readouterr().err == "flixluigi: [metrics] first_day = '2022-13-45' is not a date; use YYYY-MM-DD, e.g. 2022-09-01\n"


def test_the_readme_alerts_use_only_metrics_that_exist():
    """No Prometheus runs here: the README's alert rules are read as YAML, and every series they name
    must be one `flixluigi metrics` writes (a renamed metric would leave an alert that never fires)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Metrics"):readme.index("### Coming from the MinIO set-up")]
    rules = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1))["groups"][0]["rules"]
    assert len(rules) == 2
    written = {name for name, _ in samples(metrics.render([DayStatus(DONE, "ok", "ok", {"rows": 1}, {"posts_read": 1}, None)], NOW))}
    for rule in rules:
        named = set(re.findall(r"\bflixluigi_\w+", rule["expr"]))
        assert named and named <= written, (rule["alert"], named - written)
        assert rule["annotations"]["summary"]
