"""common/logging.py: log lines are JSON with the request id and no secrets."""

from __future__ import annotations

import io
import json
import logging

from common.logging import JsonFormatter, request_id_var


def test_log_lines_are_json_with_request_id_and_no_secrets() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(pod_name="pod-a", service="backend"))
    logger = logging.getLogger("test.json")
    logger.handlers[:] = [handler]
    logger.propagate = False
    token = request_id_var.set("rid-1")
    try:
        logger.warning("db down", extra={"database": "mysql+pymysql://u:hunter2@h/db"})
    finally:
        request_id_var.reset(token)
    entry = json.loads(stream.getvalue())
    assert entry["request_id"] == "rid-1"
    assert entry["pod"] == "pod-a"
    assert entry["level"] == "warning"
    assert "hunter2" not in stream.getvalue()
