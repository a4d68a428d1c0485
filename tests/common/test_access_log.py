"""The access log writes one JSON line per request, with the request id, in the
layout of every other log line, whatever the path holds."""

from __future__ import annotations

import asyncio
import io
import json

from common.access_log import AccessLog


def _bound() -> tuple[AccessLog, io.StringIO]:
    stream = io.StringIO()
    log = AccessLog()
    log.bind(stream, "backend", 'pod-"a"')
    return log, stream


def test_one_json_line_per_request_with_its_id() -> None:
    log, stream = _bound()
    log.write("rid-1", "GET", "/api/messages", 200, 1.25, "10.0.0.7")
    log.write("rid-2", "POST", "/api/messages", 201, 3.5, None)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["request_id"] == "rid-1"
    assert first["pod"] == 'pod-"a"'
    assert first["service"] == "backend"
    assert (first["level"], first["logger"], first["msg"]) == ("info", "access", "request")
    assert (first["method"], first["path"], first["status"]) == ("GET", "/api/messages", 200)
    assert first["duration_ms"] == 1.25
    assert first["client"] == "10.0.0.7"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["client"] is None
    assert second["request_id"] == "rid-2"


def test_paths_from_the_wire_are_escaped_and_passwords_masked() -> None:
    log, stream = _bound()
    log.write("rid", "GET", '/x"y\\z\n\u00e9/redis://u:hunter2@h/0', 404, 0.5, "::1")
    entry = json.loads(stream.getvalue())
    assert entry["path"] == '/x"y\\z\n\u00e9/redis://u:***@h/0'
    assert "hunter2" not in stream.getvalue()


def test_lines_written_in_one_loop_turn_go_out_together_at_the_next() -> None:
    log, stream = _bound()

    async def scenario() -> tuple[str, str]:
        log.write("a", "GET", "/", 200, 1.0, None)
        log.write("b", "GET", "/", 200, 1.0, None)
        before = stream.getvalue()
        await asyncio.sleep(0)
        return before, stream.getvalue()

    before, after = asyncio.run(scenario())
    assert before == ""
    assert [json.loads(line)["request_id"] for line in after.splitlines()] == ["a", "b"]
