"""Settings, one `luigi.Config` class per `luigi.cfg` section.

Secrets are never settings: each section names the environment variable (or key file) that
holds its secret, so `luigi.cfg` can be committed and shown in logs. S3 endpoint, region and
the like stay in Luigi's own `[s3]` section, which `luigi.contrib.s3.S3Client` hands to boto3;
S3 credentials come from boto3's usual sources (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
"""

from __future__ import annotations

import re

import luigi

DEFAULT_TWEET_FIELDS = ("attachments,author_id,conversation_id,created_at,entities,geo,id,in_reply_to_user_id,lang,"
                        "possibly_sensitive,public_metrics,referenced_tweets,reply_settings,source,text")
DEFAULT_USER_FIELDS = "created_at,id,location,name,public_metrics,username,verified"
DEFAULT_EXPANSIONS = "author_id,in_reply_to_user_id,referenced_tweets.id,referenced_tweets.id.author_id,entities.mentions.username"


class storage(luigi.Config):  # noqa: N801 - Luigi maps the class name to the [storage] section
    bucket = luigi.Parameter(default="flixluigi", description="S3 bucket that holds every object of the pipeline")
    raw_prefix = luigi.Parameter(default="raw/tweets", description="key prefix of the raw day partitions")
    curated_prefix = luigi.Parameter(default="curated/tweets", description="key prefix of the curated day partitions")
    archive_prefix = luigi.Parameter(default="archive", description="key prefix where reprocessing keeps replaced days")


class xapi(luigi.Config):  # noqa: N801
    base_url = luigi.Parameter(default="https://api.x.com", description="X API root; the sandbox's URL in demos and tests")
    token_env = luigi.Parameter(default="X_BEARER_TOKEN", description="environment variable that holds the app-only bearer token")
    query = luigi.Parameter(default="#FlixBus", description="search query of every day")
    endpoint = luigi.ChoiceParameter(choices=["recent", "all"], default="all",
                                     description="'recent' (last 7 days, every tier) or 'all' (full archive, Pro and up)")
    max_results = luigi.IntParameter(default=100, description="tweets per page: 10..100 for recent, 10..500 for all")
    tweet_fields = luigi.Parameter(default=DEFAULT_TWEET_FIELDS, description="tweet.fields requested")
    user_fields = luigi.Parameter(default=DEFAULT_USER_FIELDS, description="user.fields requested")
    expansions = luigi.Parameter(default=DEFAULT_EXPANSIONS, description="expansions requested")
    timeout = luigi.FloatParameter(default=30.0, description="seconds to wait for one HTTP answer")
    max_tries = luigi.IntParameter(default=8, description="attempts per page before a transient fault fails the day")
    max_rate_limit_wait = luigi.FloatParameter(default=960.0,
                                               description="longest wait, in seconds, for a rate-limit window to reset")
    reconcile = luigi.ChoiceParameter(choices=["warn", "fail", "off"], default="warn",
                                      description="after a fetch, compare with the counts endpoint: warn, fail the day, or skip")
    count_tolerance = luigi.FloatParameter(default=0.01,
                                           description="share of the expected count a fetch may differ by before reconcile acts")
    empty_day = luigi.ChoiceParameter(choices=["fail", "warn"], default="fail",
                                      description="a day with no tweet: fail it (stays missing, retried) or publish it empty and warn")
    long_wait_warning = luigi.FloatParameter(default=300.0,
                                             description="rate-limit waits longer than this (seconds) raise a warning notification")
    backoff_factor = luigi.FloatParameter(default=1.0,
                                          description="seconds of the first retry delay; doubles per retry, with jitter")


class pseudonym(luigi.Config):  # noqa: N801
    key_env = luigi.Parameter(default="FLIXLUIGI_HMAC_KEY", description="environment variable that holds the HMAC key")
    key_file = luigi.Parameter(default="", description="file that holds the HMAC key; used when the variable is unset")


