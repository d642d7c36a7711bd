"""Settings, one `luigi.Config` class per `luigi.cfg` section.

Secrets are never settings: each section names the environment variable (or key file) that
holds its secret, so `luigi.cfg` can be committed and shown in logs. S3 endpoint, region and
the like stay in Luigi's own `[s3]` section, which `luigi.contrib.s3.S3Client` hands to boto3;
S3 credentials come from boto3's usual sources (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
import sys
from pathlib import Path

import luigi
import luigi.configuration

from flixluigi.errors import SettingsError, first_line
from flixluigi.xapi.client import search_limits

# note_tweet: the full text of a long post (`text` is cut at 280); edit_history_tweet_ids: its edit chain.
DEFAULT_TWEET_FIELDS = ("attachments,author_id,conversation_id,created_at,edit_history_tweet_ids,entities,geo,id,"
                        "in_reply_to_user_id,lang,note_tweet,possibly_sensitive,public_metrics,referenced_tweets,"
                        "reply_settings,source,text")
DEFAULT_USER_FIELDS = "created_at,id,location,name,public_metrics,username,verified"
DEFAULT_EXPANSIONS = "author_id,in_reply_to_user_id,referenced_tweets.id,referenced_tweets.id.author_id,entities.mentions.username"


class storage(luigi.Config):  # noqa: N801 - Luigi maps the class name to the [storage] section
    bucket = luigi.Parameter(default="flixluigi", description="S3 bucket that holds every object of the pipeline")
    raw_prefix = luigi.Parameter(default="raw/tweets", description="key prefix of the raw fetches and their pointers")
    curated_prefix = luigi.Parameter(default="curated/tweets", description="key prefix of the curated Delta table")
    records_prefix = luigi.Parameter(default="records", description="key prefix of day records and failure markers")
    raw_codec = luigi.ChoiceParameter(choices=["zst", "gz"], default="zst",
                                      description="codec of new raw fetches: zstd (fast) or gzip; stored fetches keep theirs")
    conditional_put = luigi.Parameter(default="etag", description="delta-rs conditional_put: 'etag' for MinIO and SeaweedFS, "
                                                                   "empty for AWS S3's native conditional writes")
    s3_max_attempts = luigi.IntParameter(default=6, description="attempts per S3 request (botocore standard retry mode)")
    keep_versions_days = luigi.IntParameter(default=30, description="flixluigi vacuum keeps superseded table files and "
                                                                    "raw fetches this many days")
    min_file_age_hours = luigi.IntParameter(default=24, description="flixluigi vacuum never deletes files younger than "
                                                                    "this (a running writer's uncommitted files)")


class days(luigi.Config):  # noqa: N801
    tries = luigi.IntParameter(default=3, description="tries of a day's work when it fails in a way a retry can mend")
    retry_delay = luigi.FloatParameter(default=30.0, description="seconds between those tries")


class xapi(luigi.Config):  # noqa: N801
    base_url = luigi.Parameter(default="https://api.x.com", description="X API root; the sandbox's URL in demos and tests")
    token_env = luigi.Parameter(default="X_BEARER_TOKEN", description="environment variable that holds the app-only bearer token")
    query = luigi.Parameter(default="#FlixBus", description="search query of every day")
    endpoint = luigi.ChoiceParameter(choices=["recent", "all"], default="all",
                                     description="'recent' (last 7 days, every tier) or 'all' (full archive, Pro and up)")
    max_results = luigi.IntParameter(default=0, description="tweets per page: 0 for the most the endpoint allows with the "
                                     "fields asked (500 for all, 100 for recent or with context_annotations); else 10 up to that")
    chain_posts = luigi.IntParameter(default=5000, description="consecutive missing days of a Backfill whose stored "
                                     "counts are each below a page are fetched as one request chain of up to this many expected posts "
                                     "(5,000: ten full pages); 0 fetches every day alone")
    tweet_fields = luigi.Parameter(default=DEFAULT_TWEET_FIELDS, description="tweet.fields requested")
    user_fields = luigi.Parameter(default=DEFAULT_USER_FIELDS, description="user.fields requested")
    expansions = luigi.Parameter(default=DEFAULT_EXPANSIONS, description="expansions requested")
    timeout = luigi.FloatParameter(default=30.0, description="seconds to wait for one HTTP answer")
    max_tries = luigi.IntParameter(default=8, description="attempts per page before a transient fault fails the day")
    retry_budget = luigi.IntParameter(default=24, description="retries of one fetch's requests together: the day's one "
                                      "retry budget for the API ([days] tries never retry an API fault again)")
    idle_pages = luigi.IntParameter(default=20, description="search pages in a row that add no new post before paging is "
                                    "stopped and the day fails")
    page_slack = luigi.FloatParameter(default=3.0, description="a fetch may take this many times the pages its expected "
                                      "posts need (from the month's counts), plus 10, before it is stopped")
    deadline_base = luigi.FloatParameter(default=600.0, description="seconds a day's fetch may take besides the API's "
                                         "announced rate-limit waits, plus deadline_per_page per expected page")
    max_rejections = luigi.IntParameter(default=3, description="fetches of a day refused in a row (a wrong page, paging "
                                        "without end) after which it is not fetched again until Reprocess --refetch")
    deadline_per_page = luigi.FloatParameter(default=5.0, description="seconds added to a fetch's deadline per expected page")
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
    min_interval_all = luigi.FloatParameter(default=1.0,
                                            description="seconds between an answer of full-archive search and the next "
                                                        "request (the API's 1 request/s per app); waited before the first too")
    min_interval_recent = luigi.FloatParameter(default=0.0,
                                               description="seconds between an answer of recent search and the next request")
    price_per_post = luigi.FloatParameter(default=0.005,
                                          description="USD billed per post read (the same post read twice in a UTC day: once)")
    price_per_count_request = luigi.FloatParameter(default=0.01, description="USD billed per counts request")
    monthly_post_budget = luigi.IntParameter(default=0,
                                             description="posts the app may read per billing month; 0 = no budget")


class compliance(luigi.Config):  # noqa: N801
    purge_after_hours = luigi.IntParameter(default=24, description="older versions and raw fetches that still hold removed "
                                                                   "posts are deleted this many hours after a compliance run")
    poll_interval = luigi.FloatParameter(default=30.0, description="seconds between polls of a compliance job")
    poll_timeout = luigi.FloatParameter(default=6 * 3600.0, description="longest wait for a compliance job, in seconds")
    max_ids_per_job = luigi.IntParameter(default=100_000, description="ids per compliance job (the API's limit: 100,000)")


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


class console(luigi.Config):  # noqa: N801
    """The web console (`flixluigi console`): where it keeps its runs, whom it asks, what it shows."""

    token_env = luigi.Parameter(default="FLIXLUIGI_CONSOLE_TOKEN",
                                description="environment variable that holds the console's access token; unset: it will not start")
    state_dir = luigi.Parameter(default="", description="folder of the console's runs and audit log; empty: "
                                                        "$XDG_STATE_HOME/flixluigi-console (~/.local/state/flixluigi-console)")
    scheduler_url = luigi.Parameter(default="", description="luigid that runs are started against and asked which days "
                                                            "run; empty: [core] scheduler_host and scheduler_port")
    compliance_due_hours = luigi.FloatParameter(default=24.0, description="a stored day not checked by Compliance within "
                                                "this many hours of its fetch or last check is shown as compliance due; 0: never")
    triggers_per_minute = luigi.IntParameter(default=6, description="runs the console starts per minute at most, whoever asks")
    workers = luigi.IntParameter(default=1, description="--workers of the runs the console starts")


class summary(luigi.Config):  # noqa: N801
    json_file = luigi.Parameter(default="", description="file each `luigi` run writes its summary to, as the JSON line "
                                                        "it prints (for monitoring); empty: printed only")


class metrics(luigi.Config):  # noqa: N801
    """`flixluigi metrics`: the pipeline's figures for Prometheus."""

    first_day = luigi.Parameter(default="", description="`flixluigi metrics` counts days missing from this UTC "
                                                                       "day (YYYY-MM-DD) through yesterday; required by it")


