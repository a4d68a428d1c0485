"""Security headers on every response: no scripts, no framing, no sniffing.

The page uses no JavaScript at all, so the Content-Security-Policy allows
none: a message that smuggles a `<script>` past escaping still cannot run.
The SVG charts use presentation attributes, not inline styles, so
`style-src 'self'` (the one stylesheet) is enough.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)

_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    # Not no-referrer: with it, browsers send `Origin: null` on same-origin
    # form posts, and the CSRF check reads Origin.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


_NAMES = frozenset(name for name, _ in _HEADERS)
_NO_STORE = (b"cache-control", b"no-store")


def add_security_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """Extend a response's headers in place (a hook of common.request_middleware)."""
    # A header the route set itself wins over the default.
    present = {name.lower() for name, _ in headers}
    if present.isdisjoint(_NAMES):
        headers.extend(_HEADERS)
    else:
        headers.extend(h for h in _HEADERS if h[0] not in present)
    if b"cache-control" not in present and any(
        k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers
    ):
        # Pages carry a CSRF token and live data: never cache them.
        headers.append(_NO_STORE)
