"""The route panel: how one page view reached its data, hop by hop.

frontend pod → the name in BACKEND_URL → the address it resolved to (on
Kubernetes, the Service's ClusterIP; under compose, a container's own
address; under `make run`, a loopback address) → the backend pod that
answered → Redis or the database. What the hops say depends on where the
frontend runs (frontend/runs_on.py), so the panel never shows a ClusterIP
that is not there. Each hop carries its time, a plain-words explanation
and, when the route broke there, the error. The same model feeds the HTML
panel and `GET /api/route`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from common.identity import PodIdentity
from frontend.backend_client import Attempt, BackendReply, BackendUnavailable, CallTrace
from frontend.config import FrontendSettings
from frontend.pods import PodDirectory
from frontend.runs_on import Place, RunsOn, runs_on

SERVICE_DOCS = "https://kubernetes.io/docs/concepts/services-networking/service/"
DNS_DOCS = "https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/"
VIRTUAL_IP_DOCS = "https://kubernetes.io/docs/reference/networking/virtual-ips/"

HopState = Literal["ok", "failed", "not reached"]


@dataclass(slots=True)
class Resolution:
    """What the name in BACKEND_URL resolved to, looked up as the connection would."""

    host: str
    port: int
    addresses: list[str] = field(default_factory=list)
    ms: float | None = None
    error: str | None = None

    @property
    def literal(self) -> bool:
        return self.ms is None and self.error is None


@functools.lru_cache(maxsize=64)
def literal_address(host: str) -> str | None:
    """The address itself when `host` is an IP address, else None (a name)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def resolve(host: str, port: int, limit_s: float) -> Resolution:
    """Look the name up with the event loop's getaddrinfo (the system resolver,
    so /etc/hosts, resolv.conf search domains and cluster DNS all apply)."""
    result = Resolution(host=host, port=port)
    literal = literal_address(host)
    if literal is not None:
        result.addresses = [literal]
        return result  # an address already: nothing to look up
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=limit_s
        )
    except TimeoutError:
        result.error = f"no answer from the resolver within {limit_s:g} s"
    except OSError as exc:
        result.error = exc.strerror or str(exc)
    else:
        seen: dict[str, None] = {}
        for info in infos:
            seen.setdefault(str(info[4][0]), None)
        result.addresses = list(seen)
    result.ms = (time.perf_counter() - started) * 1000
    return result


@dataclass(slots=True)
class Timing:
    label: str
    ms: float | None
    # Shown instead of a time where there is none to show ("reused").
    note: str | None = None


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


@dataclass(slots=True)
class Route:
    request: str
    hops: list[Hop]
    total_ms: float | None
    retried: bool
    request_id: str | None
    runs_on: RunsOn = field(default_factory=lambda: RunsOn("unknown", ""))
    docs: str = SERVICE_DOCS
    # This page view's trace (None when tracing is off): the same hops, in a
    # tracing backend, with the database and Redis calls behind them.
    trace_id: str | None = None

    @property
    def between(self) -> str:
        return BETWEEN[self.runs_on.place]

    @property
    def ok(self) -> bool:
        return all(hop.state == "ok" for hop in self.hops)

    @property
    def failed_hop(self) -> str | None:
        return next((hop.key for hop in self.hops if hop.state == "failed"), None)

    def as_dict(self) -> dict[str, Any]:
        # Spelt out, not dataclasses.asdict: that deep-copies every value,
        # and this runs for every GET /api/route.
        hops = [
            {
                "key": hop.key,
                "title": hop.title,
                "value": hop.value,
                "detail": hop.detail,
                "explanation": hop.explanation,
                "link": hop.link,
                "timings": [
                    {
                        "label": t.label,
                        "ms": None if t.ms is None else round(t.ms, 2),
                        "note": t.note,
                    }
                    for t in hop.timings
                ],
                "state": hop.state,
                "error": hop.error,
            }
            for hop in self.hops
        ]
        return {
            "ok": self.ok,
            "failed_hop": self.failed_hop,
            "request": self.request,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "total_ms": None if self.total_ms is None else round(self.total_ms, 2),
            "retried": self.retried,
            "runs_on": {"place": self.runs_on.place, "because": self.runs_on.because},
            "between": self.between,
            "docs": self.docs,
            "hops": hops,
        }