SECTIONS: tuple[type[luigi.Config], ...] = (storage, days, xapi, pseudonym, notify, compliance, sharing, console, summary,
                                           metrics)
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def page_size() -> int:
    """[xapi] max_results, or (0) the most the endpoint allows with the fields asked: a backfill waits
    for requests (300 per 15 minutes on the full archive), so fewer, fuller pages are its wall time."""
    x = xapi()
    return x.max_results or search_limits(x.endpoint, x.tweet_fields)[1]


def _load(section: type[luigi.Config]) -> luigi.Config:
    try:
        return section()
    except Exception as exc:  # Luigi's own parse error names neither the key nor its value
        raise _unreadable(section, exc) from None


def _expected(param: luigi.Parameter) -> str:
    """What a parameter's value must look like, for the fix of a value that does not."""
    if isinstance(param, luigi.ChoiceParameter):
        return "one of " + ", ".join(sorted(map(str, param._choices)))
    if isinstance(param, luigi.IntParameter):
        return "a whole number"
    if isinstance(param, luigi.FloatParameter):
        return "a number (no unit)"
    if isinstance(param, luigi.BoolParameter):
        return "true or false"
    return "a valid value"


def _unreadable(section: type[luigi.Config], exc: Exception) -> SettingsError:
    """The key of the section whose value Luigi could not parse: its file, value and what it must be."""
    cfg, name = luigi.configuration.get_config(), section.__name__
    for key, param in section.get_params():
        if cfg.has_option(name, key):
            value = cfg.get(name, key)
            try:
                param.parse(value)
            except Exception:
                return SettingsError(f"{file_of(name, key)} [{name}] {key} = {value!r} must be {_expected(param)} "
                                     f"({param.description})")
    return SettingsError(f"{file_of(name)} [{name}] is invalid: {first_line(exc)}")


