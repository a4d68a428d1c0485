"""Requests generated from the backend's own OpenAPI, with every schemathesis check.

Not only "no 5xx": every status the server answers is documented, every body
matches its documented schema (errors included), every input the schema allows
is taken and every input it refuses is refused, and the links between
operations (a write, then its read) hold. Run against the backend on real
MariaDB and Redis, and on SQLite without Redis (`make run`'s configuration).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BackendFactory
from tests.support.schemathesis import run_all_checks


@pytest.mark.parametrize("stack", ["mysql+redis", "sqlite"])
def test_every_check_passes(
    backend_factory: BackendFactory,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    stack: str,
) -> None:
    if stack == "mysql+redis":
        app = backend_factory(
            database_url=request.getfixturevalue("mysql_url"),
            redis_url=request.getfixturevalue("fresh_redis").url(),
        )
    else:
        app = backend_factory()
    report = run_all_checks(app.url, tmp_path)
    for path in ("/api/messages", "/api/messages/{message_id}", "/api/stats", "/readyz"):
        assert path in report, f"{path} was not exercised"
    assert '"level": "error"' not in app.logs(), app.logs()[-3000:]
