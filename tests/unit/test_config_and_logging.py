"""Settings, version and log redaction."""

from __future__ import annotations

import io
import json
import logging
import tomllib
from pathlib import Path

from backend.config import BackendSettings
from common.logging import JsonFormatter, request_id_var
from common.version import VERSION

REPO = Path(__file__).resolve().parents[2]


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == VERSION


def test_password_from_its_own_variable_needs_no_escaping(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://app@mysql:3306/app")
    monkeypatch.setenv("DATABASE_PASSWORD", "p@ss/w:rd")
    settings = BackendSettings()
    url = settings.sqlalchemy_url
    assert url.password == "p@ss/w:rd"
    assert url.host == "mysql"
    assert url.query["charset"] == "utf8mb4"
    assert "p@ss" not in url.render_as_string(hide_password=True)
    assert settings.database_kind == "mysql"


def test_a_password_is_not_put_into_a_sqlite_url(monkeypatch) -> None:
    # A pod switched to SQLite keeps its Secret: the URL must stay valid.
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/guestbook.db")
    monkeypatch.setenv("DATABASE_PASSWORD", "secret")
    url = BackendSettings().sqlalchemy_url
    assert url.password is None
    assert url.database == "/tmp/guestbook.db"


def test_local_default_is_sqlite_without_redis(monkeypatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "DATABASE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = BackendSettings()
    assert settings.database_kind == "sqlite"
    assert settings.redis_url == ""


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