def file_of(section: str, key: str | None = None) -> str:
    """The settings file whose value of the key (or section) is in force (the last read that has it),
    so a message names the file to edit; "luigi.cfg" when set otherwise."""
    for path in reversed(user_config_files()):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error:
            continue
        if parser.has_section(section) and (key is None or parser.has_option(section, key)):
            return path
    return "luigi.cfg"


def check_settings() -> None:
    """Every section parses and every value can work, before any work starts."""
    s, d, x, _, n, c, *_ = (_load(section) for section in SECTIONS)
    limits = search_limits(x.endpoint, x.tweet_fields)
    annotated = " with context_annotations in tweet_fields" if limits != search_limits(x.endpoint) else ""
    problems = [
        (not BUCKET_RE.match(s.bucket), f"[storage] bucket = {s.bucket!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)"),
        (not _disjoint([s.raw_prefix, s.curated_prefix, s.records_prefix]),
         "[storage] raw_prefix, curated_prefix and records_prefix must be non-empty and none inside another"),
        (s.s3_max_attempts < 1, f"[storage] s3_max_attempts = {s.s3_max_attempts} must be at least 1"),
        (s.keep_versions_days < 0 or s.min_file_age_hours < 0,
         "[storage] keep_versions_days and min_file_age_hours must not be negative"),
        (d.tries < 1 or d.retry_delay < 0, f"[days] tries = {d.tries} must be at least 1 and retry_delay not negative"),
        (not x.base_url.startswith(("http://", "https://")), f"[xapi] base_url = {x.base_url!r} must start with http:// or https://"),
        (not x.query.strip(), "[xapi] query is empty; set it to the search query, e.g. #FlixBus"),
        (x.max_results != 0 and not limits[0] <= x.max_results <= limits[1],
         f"[xapi] max_results = {x.max_results} must be {limits[0]}..{limits[1]} for endpoint = {x.endpoint}{annotated}, "
         "or 0 for the most allowed"),
        (x.timeout <= 0, f"[xapi] timeout = {x.timeout} must be more than 0 seconds"),
        (x.max_tries < 1 or x.retry_budget < 0 or x.idle_pages < 1 or x.max_rejections < 1,
         f"[xapi] max_tries = {x.max_tries}, idle_pages = {x.idle_pages} and max_rejections = {x.max_rejections} "
         f"must be at least 1, retry_budget = "
         f"{x.retry_budget} not negative"),
        (x.page_slack < 1 or x.deadline_base <= 0 or x.deadline_per_page < 0,
         f"[xapi] page_slack = {x.page_slack} must be at least 1, deadline_base = {x.deadline_base} more than 0 and "
         f"deadline_per_page = {x.deadline_per_page} not negative"),
        (x.max_rate_limit_wait < 0, f"[xapi] max_rate_limit_wait = {x.max_rate_limit_wait} must not be negative"),
        (not 0 <= x.count_tolerance < 1, f"[xapi] count_tolerance = {x.count_tolerance} must be a share from 0 to below 1"),
        (x.backoff_factor < 0, f"[xapi] backoff_factor = {x.backoff_factor} must not be negative"),
        (x.min_interval_all < 0 or x.min_interval_recent < 0,
         f"[xapi] min_interval_all = {x.min_interval_all} and min_interval_recent = {x.min_interval_recent} must not be negative"),
        (x.price_per_post < 0 or x.price_per_count_request < 0,
         f"[xapi] price_per_post = {x.price_per_post} and price_per_count_request = {x.price_per_count_request} "
         "must not be negative"),
        (x.monthly_post_budget < 0, f"[xapi] monthly_post_budget = {x.monthly_post_budget} must be 0 (no budget) or more"),
        (n.timeout <= 0, f"[notify] timeout = {n.timeout} must be more than 0 seconds"),
        (c.purge_after_hours < 0 or c.poll_interval < 0 or c.poll_timeout <= 0 or not 1 <= c.max_ids_per_job <= 100_000,
         "[compliance] purge_after_hours and poll_interval must not be negative, poll_timeout more than 0, "
         "max_ids_per_job 1..100000"),
    ]
    for failed, message in problems:
        if failed:
            where = re.match(r"\[(\w+)\](?: (\w+))?", message)
            raise SettingsError(f"{file_of(where.group(1), where.group(2))} {message}")


