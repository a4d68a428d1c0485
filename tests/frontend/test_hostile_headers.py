"""Hostile header values: no route of either tier answers 500, and every answer is dressed.

Every request header the tiers read (or that their framework reads for them)
is sent malformed and non-ASCII to every route, through the public frontend
and straight to the backend, on MariaDB and Redis as on Kubernetes. Each
answer must be below 500 and carry the request id; the frontend's also carry
its security headers. A 500 the app did not foresee is dressed the same way.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from backend.main import create_app as create_backend
from frontend.main import create_app as create_frontend
from frontend.security import CONTENT_SECURITY_POLICY
from tests.conftest import BackendLauncher
from tests.frontend.conftest import Stack
from tests.support.frontends import FrontendLauncher
from tests.support.servers import Redis

pytestmark = [pytest.mark.mysql, pytest.mark.redis]

# Every header a tier or its framework reads from a request.
READ_HEADERS = (
    "x-forwarded-for",
    "content-type",
    "origin",
    "sec-fetch-site",
    "host",
    "cookie",
    "x-request-id",
    "idempotency-key",
    "traceparent",
    "tracestate",
    "accept-encoding",
    "expect",
    "content-length",
)
HOSTILE_VALUES: tuple[bytes, ...] = (
    "é, 203.0.113.9, ünïcode".encode(),  # UTF-8
    b"\xe9\xff\xfe",  # not UTF-8 at all
    b"http://[",  # urlsplit raises on it
    b"application/json; charset=\xe9t\xe9",
    b",,,;;;=  =",
    b"x" * 4000,
)

FORM = b"author=Hostile&text=headers&csrf_token=x&idempotency_key=k"
JSON = b'{"author": "Hostile", "text": "headers"}'

# (method, path, body, content type): every route of the frontend, pages included.
FRONTEND_ROUTES = (
    ("GET", "/", None, None),
    ("GET", "/?before_id=1", None, None),
    ("POST", "/messages", FORM, "application/x-www-form-urlencoded"),
    ("GET", "/messages", None, None),
    ("GET", "/spread?n=1", None, None),
    ("GET", "/api/route", None, None),
    ("GET", "/api/spread?n=1", None, None),
    ("GET", "/api/messages", None, None),
    ("GET", "/api/messages/1", None, None),
    ("POST", "/api/messages", JSON, "application/json"),
    ("GET", "/healthz", None, None),
    ("GET", "/readyz", None, None),
    ("GET", "/metrics", None, None),
    ("GET", "/static/style.css", None, None),
    ("GET", "/openapi.json", None, None),
    ("GET", "/no-such-page", None, None),
)
BACKEND_ROUTES = (
    ("GET", "/api/messages", None, None),
    ("GET", "/api/messages?before_id=1", None, None),
    ("GET", "/api/messages/1", None, None),
    ("POST", "/api/messages", JSON, "application/json"),
    ("GET", "/api/info", None, None),
    ("GET", "/api/stats", None, None),
    ("GET", "/healthz", None, None),
    ("GET", "/readyz", None, None),
    ("GET", "/metrics", None, None),
    ("GET", "/openapi.json", None, None),
    ("GET", "/no-such-path", None, None),
)


def _templates(app: FastAPI) -> set[str]:
    return {r.path for r in app.routes if isinstance(r, APIRoute) or hasattr(r, "methods")}


def _paths(routes: tuple[tuple[str, str, bytes | None, str | None], ...]) -> set[str]:
    return {path.split("?")[0] for _, path, _, _ in routes}


def test_the_lists_cover_every_route_of_both_tiers() -> None:
    """A route added later must join the lists above, or this fails."""
    front = _templates(create_frontend()) - {"/docs", "/redoc", "/docs/oauth2-redirect"}
    back = _templates(create_backend()) - {"/docs", "/redoc", "/docs/oauth2-redirect"}
    covered_front = _paths(FRONTEND_ROUTES) | {"/api/messages/{message_id}"}
    covered_back = _paths(BACKEND_ROUTES) | {"/api/messages/{message_id}"}
    assert front <= covered_front, front - covered_front
    assert back <= covered_back, back - covered_back


@pytest.fixture(scope="module")
def hardened(
    tmp_path_factory: pytest.TempPathFactory, mariadb, redis_server: Redis
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("frontend-hostile")
    backends = BackendLauncher(workdir)
    frontends = FrontendLauncher(workdir)
    try:
        if redis_server.proc is None:
            redis_server.start()
        backend = backends(
            database_url=mariadb.url(mariadb.create_database()),
            redis_url=redis_server.url(),
            pod_name="backend-hostile",
        )
        frontend = frontends(backend.url, pod_name="frontend-hostile")
        yield Stack([backend], [frontend])
    finally:
        frontends.stop_all()
        backends.stop_all()


def _raw(
    port: int, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """One request written byte for byte: no client library cleans the header up."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"connection: close"]
    names = {name for name, _ in headers}
    if b"host" not in names:
        lines.append(f"host: 127.0.0.1:{port}".encode())
    if b"content-length" not in names:
        lines.append(b"content-length: " + str(len(body)).encode())
    lines += [name + b": " + value for name, value in headers]
    request = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status_and_headers(raw: bytes) -> tuple[int, dict[bytes, bytes]]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert head and head[0].startswith(b"HTTP/1.1 "), raw[:200]
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers


