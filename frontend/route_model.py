"""The route panel's model: one page view's path to its data, hop by hop.

frontend pod → the name in BACKEND_URL → the address the connection was
opened to → the backend pod that answered → Redis or the database. Plain
data: frontend/route_builder.py fills it from one backend call, the HTML
panel (templates/_route.html) and `GET /api/route` (`as_dict`) show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from frontend.runs_on import RunsOn

SERVICE_DOCS = "https://kubernetes.io/docs/concepts/services-networking/service/"
DNS_DOCS = "https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/"
VIRTUAL_IP_DOCS = "https://kubernetes.io/docs/reference/networking/virtual-ips/"

HopState = Literal["ok", "failed", "not reached"]


@dataclass(slots=True)
class Timing:
    label: str
    ms: float | None
    # Shown instead of a time where there is none to show ("reused").
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "ms": _round(self.ms), "note": self.note}


@dataclass(slots=True)
class Hop:
    key: str
    title: str
    value: str
    detail: str
    explanation: str
    link: str
    timings: list[Timing] = field(default_factory=list)
    state: HopState = "ok"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "value": self.value,
            "detail": self.detail,
            "explanation": self.explanation,
            "link": self.link,
            "timings": [t.as_dict() for t in self.timings],
            "state": self.state,
            "error": self.error,
        }


@dataclass(slots=True)
class Route:
    request: str
    hops: list[Hop]
    total_ms: float | None
    retried: bool
    request_id: str | None
    runs_on: RunsOn = field(default_factory=lambda: RunsOn("unknown", ""))
    # What stands between the tiers where this frontend runs, in one sentence.
    between: str = ""
    docs: str = SERVICE_DOCS
    # This page view's trace (None when tracing is off): the same hops, in a
    # tracing backend, with the database and Redis calls behind them.
    trace_id: str | None = None

    @property
    def ok(self) -> bool:
        return all(hop.state == "ok" for hop in self.hops)

    @property
    def failed_hop(self) -> str | None:
        return next((hop.key for hop in self.hops if hop.state == "failed"), None)

    def as_dict(self) -> dict[str, Any]:
        # Spelt out, not dataclasses.asdict: that deep-copies every value,
        # and this runs for every GET /api/route.
        return {
            "ok": self.ok,
            "failed_hop": self.failed_hop,
            "request": self.request,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "total_ms": _round(self.total_ms),
            "retried": self.retried,
            "runs_on": {"place": self.runs_on.place, "because": self.runs_on.because},
            "between": self.between,
            "docs": self.docs,
            "hops": [hop.as_dict() for hop in self.hops],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
