"""`bench --check` runs end to end and writes its report (its numbers are not checked:
timing belongs to `make bench`, never to a test)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from localservers.servers import mariadb_binaries, redis_binary
from tests.conftest import missing

REPO = Path(__file__).resolve().parents[2]


def test_bench_check_writes_every_section(tmp_path: Path) -> None:
    if not shutil.which("wrk"):
        missing("wrk is not installed (apt-get install wrk)")
    if mariadb_binaries() is None or redis_binary() is None:
        missing("MariaDB or Redis is not installed")
    output = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--check", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = output.read_text()
    for row in (
        "bare FastAPI",
        "backend GET /api/messages (Redis)",
        "backend GET /api/messages (MySQL only)",
        "backend POST /api/messages",
        "frontend page / (frontend → backend → Redis)",
        "frontend GET /api/route",
        "new client per request",
        "ratio to same-work",
        "same-work app for: backend GET /api/messages (Redis)",
        "same-work app for: frontend page /",
        "## What each production feature costs",
        "| JSON access log |",
        "## What tracing costs",
        "| frontend page / (frontend → backend → Redis) | ",
        "## As the data grows",
        "| 10,000 |",
        "## Memory and start-up",
        "## Machine",
    ):
        assert row in report, f"missing {row!r} in the report"
    # Its runs go side by side: the page must not pass for a measurement.
    assert "**not a measurement**" in report.split("\n## ", 1)[0]
    assert (tmp_path / "benchmarks.png").stat().st_size > 1000
    assert (tmp_path / "benchmarks-scale.png").stat().st_size > 1000
    assert "[bench " in done.stdout  # progress lines while it runs
