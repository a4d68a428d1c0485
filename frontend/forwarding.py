"""X-Forwarded-For for calls to the backend.

The backend rate-limits writes by the last X-Forwarded-For entry, trusting it
because only the frontend may reach the backend. So the frontend always
appends the address it saw itself: whatever a browser put in the header
before it can only add entries in front, never pose as the last one.
"""

from __future__ import annotations

from starlette.requests import Request


def forwarded_for(request: Request) -> dict[str, str]:
    seen = request.client.host if request.client else None
    if not seen:
        return {}
    incoming = request.headers.get("x-forwarded-for", "").strip()
    return {"X-Forwarded-For": f"{incoming}, {seen}" if incoming else seen}
