"""Luigi batch jobs that collect #FlixBus tweets per UTC day: X API -> raw day -> curated day.

`luigi --module flixluigi CuratedTweets --date 2022-09-12` runs a day; see README.md.
"""

__version__ = "0.1.0"

from flixluigi.tasks import ApiAvailable, CuratedTweets, LastWeek, Preflight, RawTweets, Reprocess

__all__ = ["ApiAvailable", "CuratedTweets", "LastWeek", "Preflight", "RawTweets", "Reprocess", "__version__"]
