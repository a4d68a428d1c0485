"""The one way the frontend talks to the backend: pooled, timed, traced, retried once.

Every call goes through one shared `httpx.AsyncClient` made in the lifespan,
on an aiohttp connection pool (frontend/transport.py says why). Each try
carries an observer that hears whether it opened a new TCP connection (and
how long the connect took) or reused a kept-alive one, and the response says
which address that connection really talks to: the raw material of the
route panel.

Retries: a pooled connection can die under us (the backend pod it led to was
stopped, or the server closed it as we reused it), or a new one can fail to
connect (refused, or timed out: a pod that drops packets). Such a call is
tried once more on a brand-new connection, which lets kube-proxy pick a pod again; but
only when repeating it is harmless: GET/HEAD, or a POST carrying an
Idempotency-Key (the backend then returns the first result instead of
writing twice). A read that timed out (a pod gone silent: partitioned, or
its node lost) is retried the same way, but only for GET/HEAD/OPTIONS and
within the call's deadline (one try's connect and read timeouts together):
a write whose answer never came stays an unknown outcome for the form to
report.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Unpack

import httpx

from common.logging import request_id_var
from common.request_context import record_timing
from common.tracing import tracer
from common.version import VERSION
from frontend import client_span
from frontend.config import FrontendSettings
from frontend.metrics import FrontendMetrics
from frontend.transport import AiohttpTransport, ConnectionInfo, NameNotResolved, Observer

log = logging.getLogger("backend_client")

# The connection died, not the request: trying again on a new one is sound.
# A connect that timed out is here too: nothing was sent, and the usual cause is a
# pod whose packets are dropped (partitioned, its node gone) that is still in the
# Service, since its kubelet or nobody has yet said otherwise; on a new connection
# kube-proxy picks again, most likely a live pod. A read timeout is not here: it
# is retried only for reads, within the call's deadline (see BackendClient.request).
RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A read that timed out is retried only for a method that is idempotent by
# itself (a write carries an Idempotency-Key, but its outcome is unknown
# and the form says so: see guestbook.write_message), and only when this much
# of the call's deadline is left for the second try.
_MIN_RETRY_S = 0.05
_URL_CACHE_SIZE = 256
_USER_AGENT = {"User-Agent": f"clusterip-demo-frontend/{VERSION}"}

FailedHop = Literal["frontend", "name", "address", "pod"]


@dataclass(slots=True)
class Attempt(Observer):
    """What one try at a request saw: the transport notes the connection's
    stage and connect time (see `Observer`), the client the rest."""

    fresh_client: bool = False
    local_addr: str | None = None
    peer_addr: str | None = None
    # How long the connection used had been open, and how many requests it
    # has carried including this one (1 on a new connection).
    connection_age_s: float | None = None
    requests_on_connection: int | None = None
    # When that connection was opened, in seconds since the epoch: the pool
    # resolves the backend's name for each new connection, so this is also
    # when `peer_addr` was the name's answer.
    connection_opened_at: float | None = None
    error: str | None = None


@dataclass(slots=True)
class CallTrace:
    attempts: list[Attempt] = field(default_factory=list)
    total_ms: float = 0.0

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_ms": round(self.total_ms, 2),
            "retried": self.retried,
            "attempts": [
                {
                    "new_connection": a.new_connection,
                    "connect_ms": _round(a.connect_ms),
                    "local_addr": a.local_addr,
                    "peer_addr": a.peer_addr,
                    "connection_age_s": _round(a.connection_age_s),
                    "requests_on_connection": a.requests_on_connection,
                    "error": a.error,
                }
                for a in self.attempts
            ],
        }


@dataclass(slots=True)
class BackendReply:
    """A backend answer of any status, read in full."""

    status: int
    headers: httpx.Headers
    body: bytes
    trace: CallTrace
    # Read from the headers once: the route panel asks more than once.
    served_by: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.served_by = self.headers.get("x-served-by")

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is the backend's fault."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise self.not_json() from exc

    def not_json(self) -> BackendUnavailable:
        """What a body that does not parse as JSON means: no usable answer."""
        return BackendUnavailable(
            "pod", f"the backend answered {self.status} with a body that is not JSON", self.trace
        )


class BackendUnavailable(Exception):
    """No usable answer. `hop` says where the route broke, for the route panel."""

    def __init__(self, hop: FailedHop, message: str, trace: CallTrace) -> None:
        super().__init__(message)
        self.hop: FailedHop = hop
        self.message = message
        self.trace = trace


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _address(value: Any) -> str | None:
    if isinstance(value, tuple) and len(value) >= 2:
        host, port = value[0], value[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return None


class _NoJar(http.cookiejar.CookieJar):
    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing, and does not even look."""

    def __init__(self) -> None:
        super().__init__(_NoJar())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _NoCookies()


