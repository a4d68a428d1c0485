"""Per-request context: the request id and the time spent in each dependency."""

from __future__ import annotations

import contextvars
import random
import re
from dataclasses import dataclass, field

from starlette.types import Scope

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(slots=True)
class Timings:
    """Time spent in each dependency during one request, for Server-Timing."""

    spans: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.spans[name] = self.spans.get(name, 0.0) + seconds

    def header(self, total: float) -> bytes:
        parts = [f"{name};dur={secs * 1000:.2f}" for name, secs in self.spans.items()]
        parts.append(f"app;dur={total * 1000:.2f}")
        return ", ".join(parts).encode()


timings_var: contextvars.ContextVar[Timings | None] = contextvars.ContextVar(
    "timings", default=None
)


def record_timing(name: str, seconds: float) -> None:
    timings = timings_var.get()
    if timings is not None:
        timings.add(name, seconds)


def incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            # An id we cannot log safely is replaced, not trusted.
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    # 128 random bits as hex. From the random module (seeded from os.urandom,
    # and again in a forked child), not os.urandom itself: a request id must
    # be unique, not secret, and os.urandom is a system call that lets go of
    # the GIL; on the database path, where worker threads hold it, getting it
    # back cost up to a switch interval (5 ms) per request (py-spy, issue 18).
    return f"{random.getrandbits(128):032x}"