def _sweep(port: int, routes: tuple, *, frontend: bool) -> list[str]:
    failures: list[str] = []
    for method, path, body, content_type in routes:
        for name in READ_HEADERS:
            for value in HOSTILE_VALUES:
                headers = [(name.encode(), value)]
                if content_type and name != "content-type":
                    headers.append((b"content-type", content_type.encode()))
                raw = _raw(port, method, path, headers, body or b"")
                status, got = _status_and_headers(raw)
                case = f"{method} {path} {name}: {value[:40]!r} -> {status}"
                if status >= 500 and status != 503:
                    failures.append(case)
                if (
                    status == 400
                    and b"x-request-id" not in got
                    and name
                    in (
                        "host",
                        "content-length",
                        "expect",
                    )
                ):
                    continue  # refused by the HTTP server itself, before the app
                if b"x-request-id" not in got:
                    failures.append(case + " without X-Request-ID")
                if frontend and got.get(b"content-security-policy") != (
                    CONTENT_SECURITY_POLICY.encode()
                ):
                    failures.append(case + " without the security headers")
    return failures


def test_no_header_value_makes_the_frontend_answer_500(hardened: Stack) -> None:
    failures = _sweep(hardened.frontend.port, FRONTEND_ROUTES, frontend=True)
    assert not failures, "\n".join(failures[:40])


def test_no_header_value_makes_the_backend_answer_500(hardened: Stack) -> None:
    failures = _sweep(hardened.backends[0].port, BACKEND_ROUTES, frontend=False)
    assert not failures, "\n".join(failures[:40])


def test_a_malformed_origin_on_the_form_is_a_403_page(hardened: Stack) -> None:
    client = hardened.client()
    page = client.get("/")
    assert page.status_code == 200
    response = client.post(
        "/messages",
        data={"author": "a", "text": "b", "csrf_token": client.cookies["csrf_token"]},
        headers={"Origin": "http://["},
    )
    assert response.status_code == 403
    assert "sent from another site" in response.text


def test_the_forwarded_chain_keeps_only_addresses(hardened: Stack) -> None:
    """A non-ASCII X-Forwarded-For on a write is rebuilt, and the write lands."""
    client = hardened.client()
    response = client.post(
        "/api/messages",
        json={"author": "Chain", "text": "rebuilt"},
        headers={"X-Forwarded-For": "é, 198.51.100.7, junk".encode()},
    )
    assert response.status_code == 201, response.text


async def _boom() -> None:
    raise RuntimeError("a bug")


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://test",
    ) as client:
        return await client.get(path, headers={"X-Request-ID": "boom-1"})


def test_an_unforeseen_error_is_a_dressed_500() -> None:
    """A route that raises: the 500 carries the request id and the security headers."""
    for create, api_path in ((create_frontend, "/api/boom"), (create_backend, "/boom")):
        app = create()
        app.add_api_route(api_path, _boom)
        response = asyncio.run(_get(app, api_path))
        assert response.status_code == 500
        assert response.json()["error"] == "internal_error"
        assert "a bug" not in response.text
        assert response.headers["x-request-id"] == "boom-1"
        if create is create_frontend:
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["x-frame-options"] == "DENY"
