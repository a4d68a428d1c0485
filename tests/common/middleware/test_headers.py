"""common/middleware/headers.py: the status of a start message, and a send
that replaces the Connection header with `close`."""

from __future__ import annotations

import anyio
from starlette.types import Message

from common.middleware.headers import status_of, with_connection_close


def test_status_of_reads_only_a_start_message() -> None:
    assert status_of({"type": "http.response.start", "status": 201}, 500) == 201
    assert status_of({"type": "http.response.body", "body": b""}, 201) == 201


def test_connection_close_replaces_any_connection_header() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"Connection", b"keep-alive"), (b"x-a", b"1")],
    }
    anyio.run(with_connection_close(send), start)
    assert sent[0]["headers"] == [(b"x-a", b"1"), (b"connection", b"close")]
