"""The shapes of the frontend's own JSON answers, for its OpenAPI document.

The routes build their bodies by hand (`Route.as_dict`, `Spread.as_dict`: the
hot path skips a model per request); these models state what those bodies
are, and tests/test_schemathesis.py checks every answer against them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from frontend.route_model import HopState
from frontend.runs_on import Place


class PodView(BaseModel):
    service: str
    version: str
    pod_name: str
    pod_ip: str
    node_name: str


class TimingView(BaseModel):
    label: str
    ms: float | None
    note: str | None = Field(description='shown instead of a time where there is none ("reused")')


class HopView(BaseModel):
    key: str = Field(examples=["frontend", "name", "address", "pod", "data"])
    title: str
    value: str
    detail: str
    explanation: str
    link: str
    timings: list[TimingView]
    state: HopState
    error: str | None


class RunsOnView(BaseModel):
    place: Place
    because: str


class RouteView(BaseModel):
    backend_url: str
    frontend: PodView
    ok: bool
    failed_hop: str | None
    request: str
    request_id: str | None
    trace_id: str | None = Field(
        default=None, description="the W3C trace id of this request, when tracing is on"
    )
    total_ms: float | None
    retried: bool
    runs_on: RunsOnView
    between: str
    docs: str
    hops: list[HopView]
    problem: str | None = Field(
        default=None, description="present when the route broke: what went wrong, in words"
    )


class SpreadRunView(BaseModel):
    requests: int
    answered: int
    failed: int
    connections_opened: int
    duration_ms: float
    pods: dict[str, int] = Field(description="backend pod → requests it answered")
    errors: list[str]


class SpreadView(BaseModel):
    n: int
    backend_url: str
    probe: str
    fresh_connections: SpreadRunView
    one_kept_alive_connection: SpreadRunView
    explanation: str


class BackendProbe(BaseModel):
    url: str
    reachable: bool
    status: str | None = Field(default=None, description="the backend's own readiness")
    pod: str | None = None
    ms: float | None = None
    failed_hop: str | None = None
    error: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "draining"]
    backend: BackendProbe
