"""Every error flixluigi raises, and the one protocol they share.

An error's message is one line that names the problem; its class says whether a later try can
mend it (`transient`: only those are retried) and what an operator should do (`hint`). The hint
travels with the error, so the run's last lines, the failure markers, notifications and the
report all read it from the error itself. Classes keep the built-in base a caller may already
catch (`ValueError`, `LookupError`). No imports: every module may raise these.
"""

from __future__ import annotations

RERUN = "fix the cause and rerun the same command; complete days are skipped"
DAY_PLACEHOLDER = "{day}"  # in a hint: the failed day, filled in by `hint_of` (a hint is a command that works as printed)
MAX_LINE = 500


class FlixluigiError(Exception):
    """Base of every flixluigi error. `hint=` overrides the class's hint for one instance."""

    transient: bool = False
    hint: str = RERUN
    per_run: bool = False  # about the whole account, not one task: notified once per run, whichever tasks meet it

    def __init__(self, *args: object, hint: str | None = None):
        super().__init__(*args)
        if hint is not None:
            self.hint = hint


def first_line(exception: BaseException) -> str:
    """The error on one line (whitespace folded, at most MAX_LINE characters), or its class name."""
    return (" ".join(str(exception).split()) or type(exception).__name__)[:MAX_LINE]


def hint_of(exception: BaseException | None, day: object = None) -> str:
    """What to do about an error, with the failed day in its commands; a foreign one (a bug, a
    library's) gets the generic rerun."""
    hint = exception.hint if isinstance(exception, FlixluigiError) else RERUN
    return hint.replace(DAY_PLACEHOLDER, str(day) if day else "YYYY-MM-DD")


def is_transient(exception: BaseException) -> bool:
    return isinstance(exception, FlixluigiError) and exception.transient


# Settings, secrets and inputs.

class SettingsError(FlixluigiError, ValueError):
    """A luigi.cfg value that cannot work; the message names the section, key and fix."""

    transient = False
    hint = "correct the settings file the message names, then rerun"


class HmacKeyError(FlixluigiError, ValueError):
    """The HMAC key is missing or unusable; the message says how to provide one."""

    transient = False
    hint = "provide the HMAC key ($FLIXLUIGI_HMAC_KEY or [pseudonym] key_file), then rerun"


class InvalidRange(FlixluigiError, ValueError):
    """A range of days that ends before it starts: the same command fails again."""

    transient = False
    hint = "give the range oldest day first (swap --start and --end)"


class InvalidDate(FlixluigiError, ValueError):
    """A day on the command line that is not a date."""

    transient = False
    hint = "write the day as YYYY-MM-DD, e.g. 2022-09-12"


class ConsoleError(FlixluigiError, ValueError):
    """A request the web console refuses: a bad input, a range already running, a trigger too many."""

    transient = False
    hint = "correct the request as the message says"


class RunRefused(ConsoleError):
    """A trigger over days that are already running (in luigid, or in another run of the console)."""

    transient = False
    hint = "wait for the running run to end, or cancel it"


class TooManyTriggers(ConsoleError):
    """More triggers than [console] triggers_per_minute allows."""

    transient = False
    hint = "wait a minute, or raise [console] triggers_per_minute"


class SchedulerUnreachable(FlixluigiError):
    """luigid does not answer: the console cannot tell which days are running, so it starts nothing."""

    transient = False  # the console never retries it: the operator asks again
    hint = "start luigid (scripts/luigid.sh start) or fix [console] scheduler_url, then retry"


# The X API (search, counts, usage).

class XApiError(FlixluigiError):
    """A failure of the API or of its use."""

    transient = False


class DayNotServable(XApiError, ValueError):
    """A day the endpoint cannot serve whole (not over yet, outside its window, before the first
    post): the same command fails again; the instance's hint says what to give instead."""

    transient = False


class ApiUnreachable(XApiError):
    """Nothing listens at the base URL: a setting or a service to start, not a blip."""

    transient = False
    hint = "start the X API (the sandbox: scripts/sandbox.sh start) or fix [xapi] base_url, then rerun"


class Unauthorized(XApiError):
    """401/403: the token is wrong or lacks access."""

    transient = False
    hint = "renew the bearer token in the variable named by [xapi] token_env, then rerun"


