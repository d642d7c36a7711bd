"""Luigi batch jobs that collect #FlixBus posts per UTC day: X API -> raw fetch -> curated Delta table.

`luigi --module flixluigi CuratedTweets --date 2022-09-12 --local-scheduler` runs a day; see README.md.
Importing the package puts its own defaults (`defaults.cfg`) first in Luigi's configuration path;
under `luigi --module flixluigi` it also refuses bad settings before Luigi schedules anything.
"""

from flixluigi import config
from flixluigi._version import __version__

config.install_defaults()
config.refuse_bad_settings_under_luigi()

from flixluigi.tasks import ApiAvailable, Backfill, Compliance, CuratedTweets, LastWeek, Preflight, RawTweets, Rebuild, Reprocess  # noqa: E402

__all__ = ["ApiAvailable", "Backfill", "Compliance", "CuratedTweets", "LastWeek", "Preflight", "RawTweets", "Rebuild", "Reprocess",
           "__version__"]
