"""Luigi batch jobs that collect #FlixBus posts per UTC day: X API -> raw fetch -> curated Delta table.

`luigi --module flixluigi CuratedTweets --date 2022-09-12 --local-scheduler` runs a day; see README.md.
Importing the package puts its own defaults (`defaults.cfg`) first in Luigi's configuration path.
"""

from flixluigi import config
from flixluigi._version import __version__

config.install_defaults()

from flixluigi.tasks import ApiAvailable, Backfill, Compliance, CuratedTweets, LastWeek, Preflight, RawTweets, Rebuild, Reprocess  # noqa: E402

__all__ = ["ApiAvailable", "Backfill", "Compliance", "CuratedTweets", "LastWeek", "Preflight", "RawTweets", "Rebuild", "Reprocess",
           "__version__"]
