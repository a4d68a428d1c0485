"""Frontend settings, read from the environment once at start."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

import httpx
from pydantic import Field, field_validator, model_validator

from common.settings import CommonSettings

SERVICE_NAME = "frontend"


class FrontendSettings(CommonSettings):
    # Its own ports (common/settings.py has the backend's).
    port: int = Field(default=8080, ge=1, le=65535)
    metrics_port: int = Field(default=9080, ge=1, le=65535)
    # A name on Kubernetes and in compose (`http://backend:8000`). On
    # Kubernetes DNS turns it into the Service's ClusterIP and the kernel,
    # following kube-proxy's rules, picks a pod per connection; under compose
    # Docker's DNS answers with the containers' own addresses.
    backend_url: str = "http://127.0.0.1:8000"
    backend_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    backend_read_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # Must stay below the backend server's keep-alive timeout (30 s): a
    # pooled connection the server has already closed would fail on reuse.
    backend_keepalive_expiry_seconds: float = Field(default=20.0, ge=0, le=300)
    backend_max_connections: int = Field(default=100, ge=1, le=10_000)
    spread_default: int = Field(default=30, ge=1)
    spread_max: int = Field(default=200, ge=1, le=5_000)
    # A spread answers with what it has by this deadline (both runs together).
    spread_deadline_seconds: float = Field(default=10.0, gt=0, le=300)
    # Spreads running at once in one frontend pod; one more is a 429.
    spread_concurrency: int = Field(default=2, ge=1, le=100)
    # Set to true when the page is served over HTTPS (an Ingress with TLS):
    # the CSRF cookie is then never sent over plain HTTP.
    csrf_cookie_secure: bool = False
    # What the route panel says stands between the tiers; `auto` decides from
    # what the process sees (see frontend/runs_on.py).
    runs_on: Literal["auto", "kubernetes", "compose", "local"] = "auto"
    # Addresses (CIDRs, comma-separated) of a proxy in front that starts traces
    # itself: only a request from one of them continues its incoming
    # `traceparent`; any other starts a new trace (frontend/edge_trace.py).
    trace_trusted_proxies: str = ""

    @field_validator("backend_url")
    @classmethod
    def _backend_url(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                "must be an http:// or https:// URL with a host, like http://backend:8000"
            )
        return value.rstrip("/")

    @field_validator("trace_trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        from frontend.edge_trace import parse_networks

        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"must be comma-separated addresses or CIDRs: {exc}") from None
        return value

    @model_validator(mode="after")
    def _spread_bounds(self) -> FrontendSettings:
        if self.spread_default > self.spread_max:
            raise ValueError("SPREAD_DEFAULT must not be over SPREAD_MAX")
        return self

    @cached_property
    def backend_host(self) -> str:
        return httpx.URL(self.backend_url).host

    @cached_property
    def backend_port(self) -> int:
        url = httpx.URL(self.backend_url)
        return url.port or (443 if url.scheme == "https" else 80)