def _disjoint(prefixes: list[str]) -> bool:
    parts = [p.strip("/") + "/" for p in prefixes]
    return all(p != "/" for p in parts) and not any(a.startswith(b) for a in parts for b in parts if a is not b)


# The package's own settings, read before any user file: without them a `luigi` run from another
# directory (cron) would exit 0 on failure, clip ranges to 100 days and keep a failed run waiting.
DEFAULTS = Path(__file__).with_name("defaults.cfg")
# Sections of luigi and of the pipeline whose keys are checked ("did you mean").
KNOWN_SECTIONS = {"core", "worker", "scheduler", "retcode", "resources", "RangeDaily", "RangeBase", "RangeHourly", "email",
                  "smtp", "sendgrid", "batch_email", "execution_summary", "task_history", "logging", "s3", "hdfs", "spark",
                  "cors", "webhdfs", "DEFAULT"}


def install_defaults() -> None:
    """Put the package's defaults first in Luigi's config search path, so every user file wins over them."""
    parser = luigi.configuration.LuigiConfigParser
    if str(DEFAULTS) not in parser._config_paths:
        parser._config_paths.insert(0, str(DEFAULTS))
        if parser._instance is not None:
            parser.reload()


def user_config_files() -> list[str]:
    """The configuration files Luigi found besides the package's defaults."""
    parser = luigi.configuration.LuigiConfigParser
    return [path for path in parser._config_paths if path != str(DEFAULTS) and os.path.isfile(path)]


