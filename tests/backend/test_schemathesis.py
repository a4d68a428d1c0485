"""Property-based requests generated from the backend's own OpenAPI schema.

Schemathesis sends what the schema allows and much that it does not; the
only check here is the one that matters for a public API: no 5xx, ever.
Both the database-only and the Redis-backed configurations are fuzzed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BackendFactory


@pytest.mark.parametrize("with_redis", [False, True], ids=["sqlite", "sqlite+redis"])
def test_no_server_errors(
    backend_factory: BackendFactory,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    with_redis: bool,
) -> None:
    redis_url = request.getfixturevalue("fresh_redis").url() if with_redis else ""
    app = backend_factory(redis_url=redis_url, rate_limit_writes="1000000")
    junit = tmp_path / "schemathesis.xml"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{app.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--seed",
            "20261125",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, output
    assert junit.exists()
    assert "testcase" in junit.read_text()
    assert '"level": "error"' not in app.logs(), app.logs()[-3000:]