class sharing(luigi.Config):  # noqa: N801
    """What a curated day shares besides its pseudonymised users (docs/privacy.md); recorded with each day."""

    tweet_ids = luigi.ChoiceParameter(choices=["keep", "pseudonymise"], default="keep",
                                      description="tweet, conversation and referenced tweet ids as the API gives them, "
                                                  "or pseudonymised with the users' HMAC key in a domain of their own")
    text = luigi.ChoiceParameter(choices=["keep", "drop"], default="keep",
                                 description="the scrubbed tweet text, or none (the column is null)")
    author_location = luigi.ChoiceParameter(choices=["keep", "drop"], default="keep",
                                            description="the scrubbed profile location, or none (the column is null)")


class notify(luigi.Config):  # noqa: N801
    slack_webhook_env = luigi.Parameter(default="FLIXLUIGI_SLACK_WEBHOOK",
                                        description="environment variable with a Slack incoming-webhook URL; unset: no Slack")
    webhook_env = luigi.Parameter(default="FLIXLUIGI_WEBHOOK",
                                  description="environment variable with a URL that receives JSON events; unset: none")
    timeout = luigi.FloatParameter(default=3.0, description="seconds a notification may take before it is given up (logged)")
    scheduler_url = luigi.Parameter(default="", description="luigid web view URL for links in messages; empty: taken from "
                                                            "the `luigi` command line's scheduler options")


class SettingsError(ValueError):
    """A luigi.cfg value that cannot work; the message names the section, key and fix."""


SECTIONS: tuple[type[luigi.Config], ...] = (storage, xapi, pseudonym, notify, sharing)
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _load(section: type[luigi.Config]) -> luigi.Config:
    try:
        return section()
    except Exception as exc:  # Luigi's own parse errors: keep their detail, name the section
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SettingsError(f"luigi.cfg [{section.__name__}] is invalid: {detail}") from None


def check_settings() -> None:
    """Every section parses and every value can work, before any work starts."""
    s, x, _, n, _ = (_load(section) for section in SECTIONS)
    limits = {"recent": (10, 100), "all": (10, 500)}[x.endpoint]
    problems = [
        (not BUCKET_RE.match(s.bucket), f"[storage] bucket = {s.bucket!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)"),
        (len({s.raw_prefix.strip('/'), s.curated_prefix.strip('/'), s.archive_prefix.strip('/')}) < 3
         or not all(p.strip("/") for p in (s.raw_prefix, s.curated_prefix, s.archive_prefix)),
         "[storage] raw_prefix, curated_prefix and archive_prefix must be three different non-empty prefixes"),
        (not x.base_url.startswith(("http://", "https://")), f"[xapi] base_url = {x.base_url!r} must start with http:// or https://"),
        (not x.query.strip(), "[xapi] query is empty; set it to the search query, e.g. #FlixBus"),
        (not limits[0] <= x.max_results <= limits[1],
         f"[xapi] max_results = {x.max_results} must be {limits[0]}..{limits[1]} for endpoint = {x.endpoint}"),
        (x.timeout <= 0, f"[xapi] timeout = {x.timeout} must be more than 0 seconds"),
        (x.max_tries < 1, f"[xapi] max_tries = {x.max_tries} must be at least 1"),
        (x.max_rate_limit_wait < 0, f"[xapi] max_rate_limit_wait = {x.max_rate_limit_wait} must not be negative"),
        (not 0 <= x.count_tolerance < 1, f"[xapi] count_tolerance = {x.count_tolerance} must be a share from 0 to below 1"),
        (x.backoff_factor < 0, f"[xapi] backoff_factor = {x.backoff_factor} must not be negative"),
        (n.timeout <= 0, f"[notify] timeout = {n.timeout} must be more than 0 seconds"),
    ]
    for failed, message in problems:
        if failed:
            raise SettingsError(f"luigi.cfg {message}")
