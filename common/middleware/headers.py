"""What the request middlewares share about a response's start message."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Message, Send

HeaderList = list[tuple[bytes, bytes]]
# Adds headers of its own to a response's; gets the list to extend in place.
HeaderHook = Callable[[HeaderList], None]


def status_of(message: Message, current: int) -> int:
    """The status a response start message sets, else `current`."""
    return int(message["status"]) if message["type"] == "http.response.start" else current


def with_connection_close(send: Send) -> Send:
    """`send`, with the response's Connection header replaced by `close`."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
            message["headers"] = [*headers, (b"connection", b"close")]
        await send(message)

    return sending