# What stands between the frontend and the backend, in one sentence per place.
BETWEEN: dict[Place, str] = {
    "kubernetes": (
        "Between the tiers: the `backend` Service's ClusterIP, a virtual address; the node's"
        " kernel picks a backend pod for each new connection to it."
    ),
    "compose": (
        "Between the tiers: Docker's DNS, answering `backend` with the containers' own"
        " addresses. No Service and no virtual IP: the client connects straight to a container."
    ),
    "local": (
        "Between the tiers: nothing but a loopback address (`make run`). No Service, no"
        " ClusterIP, one backend process; the lab or a cluster shows what a ClusterIP adds."
    ),
    "unknown": (
        "Where this frontend runs could not be told (set `RUNS_ON`): on Kubernetes the name"
        " would resolve to a Service's ClusterIP."
    ),
}

_FRONTEND_WHY: dict[Place, str] = {
    "kubernetes": (
        "Your browser reached this pod from outside the cluster: `kubectl port-forward"
        " svc/frontend` picks one pod and tunnels straight to it, past the ClusterIP (the"
        " lab's forward connects to the ClusterIP instead); an Ingress or a load balancer"
        " also ends at a pod. It knows the backend only by the name in `BACKEND_URL`, never"
        " by a pod's address."
    ),
    "compose": (
        "Your browser reached this container through the port compose publishes on the"
        " host. It knows the backend only by the name in `BACKEND_URL`."
    ),
    "local": (
        "Your browser reached this process directly on its own port: under `make run`"
        " nothing stands in between. It knows the backend only by `BACKEND_URL`."
    ),
    "unknown": "It knows the backend only by what `BACKEND_URL` says.",
}

_NAME_WHY: dict[Place, str] = {
    "kubernetes": (
        "The resolver turns `{host}` into an address: the cluster DNS answers a Service's"
        " name with its ClusterIP, one stable address for however many pods, whichever of"
        " them come and go."
    ),
    "compose": (
        "Docker's embedded DNS (127.0.0.11) answers `{host}` with the backend containers' own"
        " addresses, one per replica, and the client takes one. There is no virtual IP: a"
        " client that keeps an answer keeps its container, even one that is gone. Kubernetes"
        " puts a virtual IP in front of the pods for exactly this reason."
    ),
    "local": (
        "`{host}` resolved to a loopback address: the backend runs on this machine, with no"
        " Service and no ClusterIP in between. On Kubernetes the cluster DNS would answer"
        " the Service's name with its ClusterIP."
    ),
    "unknown": (
        "The resolver turns `{host}` into an address. On Kubernetes the cluster DNS answers a"
        " Service's name with its ClusterIP."
    ),
}

_ADDRESS_TITLE: dict[Place, str] = {
    "kubernetes": "Address (ClusterIP)",
    "compose": "Address (a container's own, no virtual IP)",
    "local": "Address (loopback, no Service)",
    "unknown": "Address",
}

_ADDRESS_WHY: dict[Place, str] = {
    "kubernetes": (
        "No machine owns a ClusterIP. kube-proxy (or the cluster's Service proxy) wrote rules"
        " into every node's kernel; when this pod opens a TCP connection to the ClusterIP,"
        " the kernel, following them, picks one ready backend pod and rewrites the"
        " destination to it (DNAT, destination NAT). It picks once per connection: every"
        " request on a kept-alive connection reaches the same pod, until the backend closes"
        " it for age (`MAX_CONNECTION_AGE_SECONDS`)."
    ),
    "compose": (
        "A backend container's own address: the connection goes straight to it, nothing"
        " rewrites it on the way. Which container answers depends on which DNS answer the"
        " client took, and for how long it keeps it."
    ),
    "local": (
        "A loopback address: the connection goes to the one backend process on this machine."
        " Nothing picks a pod, because there is only one; on Kubernetes this would be the"
        " Service's ClusterIP, and the kernel would pick a pod per connection."
    ),
    "unknown": (
        "The address the name resolved to. On Kubernetes it is the Service's ClusterIP, and"
        " the node's kernel picks a pod for each new connection."
    ),
}

_POD_WHO: dict[Place, str] = {
    "kubernetes": "The pod the kernel picked when this connection opened.",
    "compose": "The container whose address the client connected to.",
    "local": "The one backend process.",
    "unknown": "The backend that answered.",
}


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} ms"


