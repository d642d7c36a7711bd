"""The web console: a calendar of the stored days, runs started through luigid, a JSON API (`flixluigi console`)."""
