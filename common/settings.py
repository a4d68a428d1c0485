"""The settings both tiers read from the environment, once, at start."""

from __future__ import annotations

import socket
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _hostname() -> str:
    return socket.gethostname()


def _host_address() -> str:
    # Outside Kubernetes the Downward API is absent; the address the hostname
    # resolves to is the closest thing to a pod IP a laptop has.
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    host: str = "127.0.0.1"
    log_level: str = "INFO"
    pod_name: str = Field(default_factory=_hostname)
    pod_ip: str = Field(default_factory=_host_address)
    node_name: str = Field(default_factory=_hostname)
    # The Downward API's metadata.namespace (k8s/components/tracing sets it);
    # only traces use it, as their k8s.namespace.name.
    pod_namespace: str = ""
    # More of the traces' resource (OpenTelemetry's names in the comments):
    # k8s/components/tracing sets them from the Downward API, compose sets the
    # environment. Empty ones are left out of the resource.
    service_namespace: str = "clusterip-demo"  # service.namespace
    k8s_deployment_name: str = ""  # k8s.deployment.name
    k8s_container_name: str = ""  # k8s.container.name
    deployment_environment: str = ""  # deployment.environment.name
    # SIGTERM handling, podinfo-style: fail readiness at once, keep serving
    # for shutdown_delay so every kube-proxy drops this pod, then stop
    # accepting and give in-flight requests graceful_timeout to finish.
    shutdown_delay_seconds: float = Field(default=5.0, ge=0, le=300)
    graceful_timeout_seconds: float = Field(default=10.0, ge=0, le=300)
    # A client's pooled connection older than this is answered with
    # `Connection: close`, so the client reconnects and kube-proxy picks a pod
    # again. 0 turns it off.
    max_connection_age_seconds: float = Field(default=30.0, ge=0)
    # Longer than any client's idle expiry (the frontend uses 20 s), so the
    # server never closes an idle connection a client is about to reuse.
    keepalive_timeout_seconds: float = Field(default=30.0, gt=0)
    # The app's port; Prometheus scrapes /metrics on metrics_port, never on `port`
    # (common/metrics_server.py). The backend's defaults; the frontend has its own.
    port: int = Field(default=8000, ge=1, le=65535)
    metrics_port: int = Field(default=9000, ge=1, le=65535)
    # Both tiers take small JSON bodies and form posts: anything bigger is refused
    # (413) before it is parsed.
    max_body_bytes: int = Field(default=16_384, ge=1024)
    # A body over the size limit is read and thrown away before the 413, so a
    # client still sending sees the answer instead of a reset (nginx does the
    # same). Past either bound the connection is closed with the body unread.
    body_drain_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    body_drain_timeout_seconds: float = Field(default=10.0, ge=0, le=300)

    @model_validator(mode="after")
    def _metrics_port_apart(self) -> Self:
        # On one port the app and the scrape listener would fight over it, and
        # /metrics would be public again.
        if self.port == self.metrics_port:
            raise ValueError(f"METRICS_PORT must differ from PORT (both are {self.port})")
        return self
