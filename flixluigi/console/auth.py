"""Who may use the console: the holder of its token, by bearer header or by a session cookie.

The token comes from the environment (`[console] token_env`); without it the console does not
start. It is compared in constant time. The page logs in with it once and gets a signed,
HttpOnly, SameSite=Strict session cookie whose signing key is derived from the token, so sessions
survive a restart of the console and end when the token changes. Forms and the page's requests
carry tornado's CSRF token; a request with a bearer header needs none (a browser never sends one
on its own).
"""

from __future__ import annotations

import hashlib
import hmac
import os

import tornado.web

from flixluigi import config
from flixluigi.errors import ConsoleError

MIN_TOKEN = 16
SESSION_COOKIE = "flixluigi_session"
SESSION_DAYS = 0.5  # a session lasts twelve hours


def load_token() -> str:
    """The console's token; refuses to start without one or with one too short to be secret."""
    name = config.console().token_env
    token = os.environ.get(name, "")
    if len(token) < MIN_TOKEN:
        raise ConsoleError(f"{'no' if not token else 'a too short'} console token: export ${name} with at least "
                           f"{MIN_TOKEN} random characters (e.g. `openssl rand -hex 32`); the console will not start without it")
    return token


def cookie_secret(token: str) -> str:
    return hmac.new(token.encode(), b"flixluigi-console-session", hashlib.sha256).hexdigest()


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


class Authenticated(tornado.web.RequestHandler):
    """A handler that knows who asks: `current_user` is "bearer" or "session", None for nobody."""

    def get_current_user(self) -> str | None:
        header = self.request.headers.get("Authorization")
        if header is not None:  # a bearer header decides alone: no fallback to a cookie
            scheme, _, given = header.partition(" ")
            return "bearer" if scheme.lower() == "bearer" and token_matches(given.strip(), self.settings["token"]) else None
        return "session" if self.get_signed_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS) else None

    def check_xsrf_cookie(self) -> None:
        if "Authorization" not in self.request.headers:
            super().check_xsrf_cookie()

    def requester(self) -> str:
        """Who asked, for the audit log: how they authenticated and from where."""
        return f"{self.current_user or 'nobody'}@{self.request.remote_ip}"

    def log_in(self) -> None:
        self.set_signed_cookie(SESSION_COOKIE, "1", expires_days=SESSION_DAYS, httponly=True, samesite="Strict",
                               secure=self.request.protocol == "https", path="/")
