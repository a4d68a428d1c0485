"""The frontend's HTTP contract: Allow, HEAD, and its 413 as a page or as JSON."""

from __future__ import annotations

import gzip
import hashlib
import socket

import pytest

from frontend.templating import STATIC_DIR
from tests.frontend.conftest import Stack


@pytest.mark.parametrize(
    ("path", "method", "allow", "html"),
    [
        ("/messages", "DELETE", "GET, HEAD, POST", True),
        ("/", "POST", "GET, HEAD", True),
        ("/api/messages", "PUT", "GET, HEAD, POST", False),
        ("/api/messages/1", "POST", "GET, HEAD", False),
        ("/static/style.css", "POST", "GET, HEAD", True),
    ],
)
def test_405_allows_every_method_of_the_path(
    solo: Stack, path: str, method: str, allow: str, html: bool
) -> None:
    response = solo.client().request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    kind = "text/html" if html else "application/json"
    assert response.headers["content-type"].startswith(kind)


@pytest.mark.parametrize(
    "path", ["/", "/spread?n=2", "/api/route", "/healthz", "/static/style.css"]
)
def test_head_answers_like_get_without_a_body(solo: Stack, path: str) -> None:
    client = solo.client()
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_oversize_form_gets_a_page(solo: Stack) -> None:
    response = solo.client().post(
        "/messages", data={"author": "a", "text": "x" * 40_000}, headers={"X-Request-ID": "f-413"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Request Entity Too Large</h1>" in response.text or "Too Large" in response.text
    assert "Back to the guestbook" in response.text
    # Answered like any other page: identified, and with the page's headers.
    assert response.headers["x-request-id"] == "f-413"
    assert "content-security-policy" in response.headers
    assert response.headers["connection"] == "close"


def test_oversize_api_post_gets_json(solo: Stack) -> None:
    response = solo.client().post("/api/messages", json={"author": "a", "text": "x" * 40_000})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_oversize_form_sent_whole_still_gets_its_413(solo: Stack) -> None:
    size = 2_000_000
    request = (
        b"POST /messages HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    ) + b"t" * size
    for attempt in range(10):
        with socket.create_connection(("127.0.0.1", solo.frontend.port), timeout=30) as sock:
            sock.sendall(request)
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 413"), (attempt, reply[:200])
        assert b"text/html" in reply


@pytest.mark.parametrize("path", ["/", "/spread?n=2", "/no/such/page"])
def test_every_page_has_one_h1(solo: Stack, path: str) -> None:
    assert solo.client().get(path).text.count("<h1") == 1


@pytest.mark.parametrize("path", ["/", "/spread?n=2", "/static/style.css"])
def test_pages_and_stylesheet_are_gzipped_for_clients_that_accept_it(
    solo: Stack, path: str
) -> None:
    client = solo.client()
    # Sent raw to see the bytes on the wire; httpx would decode them.
    with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as response:
        wire = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in response.headers["vary"].lower()
    text = gzip.decompress(wire).decode()
    assert len(wire) < len(text.encode()) / 2
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert text.split("<main")[0] == plain.text.split("<main")[0]


@pytest.mark.parametrize("path", ["/api/route", "/api/messages", "/healthz"])
def test_json_is_sent_as_it_is(solo: Stack, path: str) -> None:
    response = solo.client().get(path, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers


def test_the_stylesheet_url_names_its_content_and_is_cached_for_good(solo: Stack) -> None:
    client = solo.client()
    page = client.get("/").text
    digest = hashlib.sha256((STATIC_DIR / "style.css").read_bytes()).hexdigest()[:16]
    href = f"/static/style.css?v={digest}"
    assert f'<link rel="stylesheet" href="{href}">' in page
    css = client.get(href)
    assert css.status_code == 200
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    # Any other URL for it may be stale: the browser must ask again.
    for other in ("/static/style.css", "/static/style.css?v=0.1.0"):
        assert client.get(other).headers["cache-control"] == "no-cache"


def test_openapi_says_an_unanswered_write_is_a_504_with_its_key() -> None:
    from frontend.main import create_app

    post = create_app().openapi()["paths"]["/api/messages"]["post"]["responses"]
    unknown = post["504"]
    assert "outcome_unknown" in unknown["description"]
    assert unknown["headers"]["Idempotency-Key"]["required"] is True
    assert "Retry-After" not in unknown["headers"]
    assert "Retry-After" in post["503"]["headers"]
