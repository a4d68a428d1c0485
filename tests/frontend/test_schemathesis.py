"""Requests generated from the frontend's OpenAPI, with every schemathesis check.

The frontend's JSON twins (`/api/route`, `/api/spread`, the proxied
`/api/messages`) and its probes, in front of a real backend on MariaDB and
Redis: documented statuses and bodies, typed parameters, the request body's
schema, and the backend's answers passed through as documented.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BackendFactory
from tests.support.frontends import FrontendLauncher
from tests.support.schemathesis import run_all_checks


def test_every_check_passes(
    backend_factory: BackendFactory,
    frontend_factory: FrontendLauncher,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    backend = backend_factory(
        database_url=request.getfixturevalue("mysql_url"),
        redis_url=request.getfixturevalue("fresh_redis").url(),
    )
    # A small spread maximum, which the schema states: each example of
    # /api/spread costs 2n backend calls.
    frontend = frontend_factory(backend.url, spread_max="4", spread_default="2")
    report = run_all_checks(frontend.url, tmp_path)
    for path in ("/api/route", "/api/spread", "/api/messages", "/api/messages/{message_id}"):
        assert path in report, f"{path} was not exercised"
    for app in (frontend, backend):
        assert '"level": "error"' not in app.logs(), app.logs()[-3000:]