def _what_happened(attempt: Attempt) -> str:
    if attempt.error and attempt.stage in ("pool", "connect"):
        return "could not connect"
    if attempt.error:
        return "the connection died" if attempt.new_connection else "the kept-alive connection died"
    if attempt.new_connection:
        return "a new connection"
    if attempt.connection_age_s is not None:
        return (
            f"a kept-alive connection, open {attempt.connection_age_s:.1f} s,"
            f" request {attempt.requests_on_connection} on it"
        )
    return "a kept-alive connection"


def _connection_detail(trace: CallTrace) -> str:
    parts: list[str] = []
    if trace.retried:
        first = trace.attempts[0]
        parts.append(f"first try: {_what_happened(first)}; retried once on a new connection")
    attempt = trace.last
    parts.append(_what_happened(attempt))
    if attempt.local_addr:
        parts.append(f"from {attempt.local_addr}")
    return "; ".join(parts)


_PLAIN_FAILURES = {
    "frontend": "No free connection in this pod's pool: {error}.",
    "address": (
        "Nothing accepted the connection ({error}). On Kubernetes: the Service has no ready"
        " backend pod, see `kubectl get endpointslices -l kubernetes.io/service-name={host}`."
    ),
    "pod": "Connected, but no answer came back ({error}).",
}


def _data_hop(
    reply: BackendReply | None,
    payload: Mapping[str, Any] | None,
    database_label: str,
) -> Hop:
    hop = Hop(key="data", title="Data", value="", detail="", explanation="", link=SERVICE_DOCS)
    if reply is None:
        hop.state = "not reached"
        hop.value = "not reached"
        hop.explanation = "The request never reached a backend pod, so no data was read."
        return hop
    timings = reply.server_timing
    payload = payload or {}
    cache = payload.get("cache")
    if reply.status == 200 and cache == "hit":
        hop.value = "Redis (cache hit)"
        hop.detail = f"{database_label} was not asked"
        hop.timings = [Timing("Redis", timings.get("cache"))]
        hop.explanation = (
            "The backend found this page of messages in Redis, reached through the `redis`"
            " Service: another name, another ClusterIP. Cache-aside: a write clears it."
        )
    elif reply.status == 200 and cache == "miss":
        hop.value = f"{database_label} (Redis missed)"
        hop.detail = "read from the database, then stored in Redis for the next reader"
        hop.timings = [
            Timing("database", timings.get("db")),
            Timing("Redis", timings.get("cache")),
        ]
        hop.explanation = (
            "Redis did not hold this page, so the backend read it from the database behind"
            " the `mysql` Service and put it in Redis: reload and Redis answers."
        )
    elif reply.status == 200:
        state = payload.get("cache_state")
        hop.value = database_label
        hop.detail = (
            "Redis is down: served from the database" if state == "down" else "no Redis cache here"
        )
        hop.timings = [Timing("database", timings.get("db"))]
        hop.explanation = (
            "The backend read the messages straight from its database. It keeps working"
            " without Redis, only slower; on Kubernetes MySQL sits behind the `mysql` Service."
        )
    elif reply.status == 503 and payload.get("error") == "dependency_unavailable":
        dependency = str(payload.get("dependency") or "database")
        hop.state = "failed"
        hop.value = database_label if dependency == "database" else dependency
        hop.error = f"the backend pod answered, but its {dependency} is unavailable"
        hop.explanation = (
            "The backend pod is alive and still in the Service (a shared dependency going"
            " down must not take every replica out), but it could not read the data."
        )
    else:
        hop.state = "not reached"
        hop.value = "not reached"
        hop.explanation = f"The backend answered {reply.status}, so no data came back."
    return hop


