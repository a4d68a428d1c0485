"""An httpx transport on aiohttp's connection pool: the same `httpx.AsyncClient`, less CPU.

Why not httpx's default transport: httpcore's pool walks every pooled
connection on every request and asks each socket whether it is readable
(`AsyncConnectionPool._assign_requests_to_connections` → `has_expired`), which
a profile of the page under load put at over a third of the frontend's CPU.
aiohttp keeps idle connections in a queue per host and takes the first one.

Why not the `httpx-aiohttp` package's transport: it maps a kept-alive
connection that died (aiohttp's `ServerDisconnectedError`) and a refused
connect to `httpx.ConnectTimeout`, which would turn off the retry on a fresh
connection and blame the wrong hop in the route panel, and it has no way to
tell a caller what happened to its connection. This one is small:

- httpx's exceptions keep their meaning: a refused or unresolvable connect is
  `ConnectError`, a connection that died under a request `RemoteProtocolError`
  or `ReadError`, a full pool `PoolTimeout`, a silent server `ReadTimeout`.
- aiohttp's own silent retry of idempotent requests on another pooled
  connection is off: the caller decides about retries (on a *new*
  connection, so that kube-proxy picks a pod again) and reports them.
- Per request, an optional observer (`extensions={"observer": ...}`) hears
  whether a connection was opened (and when it was connected) or reused; the
  response's `extensions["connection"]` says which addresses that
  connection joins, how old it is and how many requests it has carried.
- Timeouts come from httpx's: connect, read, and pool (aiohttp counts the
  wait for a free connection and the connect together, so it gets both).
- Bodies are read whole before the response is returned: the backend's
  answers are small JSON documents, and it lets the connection go back to
  the pool at once.
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

import aiohttp
import httpx
from yarl import URL

__all__ = ["AiohttpTransport", "ConnectionInfo", "NameNotResolved", "Observer", "Stage"]


class NameNotResolved(httpx.ConnectError):
    """The backend's name did not resolve when a connection was to be opened."""


Stage = Literal["pool", "connect", "send"]


@dataclass(slots=True)
class Observer:
    """What a caller passes as `extensions["observer"]` to follow one request.

    `stage` is where the request is: waiting for a pooled connection
    ("pool"), opening a new one ("connect"), or using one ("send"). The
    transport notes here what happens as it happens; the caller reads the
    fields after the call (a subclass may add its own). Kept in this module so
    that a request's way through the transport does not call back into the
    caller's module.
    """

    stage: Stage = "pool"
    new_connection: bool = False
    connect_ms: float | None = None
    _connect_started: float = 0.0

    def connecting(self) -> None:
        """A new TCP connection is being opened for this request."""
        self.stage = "connect"
        self.new_connection = True
        self._connect_started = time.perf_counter()

    def connected(self) -> None:
        """The new connection is open."""
        self.connect_ms = (time.perf_counter() - self._connect_started) * 1000
        self.stage = "send"

    def reused(self) -> None:
        """A kept-alive connection from the pool was taken."""
        self.stage = "send"

    def connect_failed(self) -> None:
        """The connect this request was waiting for failed: how long it tried."""
        if self.stage == "connect" and self.connect_ms is None:
            self.connect_ms = (time.perf_counter() - self._connect_started) * 1000


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """The connection a response came on, as `response.extensions["connection"]`."""

    local: tuple[Any, ...] | None
    peer: tuple[Any, ...] | None
    # How long it has been open, and how many requests it has carried
    # including this one (1 on a new connection).
    age_s: float
    requests: int
    # When it was opened (seconds since the epoch): the name was resolved to
    # `peer` then, since the pool looks the name up for each new connection.
    opened_at: float = 0.0


@dataclass(slots=True)
class _Ledger:
    opened_at: float
    opened_wall: float
    local: tuple[Any, ...] | None
    peer: tuple[Any, ...] | None
    requests: int = 0


# Keyed by aiohttp's protocol object, one per TCP connection: an entry goes
# when its connection is garbage, so closed connections need no bookkeeping.
_LEDGER: weakref.WeakKeyDictionary[Any, _Ledger] = weakref.WeakKeyDictionary()


def _address(value: Any) -> tuple[Any, ...] | None:
    return tuple(value) if isinstance(value, tuple | list) and len(value) >= 2 else None


