"""A client that leaves mid-request is no server fault: no traceback, no answer. In-process,
on the ASGI app itself (as starlette's own tests call an app), root-free."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from lab.api.http import ApiServer
from lab.api.storage import Store

TOKEN = "test-token"


def _scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-type", b"application/json"),
        ],
        "scheme": "https",
        "server": ("127.0.0.1", 6443),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "http_version": "1.1",
    }


def _call(method: str, path: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    app = ApiServer(Store(), TOKEN, "127.0.0.1:6443")
    sent: list[dict[str, Any]] = []
    waiting = list(messages)

    async def receive() -> dict[str, Any]:
        return waiting.pop(0) if waiting else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(_scope(method, path), receive, send))
    return sent


@pytest.mark.parametrize("method", ["DELETE", "POST"])
def test_a_client_gone_before_its_body_gets_no_answer_and_no_traceback(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="lab.api"):
        sent = _call(method, "/api/v1/namespaces/default/configmaps", [{"type": "http.disconnect"}])
    assert sent == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_body_that_arrives_is_answered() -> None:
    body = b'{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}'
    sent = _call(
        "POST",
        "/api/v1/namespaces",
        [{"type": "http.request", "body": body, "more_body": False}],
    )
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 201, sent[:1]