def build_route(
    *,
    settings: FrontendSettings,
    identity: PodIdentity,
    resolution: Resolution,
    outcome: BackendReply | BackendUnavailable,
    payload: Mapping[str, Any] | None,
    pods: PodDirectory,
    request_label: str,
    request_id: str | None,
    trace_id: str | None = None,
) -> Route:
    reply = outcome if isinstance(outcome, BackendReply) else None
    failure = outcome if isinstance(outcome, BackendUnavailable) else None
    trace = outcome.trace
    attempt: Attempt | None = trace.last if trace.attempts else None
    host = settings.backend_host
    total_ms = trace.total_ms if trace.attempts else None
    where = runs_on(settings.runs_on, resolution.addresses)
    place = where.place

    frontend = Hop(
        key="frontend",
        title="This frontend pod",
        value=identity.pod_name,
        detail=f"{identity.pod_ip} on node {identity.node_name}",
        explanation=_FRONTEND_WHY[place],
        link=SERVICE_DOCS,
        timings=[Timing("round trip to the backend", total_ms)],
    )

    name = Hop(
        key="name",
        title="Service name" if place == "kubernetes" else "Backend name",
        value=f"{host}:{settings.backend_port}",
        detail="",
        explanation=_NAME_WHY[place].format(host=host),
        link=DNS_DOCS,
        timings=[Timing("name lookup", resolution.ms)],
    )
    if resolution.literal:
        name.detail = "`BACKEND_URL` holds an address: there is no name to look up"
        name.explanation = (
            "Here `BACKEND_URL` names an address, so nothing is looked up. On Kubernetes it"
            " names the Service (`http://backend:8000`), and the cluster DNS answers that"
            " name with the Service's ClusterIP."
        )
        name.timings = [Timing("name lookup", None, note="none")]
    elif resolution.error is not None:
        name.detail = "did not resolve"
        if reply is None:
            name.state = "failed"
            name.error = f"`{host}` did not resolve: {resolution.error}"
    else:
        name.detail = "resolved to " + ", ".join(resolution.addresses)

    address = Hop(
        key="address",
        title=_ADDRESS_TITLE[place],
        value=(attempt.peer_addr if attempt and attempt.peer_addr else None)
        or ", ".join(resolution.addresses)
        or "unknown",
        detail=_connection_detail(trace) if attempt else "",
        explanation=_ADDRESS_WHY[place],
        link=VIRTUAL_IP_DOCS,
        timings=[Timing("connect", attempt.connect_ms if attempt else None)],
    )
    if attempt and not attempt.new_connection and attempt.peer_addr:
        address.timings = [Timing("connect", None, note="none: reused")]

    pod_name = reply.served_by if reply else None
    pod_info = pods.get(pod_name)
    backend_ms = reply.server_timing.get("app") if reply else None
    wire_ms = trace.total_ms - backend_ms if backend_ms is not None else None
    located = []
    if pod_info and pod_info.ip:
        located.append(pod_info.ip)
    if pod_info and pod_info.node:
        located.append(f"on node {pod_info.node}")
    pod = Hop(
        key="pod",
        title="Backend pod",
        value=pod_name or ("unknown" if reply else "not reached"),
        detail=" ".join(located),
        explanation=(
            f"{_POD_WHO[place]} It names itself in the `X-Served-By` response header"
            " and times its work in `Server-Timing`. Reload: a kept-alive connection keeps"
            " this pod; the spread view shows what new connections do."
        ),
        link=SERVICE_DOCS,
        timings=[Timing("in the backend", backend_ms), Timing("network and queues", wire_ms)],
    )
    dependency_down = (
        reply is not None
        and reply.status == 503
        and (payload or {}).get("error") == "dependency_unavailable"
    )
    if reply is not None and reply.status >= 500 and not dependency_down:
        pod.state = "failed"
        pod.error = f"answered {reply.status}"

    data = _data_hop(reply, payload, pod_info.database_label if pod_info else "the database")

    hops = [frontend, name, address, pod, data]
    if failure is not None:
        # A name that did not resolve explains the failed connection best.
        broken = "name" if name.state == "failed" else failure.hop
        target = next(hop for hop in hops if hop.key == broken)
        target.state = "failed"
        template = _PLAIN_FAILURES.get(broken, "{error}")
        target.error = target.error or template.format(error=failure.message, host=host)
    first_failed = next((hop.key for hop in hops if hop.state == "failed"), None)
    if first_failed is not None:
        _mark_after(hops, first_failed)

    return Route(
        request=request_label,
        hops=hops,
        total_ms=total_ms,
        retried=trace.retried,
        request_id=request_id,
        runs_on=where,
        trace_id=trace_id,
    )


def _mark_after(hops: list[Hop], broken: str) -> None:
    after = False
    for hop in hops:
        if after:
            hop.state = "not reached"
            hop.error = None
        if hop.key == broken:
            after = True
