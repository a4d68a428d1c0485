"""common/asgi_json.py: the two ASGI messages of a JSON answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from common.asgi_json import send_json


def test_a_json_answer_is_a_start_with_its_length_then_the_body() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(send_json(send, 413, {"error": "payload_too_large", "message": "é"}))
    start, body = sent
    assert start["status"] == 413
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body["body"])
    assert json.loads(body["body"]) == {"error": "payload_too_large", "message": "é"}