class BackendHttpClient(httpx.AsyncClient):
    """`httpx.AsyncClient` without a cookie jar.

    One client serves every visitor: a cookie the backend set in one answer
    would ride along with everybody's later requests. The backend sets none,
    and reading each answer for them was a twentieth of the page's CPU.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CallOptions(TypedDict, total=False):
    """What a backend call may carry besides its method and path."""

    params: Mapping[str, str | int] | None
    content: bytes | None
    headers: Mapping[str, str] | None
    # Instead of the client's own (settings): a call with a budget of its own.
    timeouts: httpx.Timeout | None


class BackendClient:
    def __init__(self, settings: FrontendSettings, metrics: FrontendMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._timeout = httpx.Timeout(
            connect=settings.backend_connect_timeout_seconds,
            read=settings.backend_read_timeout_seconds,
            write=settings.backend_read_timeout_seconds,
            pool=settings.backend_connect_timeout_seconds,
        )
        # The shared pool: kept-alive connections, idle ones dropped before
        # the backend server's own keep-alive timeout would close them.
        self.pooled = self._client(
            settings.backend_max_connections, settings.backend_keepalive_expiry_seconds
        )
        # Keeps no connection: each call through it opens its own, so
        # kube-proxy chooses a pod afresh. Used for retries and the spread view.
        self.fresh = self._client(settings.backend_max_connections, None)
        # labels() takes a lock and builds a key on every call: keep the
        # children, whose set is small (methods by statuses seen).
        self._calls: dict[tuple[str, int | str], Any] = {}
        self._urls: dict[tuple[str, tuple[tuple[str, str | int], ...]], httpx.URL] = {}
        self._durations: dict[str, Any] = {}
        # None when tracing is off: then no span, and nothing else, per call.
        self._tracer = tracer()

    @property
    def timeout(self) -> httpx.Timeout:
        """The timeouts every call has unless it passes its own."""
        return self._timeout

    def new_client(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        client_class: type[httpx.AsyncClient] = BackendHttpClient,
    ) -> httpx.AsyncClient:
        """An HTTP client to the backend on `transport`, with what every
        backend call has: base URL, timeouts, User-Agent, no proxy."""
        return client_class(
            base_url=self.settings.backend_url,
            timeout=self._timeout,
            transport=transport,
            headers=_USER_AGENT,
            follow_redirects=False,
            # Cluster-internal traffic must not wander off through an
            # HTTP_PROXY set for the outside world.
            trust_env=False,
        )

    def _client(self, max_connections: int, keepalive_expiry: float | None) -> httpx.AsyncClient:
        return self.new_client(
            AiohttpTransport(max_connections=max_connections, keepalive_expiry=keepalive_expiry)
        )

    @contextlib.asynccontextmanager
    async def dedicated(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client held to one kept-alive connection, for the spread view."""
        client = self._client(1, self.settings.backend_keepalive_expiry_seconds)
        try:
            yield client
        finally:
            await client.aclose()

    async def aclose(self) -> None:
        await self.pooled.aclose()
        await self.fresh.aclose()

    def _url(self, path: str, params: Mapping[str, str | int] | None) -> httpx.URL:
        """The absolute URL of a backend path, parsed once: the page asks for
        the same few URLs all day, and parsing one is a good share of a call."""
        key = (path, tuple(params.items()) if params else ())
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()  # `before_id` pages are many; the hot few come back
            url = httpx.URL(self.settings.backend_url + path, params=params)
            self._urls[key] = url
        return url

    def _headers(self, extra: Mapping[str, str] | None, fresh: bool) -> dict[str, str]:
        headers = dict(extra or {})
        request_id = request_id_var.get()
        if request_id:
            headers["X-Request-ID"] = request_id
        if fresh:
            # Belt and braces with a pool that keeps nothing: the server
            # closes its side too, so nothing lingers in TIME_WAIT on ours.
            headers["Connection"] = "close"
        return headers

    async def send_once(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        resend_count: int = 0,
        **options: Unpack[CallOptions],
    ) -> tuple[BackendReply | None, Attempt, BaseException | None]:
        """One try, no retry: the reply, what the try saw, and the error if any.

        `resend_count`: how many tries of this call came before (for its span).
        """
        fresh = client is self.fresh
        attempt = Attempt(fresh_client=fresh)
        url = self._url(path, options.get("params"))
        request_headers = self._headers(options.get("headers"), fresh)
        timeouts = options.get("timeouts")
        span = (
            client_span.start(self._tracer, method, url, request_headers, resend_count)
            if self._tracer is not None
            else None
        )
        request = client.build_request(
            method,
            url,
            content=options.get("content"),
            headers=request_headers,
            timeout=timeouts if timeouts is not None else self._timeout,
            extensions={"observer": attempt},  # told what happens by frontend/transport.py
        )
        trace = CallTrace(attempts=[attempt])
        started = time.perf_counter()
        try:
            response = await client.send(request, stream=True)
            try:
                self._note_connection(response, attempt)
                body = await response.aread()
            finally:
                await response.aclose()
        except BaseException as exc:
            failed = isinstance(exc, httpx.HTTPError)
            if failed:
                attempt.error = _describe(exc)
                self._count(method, "failed", attempt, started)
                trace.total_ms = (time.perf_counter() - started) * 1000
            # Every way out ends the span, a cancellation (the page's client
            # went away) included, or it would never be exported.
            if span is not None:
                client_span.finish(
                    span,
                    connection=None,
                    new_connection=attempt.new_connection,
                    status=None,
                    error=exc,
                )
            if not failed:
                raise
            return None, attempt, exc
        if span is not None:
            info = response.extensions.get("connection")
            client_span.finish(
                span,
                connection=info if isinstance(info, ConnectionInfo) else None,
                new_connection=attempt.new_connection,
                status=response.status_code,
                error=None,
                served_by=response.headers.get("x-served-by"),
            )
        self._count(method, response.status_code, attempt, started)
        trace.total_ms = (time.perf_counter() - started) * 1000
        reply = BackendReply(response.status_code, response.headers, body, trace)
        return reply, attempt, None

    def _count(self, method: str, status: int | str, attempt: Attempt, started: float) -> None:
        calls = self._calls.get((method, status))
        if calls is None:
            calls = self._calls[(method, status)] = self.metrics.calls.labels(method, str(status))
        calls.inc()
        duration = self._durations.get(method)
        if duration is None:
            duration = self._durations[method] = self.metrics.call_duration.labels(method)
        duration.observe(time.perf_counter() - started)
        if attempt.new_connection and attempt.stage != "connect":  # it did open
            self.metrics.connections_opened.inc()

    @staticmethod
    def _note_connection(response: httpx.Response, attempt: Attempt) -> None:
        info = response.extensions.get("connection")
        if isinstance(info, ConnectionInfo):
            attempt.local_addr = _address(info.local)
            attempt.peer_addr = _address(info.peer)
            attempt.connection_age_s = info.age_s
            attempt.requests_on_connection = info.requests
            attempt.connection_opened_at = info.opened_at or None

    async def request(
        self,
        method: str,
        path: str,
        *,
        retry: bool = True,
        client: httpx.AsyncClient | None = None,
        **options: Unpack[CallOptions],
    ) -> BackendReply:
        """A call on the shared pool, or on `client` (one from `new_client`),
        retried once on a fresh connection when safe (a retry always goes to
        `fresh`).

        Answers of every status come back as a BackendReply; only a call that
        got no answer at all raises BackendUnavailable.
        """
        method = method.upper()
        if client is None:
            client = self.pooled
        header_names = {name.lower() for name in options.get("headers") or {}}
        repeatable = method in _IDEMPOTENT_METHODS or "idempotency-key" in header_names
        started = time.perf_counter()
        limits = options.get("timeouts") or self._timeout
        # The longest one try may already take: a retry after a silent pod
        # fits in what is left of it, so the caller never waits longer.
        deadline = started + (limits.connect or 0.0) + (limits.read or 0.0)
        trace = CallTrace()
        while True:
            reply, attempt, error = await self.send_once(
                client, method, path, resend_count=len(trace.attempts), **options
            )
            trace.attempts.append(attempt)
            if error is None or not retry or client is self.fresh:
                break
            if isinstance(error, httpx.ReadTimeout) and method in _IDEMPOTENT_METHODS:
                left = deadline - time.perf_counter()
                if left < _MIN_RETRY_S:
                    break
                options["timeouts"] = _cut(limits, left)
            elif not (repeatable and isinstance(error, RETRYABLE)):
                break
            self.metrics.retries.inc()
            log.warning(
                "backend connection failed, retrying once on a new connection",
                extra={"method": method, "path": path, "error": attempt.error},
            )
            client = self.fresh
        trace.total_ms = (time.perf_counter() - started) * 1000
        # The backend hop shows in this page's own Server-Timing header.
        record_timing("backend", trace.total_ms / 1000)
        if reply is None:
            assert error is not None
            raise BackendUnavailable(_failed_hop(error, attempt), attempt.error or "", trace)
        reply.trace = trace
        return reply


def _cut(timeouts: httpx.Timeout, left: float) -> httpx.Timeout:
    """`timeouts` with none longer than `left` seconds."""

    def cut(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(
        connect=cut(timeouts.connect),
        read=cut(timeouts.read),
        write=cut(timeouts.write),
        pool=cut(timeouts.pool),
    )


def outcome_unknown(exc: BackendUnavailable) -> bool:
    """Whether a request that got no answer may still have been carried out.

    Only a try that connected can have delivered the request: a pool or
    connect failure sent nothing. Any try counts, not only the last: a first
    one that sent the write and lost its connection, then a retry that could
    not connect, leaves the write as unknown as a read timeout does.
    """
    return any(attempt.stage == "send" for attempt in exc.trace.attempts)


def _failed_hop(error: BaseException, attempt: Attempt) -> FailedHop:
    """Where the route broke, in the route panel's terms."""
    if isinstance(error, httpx.PoolTimeout):
        return "frontend"  # every pooled connection busy: our own limit
    if isinstance(error, NameNotResolved):
        return "name"
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout) or attempt.stage == "connect":
        return "address"  # nothing accepted a connection at that address
    return "pod"  # connected, but no complete answer came back
