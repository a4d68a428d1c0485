"""The guestbook page and the spread page, over HTTP, against a real backend."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.frontend.conftest import (
    Stack,
    hidden_fields,
    hop_html,
    hop_states,
    wait_for_pod_details,
    write_via_form,
)


def _ids_on(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="message[^"]*" id="message-(\d+)"', html)]


def test_page_shows_the_guestbook_and_every_hop(solo: Stack) -> None:
    client = solo.client()
    wait_for_pod_details(client)
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    assert "How this page reached its data" in html
    assert hop_states(html) == {
        "frontend": "ok",
        "name": "ok",
        "address": "ok",
        "pod": "ok",
        "data": "ok",
    }
    assert "frontend-a" in hop_html(html, "frontend")
    name = hop_html(html, "name")
    assert f"localhost:{solo.backends[0].port}" in name
    # The address the connection was opened to, and when: no lookup per view.
    assert "resolved to 127.0.0.1 when this connection was opened" in name
    assert "UTC" in name and "none for this view" in name
    assert f"127.0.0.1:{solo.backends[0].port}" in hop_html(html, "address")
    pod = hop_html(html, "pod")
    assert "backend-solo" in pod and "in the backend" in pod
    data = hop_html(html, "data")
    assert "SQLite" in data and "no Redis cache here" in data
    assert 'href="https://kubernetes.io/docs/concepts/services-networking/service/"' in html
    assert '<form method="post" action="/messages"' in html
    # The frontend's own Server-Timing carries the backend hop.
    assert "backend;dur=" in response.headers["server-timing"]
    assert response.headers["x-served-by"] == "frontend-a"


def test_html_carries_security_headers_and_no_script(solo: Stack) -> None:
    response = solo.client().get("/")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "<script" not in response.text.lower()
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("csrf_token=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    css = solo.client().get("/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"


def test_the_form_posts_then_redirects_to_the_new_message(solo: Stack) -> None:
    client = solo.client()
    text = f"hello via the form {uuid.uuid4().hex[:8]}"
    posted = write_via_form(client, "Form Tester", text)
    assert posted.status_code == 303, posted.text
    location = posted.headers["location"]
    match = re.fullmatch(r"/\?written=(\d+)#message-(\d+)", location)
    assert match and match[1] == match[2]
    page = client.get(location.split("#")[0])
    assert page.status_code == 200
    assert f'class="message message-new" id="message-{match[1]}"' in page.text
    assert text in page.text
    assert "written by backend pod <code>backend-solo</code>" in page.text


def test_resubmitting_the_same_form_writes_once(solo: Stack) -> None:
    client = solo.client()
    page = client.get("/")
    fields = hidden_fields(page.text)
    text = f"sent twice {uuid.uuid4().hex[:8]}"
    data = fields | {"author": "Twice", "text": text}
    first = client.post("/messages", data=data)
    again = client.post("/messages", data=data)  # the browser's "resend form"
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    listed = client.get("/api/messages", params={"limit": 100}).json()["items"]
    assert [m["text"] for m in listed].count(text) == 1
    # A new page view means a new form, and so a new key.
    assert hidden_fields(client.get("/").text)["idempotency_key"] != fields["idempotency_key"]


def test_invalid_input_is_shown_by_the_form_with_what_was_typed(solo: Stack) -> None:
    client = solo.client()
    page = client.get("/")
    fields = hidden_fields(page.text)
    response = client.post(
        "/messages", data=fields | {"author": "   ", "text": "keep <b>me</b> & this"}
    )
    assert response.status_code == 422
    html = response.text
    assert 'id="author-error"' in html and "after trimming" in html
    assert "keep &lt;b&gt;me&lt;/b&gt; &amp; this</textarea>" in html
    assert 'aria-invalid="true"' in html
    # Same form, same key: sending it corrected cannot write twice.
    assert hidden_fields(html)["idempotency_key"] == fields["idempotency_key"]
    too_long = client.post("/messages", data=fields | {"author": "x" * 65, "text": "fine"})
    assert too_long.status_code == 422
    assert 'value="' + "x" * 65 + '"' in too_long.text


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("wrong token", {}),
        ("no cookie", {}),
        ("cross-site fetch", {"Sec-Fetch-Site": "cross-site"}),
        ("foreign origin", {"Origin": "http://evil.example"}),
    ],
)
def test_forged_posts_are_refused_and_keep_the_text(
    solo: Stack, case: str, headers: dict[str, str]
) -> None:
    client = solo.client()
    fields = hidden_fields(client.get("/").text)
    text = f"forged {case} {uuid.uuid4().hex[:8]}"
    data = fields | {"author": "Mallory", "text": text}
    if case == "wrong token":
        data["csrf_token"] = "A" * 43
    if case == "no cookie":
        client.cookies.clear()
    response = client.post("/messages", data=data, headers=headers)
    assert response.status_code == 403
    assert "Not sent:" in response.text
    assert text in response.text  # kept in the form for a genuine retry
    listed = client.get("/api/messages", params={"limit": 100}).json()["items"]
    assert text not in [m["text"] for m in listed]


def test_a_form_from_one_replica_posts_through_the_other(solo: Stack) -> None:
    # No sticky sessions behind a ClusterIP: the token must not live in one pod.
    first, second = solo.frontends
    page = httpx.get(f"{first.url}/", timeout=20)
    fields = hidden_fields(page.text)
    text = f"across replicas {uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{second.url}/messages",
        data=fields | {"author": "Roamer", "text": text},
        cookies={"csrf_token": page.cookies["csrf_token"]},
        timeout=20,
    )
    assert response.status_code == 303, response.text


def test_a_stored_script_is_shown_as_text(solo: Stack) -> None:
    client = solo.client()
    hostile = f"<script>alert(1)</script> <img src=x onerror=alert(2)> {uuid.uuid4().hex[:6]}"
    created = client.post("/api/messages", json={"author": "<b>bold</b>", "text": hostile})
    assert created.status_code == 201
    html = client.get("/").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script" not in html and "<img" not in html


def test_older_messages_are_a_link_away(solo: Stack) -> None:
    client = solo.client()
    for i in range(22):
        client.post("/api/messages", json={"author": "Pager", "text": f"page me {i}"})
    first = client.get("/")
    ids = _ids_on(first.text)
    assert len(ids) == 20 and ids == sorted(ids, reverse=True)
    match = re.search(r'href="/\?before_id=(\d+)"', first.text)
    assert match, "no link to older messages"
    older = client.get(f"/?before_id={match[1]}")
    assert older.status_code == 200
    older_ids = _ids_on(older.text)
    assert older_ids and max(older_ids) < min(ids)
    assert 'href="/">Newest</a>' in older.text


@pytest.mark.parametrize("query", ["before_id=abc", "before_id=0", "written=-1"])
def test_bad_query_is_a_422_page(solo: Stack, query: str) -> None:
    response = solo.client().get(f"/?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "Unprocessable" in response.text
    assert "Traceback" not in response.text


def test_unknown_paths_are_404_in_the_right_language(solo: Stack) -> None:
    client = solo.client()
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page here." in page.text
    api = client.get("/api/no/such/thing")
    assert api.status_code == 404
    assert api.json()["error"] == "not_found"
    assert client.get("/messages").status_code == 303  # where a failed post leaves the URL


def test_oversize_form_is_refused_before_parsing(solo: Stack) -> None:
    response = solo.client().post("/messages", data={"author": "a", "text": "x" * 40_000})
    assert response.status_code == 413


def test_spread_page_draws_both_runs(solo: Stack) -> None:
    response = solo.client().get("/spread", params={"n": 6})
    assert response.status_code == 200
    html = response.text
    assert html.count('<svg class="chart"') == 2
    assert "6 requests, each on a new connection" in html
    assert "6 requests on one kept-alive connection" in html
    assert "6 connections opened" in html and "1 connection opened" in html
    assert ">backend-solo</text>" in html
    assert "A ClusterIP spreads connections, not requests." in html
    assert "MAX_CONNECTION_AGE_SECONDS" in html
    assert "<script" not in html.lower()


@pytest.mark.parametrize("n", ["0", "201", "abc", "-5", "1.5"])
def test_spread_page_refuses_bad_n(solo: Stack, n: str) -> None:
    response = solo.client().get("/spread", params={"n": n})
    assert response.status_code == 422
    assert "n must be a whole number from 1 to 200" in response.text
    assert f'value="{n}"' in response.text  # what was typed stays in the box
    assert '<svg class="chart"' not in response.text
