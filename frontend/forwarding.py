"""X-Forwarded-For for calls to the backend, rebuilt from addresses only.

The backend rate-limits writes by the last X-Forwarded-For entry, trusting it
because only the frontend may reach the backend. So the frontend always
appends the address it saw itself: whatever a browser put in the header
before it can only add entries in front, never pose as the last one.

What the browser sent is never copied as it came: only the entries that are
IP addresses are kept (normalised), at most a few, so a value the HTTP client
cannot encode (non-ASCII), or one the backend would choke on, never leaves
this pod.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

# A chain longer than this is not a real proxy chain; its tail is what matters.
_MAX_ENTRIES = 8


def _addresses(header: str) -> list[str]:
    kept: list[str] = []
    for entry in header.split(","):
        try:
            kept.append(str(ipaddress.ip_address(entry.strip())))
        except ValueError:
            continue
    return kept[-_MAX_ENTRIES:]


def forwarded_for(request: Request) -> dict[str, str]:
    seen = request.client.host if request.client else None
    if not seen:
        return {}
    chain = _addresses(request.headers.get("x-forwarded-for", ""))
    chain.append(seen)
    return {"X-Forwarded-For": ", ".join(chain)}
