"""CSRF protection for the guestbook form: a double-submit cookie.

Why this design: the frontend runs as two (or more) replicas behind a
ClusterIP Service with no sticky sessions, so the POST of a form may land on
another replica than the GET that rendered it. A double-submit token needs
no server-side state and no shared secret, so it validates on any replica:
the same random token is set in an HttpOnly, SameSite=Strict cookie and in a
hidden form field, and a POST is accepted only when both are present and
equal (compared in constant time). Another site can neither read the cookie
to copy it into a forged form nor, with SameSite=Strict, make the browser
send it along. An HMAC-signed token would also work across replicas, but
needs a secret shared by every replica (one more Secret to create, mount and
rotate) and buys nothing here, since there is no session to bind it to.

Defence in depth: a browser that says the POST came from another site
(`Sec-Fetch-Site`, or an `Origin` naming another host) is refused before the
tokens are compared.
"""

from __future__ import annotations

import hmac
import http.cookies
import re
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

COOKIE_NAME = "csrf_token"
FIELD_NAME = "csrf_token"
# token_urlsafe(32) gives 43 characters; anything else is not ours.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})


def new_token() -> str:
    return secrets.token_urlsafe(32)


def cookie_token(request: Request) -> str | None:
    token = request.cookies.get(COOKIE_NAME)
    return token if token and _TOKEN_SHAPE.match(token) else None


def issue(request: Request, secure: bool) -> tuple[str, str | None]:
    """The visitor's token, or a new one with the `Set-Cookie` value that sends it.

    Both at once, so the page hands the cookie to its response as a header
    and does not come back here once it is rendered.
    """
    existing = cookie_token(request)
    if existing:
        return existing, None
    token = new_token()
    return token, set_cookie_value(token, secure)


def set_cookie_value(token: str, secure: bool) -> str:
    """The `Set-Cookie` header value for `token`, as Starlette's set_cookie writes it."""
    cookie: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    cookie[COOKIE_NAME] = token
    morsel = cookie[COOKIE_NAME]
    # A session cookie would be lost with the browser; a day keeps an open
    # tab's form valid without keeping the token around for ever.
    morsel["max-age"] = 86_400
    morsel["path"] = "/"
    if secure:
        morsel["secure"] = True
    morsel["httponly"] = True
    morsel["samesite"] = "strict"
    return morsel.OutputString()


def _origin_host(origin: str) -> str | None:
    """The host:port an Origin names, or None when it is not a URL at all
    (`http://[` makes urlsplit raise): a browser never sends such a value."""
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return None


def problem(request: Request, form_token: str | None) -> str | None:
    """Why this POST must be refused, or None when it is genuine."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in _SAME_SITE_FETCH:
        return "the form was sent from another site"
    origin = request.headers.get("origin")
    # Host only: behind a TLS-terminating proxy the scheme seen here differs.
    host = request.headers.get("host", "").lower()
    if origin and origin != "null" and _origin_host(origin) != host:
        return "the form was sent from another site"
    cookie = cookie_token(request)
    if cookie is None:
        return "the form's security cookie is missing (are cookies blocked?)"
    if not form_token or not hmac.compare_digest(cookie.encode(), form_token.encode()):
        return "the form has expired"
    return None
