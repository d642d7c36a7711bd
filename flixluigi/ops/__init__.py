"""What operators run with the `flixluigi` command: views (`status`), changes (`actions`) and the
HTML report (`report`)."""