class InvalidRequest(XApiError):
    """Any 4xx but 429: the request itself is wrong; retrying sends the same request."""

    transient = False
    hint = "correct what the API refused ([xapi] query, fields or base_url), then rerun"


class UsageCapped(XApiError):
    """429 with the usage-cap problem type: no post can be read until the billing period turns."""

    transient = False
    per_run = True
    hint = "the plan's monthly cap is spent: wait for the next period or raise the cap"


class CreditsDepleted(XApiError):
    """HTTP 402 CreditsDepleted: the pay-per-use account is out of credits; waiting never clears it."""

    transient = False
    per_run = True
    hint = "buy credits for the app's account (developer console), then rerun"


class RateLimited(XApiError):
    """The rate limit did not lift within the waits the settings allow."""

    transient = False


class MalformedResponse(XApiError):
    """An answer that is not the X API's shape, or paging that would not end: refused where it enters."""

    transient = False
    page: dict | None = None  # the refused page as the API sent it (plus request metadata), when it was JSON


class TransientFault(XApiError):
    """Worth retrying: 5xx, time-outs, dropped connections, bodies that are not complete JSON."""

    transient = True
    hint = "the API kept failing after every retry; rerun later"


class RetriesExhausted(XApiError):
    """The client spent its retry budget on transient faults: the day's one budget, not retried again in the run."""

    transient = False
    hint = "the API kept failing after every retry; rerun later"


class FetchDeadline(XApiError):
    """A fetch ran past its deadline (announced rate-limit waits left out): the API is too slow or pages without end."""

    transient = False


class RejectedTooOften(XApiError):
    """The day's last fetches in a row were all refused; fetching again would be billed again."""

    transient = False
    hint = "inspect the rejected fetch (flixluigi verify notes it), then: luigi --module flixluigi Reprocess --start {day} --refetch"


class OverBudget(XApiError):
    """The day would take the month past its post budget; waiting or a bigger budget mends it."""

    transient = False


# The batch compliance client: each also is the X API error of its kind (`except Unauthorized`
# catches both clients' token errors).

class ComplianceError(XApiError):
    """A failure of a compliance job or of its use."""

    transient = False


class ComplianceFault(ComplianceError, TransientFault):
    """5xx, time-outs, dropped connections, cut downloads: retried per request."""

    transient = True


class ComplianceUnreachable(ComplianceError, ApiUnreachable):
    transient = False


class ComplianceUnauthorized(ComplianceError, Unauthorized):
    transient = False


class ComplianceRefused(ComplianceError, InvalidRequest):
    transient = False


class ComplianceMalformed(ComplianceError, MalformedResponse):
    transient = False


class JobFailed(ComplianceError):
    """The job ended `failed` or `expired`, or did not finish in time: a new job may succeed."""

    transient = True

    def __init__(self, message: str, job_id: str, status: str):
        super().__init__(message)
        self.job_id, self.status = job_id, status


class ComplianceDataError(FlixluigiError, ValueError):
    """Compliance results or a ledger that cannot be applied."""

    transient = False


# S3 and the Delta table.

class StorageError(FlixluigiError):
    """S3 is unreachable, the bucket is missing, or credentials are refused."""

    transient = False
    hint = "check the S3 endpoint, bucket and credentials ([s3], [storage], AWS_* variables), then rerun"


class S3CheckFailed(StorageError):
    """`flixluigi s3check` found the S3 server lacking something the pipeline relies on; the message says what."""

    transient = False  # the server or a setting must change; running the check again changes nothing
    hint = "change the setting or the server as the message says, then run flixluigi s3check again"


class TransientStorageError(StorageError):
    """S3 kept failing in a way a later try can mend (connection lost, 5xx after retries)."""

    transient = True


class CommitConflict(StorageError):
    """Another writer committed first; a retry re-reads the table (and may find the day done)."""

    transient = True


# Curation.

class NoRawDay(FlixluigiError, LookupError):
    """A curated day was asked for but no raw fetch of it is stored; no retry can mend it."""

    transient = False
    hint = "fetch the raw day first: luigi --module flixluigi RawTweets --date {day} (or Reprocess --start {day} --refetch)"


class QualityError(FlixluigiError, ValueError):
    """The curated day would be wrong or would leak; nothing is published."""

    transient = False
    hint = "inspect the raw day, then rebuild it: luigi --module flixluigi Reprocess --start {day} --refetch"
