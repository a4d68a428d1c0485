"""Run schemathesis (4.x, the CLI) with every check over a live server's OpenAPI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Enough for each phase (examples, coverage, fuzzing, stateful) to reach every
# operation with valid and invalid input, few enough to keep `make test` short.
MAX_EXAMPLES = 40
# A fixed seed: a failure found once is found again on the next run.
SEED = 20261130


def run_all_checks(base_url: str, workdir: Path, max_examples: int = MAX_EXAMPLES) -> str:
    """Every check on every operation; returns the junit report, asserts no failure."""
    junit = workdir / "schemathesis.xml"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(max_examples),
            "--seed",
            str(SEED),
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=workdir,  # its .hypothesis/ and cassettes stay out of the repository
    )
    output = done.stdout[-8000:] + done.stderr[-2000:]
    assert done.returncode == 0, output
    assert "No issues found" in done.stdout, output
    report = junit.read_text()
    assert "<testcase" in report
    return report
