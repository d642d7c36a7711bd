"""Settings, one `luigi.Config` class per `luigi.cfg` section.

Secrets are never settings: each section names the environment variable (or key file) that
holds its secret, so `luigi.cfg` can be committed and shown in logs. S3 endpoint, region and
the like stay in Luigi's own `[s3]` section, which `luigi.contrib.s3.S3Client` hands to boto3;
S3 credentials come from boto3's usual sources (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
"""

from __future__ import annotations

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
    backoff_factor = luigi.FloatParameter(default=1.0,
                                          description="seconds of the first retry delay; doubles per retry, with jitter")


class pseudonym(luigi.Config):  # noqa: N801
    key_env = luigi.Parameter(default="FLIXLUIGI_HMAC_KEY", description="environment variable that holds the HMAC key")
    key_file = luigi.Parameter(default="", description="file that holds the HMAC key; used when the variable is unset")
