"""Every endpoint of the backend, through the network, on SQLite, MariaDB and MariaDB+Redis."""

from __future__ import annotations

import re
import socket
import uuid
from datetime import datetime

import httpx
import pytest

from tests.backend.conftest import Api


def post(api: Api, author: str = "Ada", text: str = "hello", **headers: str):
    return api.client.post("/api/messages", json={"author": author, "text": text}, headers=headers)


def test_probes_and_info(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["dependencies"]["database"] == "up"
    assert body["dependencies"]["cache"] == ("up" if api.cached else "disabled")
    info = api.client.get("/api/info").json()
    assert info["service"] == "backend"
    assert info["pod_name"] == api.app.env["POD_NAME"]
    assert info["database"] == ("sqlite" if api.kind == "sqlite" else "mysql")
    assert info["cache"] == ("up" if api.cached else "disabled")
    assert info["status"] == "ok"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", info["version"])


def test_every_response_names_the_pod_and_times_itself(api: Api) -> None:
    response = api.client.get("/api/messages", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-served-by"] == api.app.env["POD_NAME"]
    assert response.headers["x-request-id"] == "trace-123"
    timing = response.headers["server-timing"]
    assert "app;dur=" in timing
    assert ("cache;dur=" in timing) == api.cached
    assert "db;dur=" in timing  # first read of a page always reaches the database
    made_up = api.client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made_up)
    hostile = api.client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert hostile.headers["x-request-id"] != "bad id\twith tab"


def test_write_then_read_it_back(api: Api) -> None:
    created = post(api, author="  Grace  ", text="  first\r\nline two  ")
    assert created.status_code == 201
    body = created.json()
    assert created.headers["location"] == f"/api/messages/{body['id']}"
    assert body["author"] == "Grace"
    assert body["text"] == "first\nline two"
    assert body["written_by"] == api.app.env["POD_NAME"]
    assert body["created_at"].endswith("Z")
    datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    fetched = api.client.get(body["id"] and created.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_unicode_round_trips(api: Api) -> None:
    text = "Grüße 👩🏽‍💻 你好 مرحبا ‮rtl‬ 🇺🇦"
    created = post(api, author="Zoë 🦊", text=text)
    assert created.status_code == 201, created.text
    fetched = api.client.get(created.headers["location"]).json()
    assert fetched["author"] == "Zoë 🦊"
    assert fetched["text"] == text


def test_list_is_newest_first_with_keyset_pages(api: Api) -> None:
    ids = [post(api, text=f"m{i}").json()["id"] for i in range(7)]
    page1 = api.client.get("/api/messages", params={"limit": 3}).json()
    assert [m["id"] for m in page1["items"]] == ids[::-1][:3]
    assert page1["next_before_id"] == ids[4]
    page2 = api.client.get(
        "/api/messages", params={"limit": 3, "before_id": page1["next_before_id"]}
    ).json()
    assert [m["id"] for m in page2["items"]] == ids[::-1][3:6]
    page3 = api.client.get(
        "/api/messages", params={"limit": 3, "before_id": page2["next_before_id"]}
    ).json()
    assert [m["id"] for m in page3["items"]] == [ids[0]]
    assert page3["next_before_id"] is None
    assert page1["cache"] == ("miss" if api.cached else "off")
    assert page1["cache_state"] == ("up" if api.cached else "disabled")


def test_stats(api: Api) -> None:
    for i in range(3):
        post(api, text=f"s{i}")
    api.client.get("/api/messages")
    api.client.get("/api/messages")
    stats = api.client.get("/api/stats").json()
    assert stats["messages"] == 3
    assert stats["writes_by_pod"] == {api.app.env["POD_NAME"]: 3}
    if api.cached:
        assert stats["visits"] == 2
    else:
        assert stats["visits"] is None


def _sample(metrics_text: str, series: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics(api: Api) -> None:
    created = 'http_requests_total{method="POST",route="/api/messages",status="201"}'
    missing = 'http_requests_total{method="GET",route="/api/messages/{message_id}",status="404"}'
    before = httpx.get(api.app.metrics_url).text
    post(api)
    api.client.get("/api/messages/999999")
    after = httpx.get(api.app.metrics_url).text
    assert _sample(after, created) == _sample(before, created) + 1
    assert _sample(after, missing) == _sample(before, missing) + 1
    assert "http_request_duration_seconds_bucket" in after
    assert 'cache_requests_total{result="miss"}' in after
    assert _sample(after, "db_errors_total") == 0.0
    assert 'app_info{pod="' in after


def test_metrics_only_on_the_metrics_port(api: Api) -> None:
    # The API's port is the one clients reach: it serves no metrics.
    assert api.client.get("/metrics").status_code == 404
    scrape = httpx.get(api.app.metrics_url)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    assert "http_requests_total" in scrape.text
    # Only /metrics there: anything else on that port is 404 too.
    other = api.app.metrics_url.removesuffix("/metrics") + "/api/messages"
    assert httpx.get(other).status_code == 404


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"author": "a"}, 422, "validation_error"),
        ({"author": 5, "text": "x"}, 422, "validation_error"),
        ({"author": ["a"], "text": "x"}, 422, "validation_error"),
        ({"author": "a", "text": "x", "admin": True}, 422, "validation_error"),
        ({"author": "   ", "text": "x"}, 422, "validation_error"),
        ({"author": "a", "text": " \n "}, 422, "validation_error"),
        ({"author": "a" * 65, "text": "x"}, 422, "validation_error"),
        ({"author": "a", "text": "x" * 1001}, 422, "validation_error"),
        ({"author": "a\nb", "text": "x"}, 422, "validation_error"),
        ({"author": "a", "text": "bell\x07"}, 422, "validation_error"),
        ({"author": "a", "text": "nul\x00"}, 422, "validation_error"),
        ([1, 2], 422, "validation_error"),
        ("just a string", 422, "validation_error"),
    ],
)
def test_bad_messages_are_refused_clearly(api: Api, payload, status: int, code: str) -> None:
    response = api.client.post("/api/messages", json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert "Traceback" not in response.text
    assert api.client.get("/api/stats").json()["messages"] == 0


def test_boundaries_are_accepted(api: Api) -> None:
    assert post(api, author="a" * 64, text="x" * 1000).status_code == 201
    assert post(api, author="é" * 64, text="😀" * 1000).status_code == 201


def test_lone_surrogate_is_refused_not_a_500(api: Api) -> None:
    raw = b'{"author": "a", "text": "\\ud800"}'
    response = api.client.post(
        "/api/messages", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "U+D800" in response.json()["message"]


@pytest.mark.parametrize("raw", [b"{bad", b'{"author": "a", "text": "x"', b"\xff\xfe"])
def test_malformed_json_is_400(api: Api, raw: bytes) -> None:
    response = api.client.post(
        "/api/messages", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_json"


def test_an_empty_body_is_a_missing_body_422(api: Api) -> None:
    # No bytes at all is no document (FastAPI reads it as an absent body), not a broken one.
    response = api.client.post(
        "/api/messages", content=b"", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["details"][0]["loc"] == ["body"]


def test_oversize_body_is_413(api: Api) -> None:
    big = {"author": "a", "text": "x" * 20_000}
    response = api.client.post("/api/messages", json=big, headers={"X-Request-ID": "big-1"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    # Refused before the app saw it, yet answered like any other response.
    assert response.headers["x-request-id"] == "big-1"
    assert response.headers["x-served-by"] == api.app.env["POD_NAME"]


def test_oversize_chunked_body_is_413(api: Api) -> None:
    # No Content-Length: the server must count what arrives.
    port = api.app.port
    chunk = b"x" * 8000
    request = (
        b"POST /api/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    for _ in range(4):
        request += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    request += b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/messages/987654", 404),
        ("/api/messages/0", 422),
        ("/api/messages/-3", 422),
        ("/api/messages/abc", 422),
        ("/api/messages/99999999999999999999999", 422),
        ("/api/messages?limit=0", 422),
        ("/api/messages?limit=101", 422),
        ("/api/messages?limit=ten", 422),
        ("/api/messages?before_id=0", 422),
        ("/api/messages?before_id=x", 422),
        ("/api/messages?limit=", 422),
        ("/api/messages?limit=2.5", 422),
        ("/api/messages?before_id=9223372036854775808", 422),
        ("/no/such/route", 404),
    ],
)
def test_bad_reads_are_clear_4xx(api: Api, path: str, status: int) -> None:
    response = api.client.get(path)
    assert response.status_code == status
    body = response.json()
    assert body["error"] in ("not_found", "validation_error")
    assert body["message"]


@pytest.mark.parametrize("limit", [" 2", "+2", "02", "2.0"])
def test_page_parameters_are_read_as_pydantic_reads_them(api: Api, limit: str) -> None:
    for i in range(3):
        post(api, text=f"p{i}")
    page = api.client.get("/api/messages", params={"limit": limit})
    assert page.status_code == 200, page.text
    assert len(page.json()["items"]) == 2


def test_page_parameters_are_documented() -> None:
    from backend.main import create_app

    operation = create_app().openapi()["paths"]["/api/messages"]["get"]
    params = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert params["limit"]["maximum"] == 100
    assert params["limit"]["default"] == 20
    assert params["before_id"]["anyOf"][0]["minimum"] == 1


def test_wrong_method_is_405_json(api: Api) -> None:
    response = api.client.delete("/api/messages")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_idempotency_key_makes_a_retry_safe(api: Api) -> None:
    key = uuid.uuid4().hex
    first = post(api, text="once", **{"Idempotency-Key": key})
    second = post(api, text="once", **{"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert api.client.get("/api/stats").json()["messages"] == 1
    reused = post(api, text="something else", **{"Idempotency-Key": key})
    assert reused.status_code == 409
    assert reused.json()["error"] == "idempotency_key_reused"
    bad_key = post(api, text="x", **{"Idempotency-Key": "spaces are not ok"})
    assert bad_key.status_code == 422


def test_concurrent_retries_with_one_key_make_one_row(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    key = uuid.uuid4().hex

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=api.app.url, timeout=10) as client:
            return client.post(
                "/api/messages",
                json={"author": "race", "text": "same"},
                headers={"Idempotency-Key": key},
            )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert api.client.get("/api/stats").json()["messages"] == 1


def test_openapi_documents_every_endpoint(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in (
        "/healthz",
        "/readyz",
        "/api/info",
        "/api/stats",
        "/api/messages",
        "/api/messages/{message_id}",
    ):
        assert path in paths