# boto3's client arguments: every key of Luigi's [s3] section is passed to it (store.s3.s3_options).
S3_KEYS = ("endpoint_url", "region_name", "use_ssl", "verify", "api_version", "aws_access_key_id", "aws_secret_access_key",
           "aws_session_token", "aws_account_id")
_settings_checked = False


def check_files() -> None:
    """A settings file is found, and LUIGI_CONFIG_PATH names one that exists (Luigi skips it silently)."""
    named = os.environ.get("LUIGI_CONFIG_PATH", "")
    if named and not os.path.isfile(named):
        raise SettingsError(f"LUIGI_CONFIG_PATH names {named}, which does not exist; fix the path or unset it and run "
                            "from the project directory (its luigi.cfg)")
    if not user_config_files():
        raise SettingsError("no luigi.cfg found: run from the project directory or set LUIGI_CONFIG_PATH "
                            "to the project's luigi.cfg")


def check_all() -> None:
    """Every settings check that needs no I/O: files, names, values."""
    check_files()
    check_names()
    check_settings()


def require_settings() -> None:
    """The settings checks, once per process, before its first S3 request (`Storage.from_config`).

    Not a gate task: Luigi calls `complete()` while it schedules, before any task runs, and a day's
    completeness is read from S3 (CONVENTIONS.md, house rule 5). A run without settings reached AWS S3
    itself with whatever keys the environment held, and took seconds of warnings to refuse."""
    global _settings_checked
    if not _settings_checked:
        check_all()
        _settings_checked = True


def refuse_bad_settings_under_luigi() -> None:
    """Under `luigi --module flixluigi`, at import: bad settings end the command at once with exit 2
    and one line (file, section, key, value, fix) before Luigi schedules anything."""
    if Path(sys.argv[0]).name != "luigi" and not sys.argv[0].endswith(os.path.join("luigi", "__main__.py")):
        return
    try:
        require_settings()
    except SettingsError as error:
        from flixluigi import runs

        runs.record_failure(f"settings refused: {error} (fix: {error.hint})")
        raise SystemExit(2) from None


def check_names() -> None:
    """Unknown keys in the pipeline's sections, and sections that look like misspelt ones, fail with a
    'did you mean' instead of being ignored (a misspelt [xapi] would send the token to the real API)."""
    cfg = luigi.configuration.get_config()
    ours = {section.__name__: section for section in SECTIONS}
    for name in cfg.sections():
        if name in ours:
            known = set(ours[name].get_param_names())
            for key in cfg.options(name):
                if key not in known and key not in cfg.defaults():
                    guess = difflib.get_close_matches(key, sorted(known), n=1)
                    raise SettingsError(f"{file_of(name, key)} [{name}] has no setting {key!r}" +
                                        (f"; did you mean {guess[0]!r}?" if guess else f"; known: {', '.join(sorted(known))}"))
        elif name == "s3":
            for key in cfg.options(name):
                if key not in S3_KEYS and key not in cfg.defaults():
                    guess = difflib.get_close_matches(key.replace("-", "_"), S3_KEYS, n=1)
                    raise SettingsError(f"{file_of(name, key)} [s3] has {key!r}, which boto3 does not take" +
                                        (f"; did you mean {guess[0]!r}?" if guess else f"; it takes: {', '.join(S3_KEYS)}"))
        elif name not in KNOWN_SECTIONS and (guess := difflib.get_close_matches(name, sorted(ours), n=1, cutoff=0.7)):
            raise SettingsError(f"{file_of(name)} has an unknown section [{name}]; did you mean [{guess[0]}]?")
