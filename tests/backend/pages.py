"""Putting page 1 in Redis before a fault test takes a dependency away."""

from __future__ import annotations

import httpx


def write_and_cache(client: httpx.Client, text: str) -> None:
    """Write one message, then read page 1 until Redis holds it: the next read is a hit."""
    assert client.post("/api/messages", json={"author": "a", "text": text}).status_code == 201
    client.get("/api/messages")
    assert client.get("/api/messages").json()["cache"] == "hit"