class _Response(aiohttp.ClientResponse):
    connection_info: ConnectionInfo | None = None

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        # Noted before the response is read: a small body is read with its
        # headers, and the connection may be released (and, after
        # `Connection: close`, closed) before start() returns.
        protocol = connection.protocol
        if protocol is not None:
            now = time.monotonic()
            ledger = _LEDGER.get(protocol)
            if ledger is None:
                transport = connection.transport
                ledger = _Ledger(
                    opened_at=now,
                    opened_wall=time.time(),
                    local=_address(transport.get_extra_info("sockname")) if transport else None,
                    peer=_address(transport.get_extra_info("peername")) if transport else None,
                )
                _LEDGER[protocol] = ledger
            ledger.requests += 1
            self.connection_info = ConnectionInfo(
                ledger.local,
                ledger.peer,
                now - ledger.opened_at,
                ledger.requests,
                ledger.opened_wall,
            )
        return await super().start(connection)


def _observer(context: SimpleNamespace) -> Observer | None:
    observer = context.trace_request_ctx
    return observer if isinstance(observer, Observer) else None


async def _on_create_start(_s: Any, context: SimpleNamespace, _p: Any) -> None:
    if (observer := _observer(context)) is not None:
        observer.connecting()


async def _on_create_end(_s: Any, context: SimpleNamespace, _p: Any) -> None:
    if (observer := _observer(context)) is not None:
        observer.connected()


async def _on_reuse(_s: Any, context: SimpleNamespace, _p: Any) -> None:
    if (observer := _observer(context)) is not None:
        observer.reused()


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(_on_create_start)
    config.on_connection_create_end.append(_on_create_end)
    config.on_connection_reuseconn.append(_on_reuse)
    return config


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        # "Connection refused (10.96.0.12:8000)", not aiohttp's wording
        # ("Cannot connect to host … ssl:default [Connect call failed …]").
        error = exc.os_error
        errno = error.errno
        reason = os.strerror(errno) if isinstance(errno, int) and errno > 0 else None
        return f"{reason or error.strerror or error} ({exc.host}:{exc.port})"
    return str(exc).strip() or type(exc).__name__


def translate(
    exc: BaseException, request: httpx.Request, stage: str | None
) -> httpx.TransportError:
    """aiohttp's exception as the httpx one it means."""
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # aiohttp's connect timeout covers the wait for a pool slot too.
        kind = httpx.PoolTimeout if stage == "pool" else httpx.ConnectTimeout
    elif isinstance(exc, TimeoutError):  # SocketTimeoutError and the like
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorDNSError):
        kind = NameNotResolved
    elif isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable
        kind = httpx.ConnectError
    elif isinstance(
        # Gone before or during the reply, or a reply that is not HTTP.
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientConnectionResetError):
        kind = httpx.WriteError
    elif isinstance(exc, aiohttp.ClientConnectionError | OSError):  # reset by peer
        kind = httpx.ReadError
    else:
        kind = httpx.TransportError
    return kind(_describe(exc), request=request)


def _seconds(*parts: float | None) -> float | None:
    return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp connection pool behind an `httpx.AsyncClient`.

    `keepalive_expiry` is how long an idle connection stays pooled (keep it
    below the server's keep-alive timeout); None keeps no connection at all:
    every request opens its own and closes it after.
    """

    def __init__(self, *, max_connections: int, keepalive_expiry: float | None) -> None:
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop, as aiohttp wants.
        keep = self.keepalive_expiry is not None and self.keepalive_expiry > 0
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            force_close=not keep,
            keepalive_timeout=self.keepalive_expiry if keep else None,
            # Each new connection looks the name up again, as httpx's own
            # transport does: on Kubernetes the answer is the ClusterIP.
            use_dns_cache=False,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            trace_configs=[_trace_config()],
            response_class=_Response,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx decodes, as with its own transport
            trust_env=False,
            raise_for_status=False,
        )
        # Retrying is the caller's decision (see the module docstring); the
        # same switch aiohttp's own test client turns off.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session
        if session is None:
            session = self._session = self._open()
        observer = request.extensions.get("observer")
        if not isinstance(observer, Observer):
            observer = None
        timeout = request.extensions.get("timeout") or {}
        content = await request.aread()
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=_seconds(timeout.get("pool"), timeout.get("connect")),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                trace_request_ctx=observer,
            )
            try:
                body = await response.read()
            except BaseException:
                response.close()  # never pool a connection with unread bytes
                raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = translate(exc, request, getattr(observer, "stage", None))
            if observer is not None and isinstance(
                error, httpx.ConnectError | httpx.ConnectTimeout
            ):
                observer.connect_failed()
            raise error from exc
        response.release()
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("ascii", "replace")
        if isinstance(response, _Response) and response.connection_info is not None:
            extensions["connection"] = response.connection_info
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=httpx.ByteStream(body),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
