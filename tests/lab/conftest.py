"""The lab for tests: one `python -m lab up` per module, started once, stopped like Ctrl-C.

Tests here need root, `ip` (iproute2), `iptables` (nf_tables), kubectl,
mariadbd, redis-server and setpriv. Without them they skip with the reason;
under CI=true that is a failure, as for the other real-server tests.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import missing
from tests.lab.labctl import FIGURES, REPO, LabProcess, lab_unavailable
from tests.support.ports import free_port


@pytest.fixture(scope="session")
def lab_host() -> None:
    reason = lab_unavailable()
    if reason:
        missing(reason)


@pytest.fixture(scope="module")
def lab(lab_host: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """The whole app in the lab, with the manifests' replica counts, ready."""
    log = tmp_path_factory.mktemp("lab") / "lab.log"
    process = LabProcess(log, free_port())
    try:
        process.start()
    except BaseException:
        process.stop()  # a lab that never got ready must not outlive the test
        raise
    yield process
    process.stop()
    # Whatever a failed test left, the next module (or person) starts clean.
    subprocess.run(
        [sys.executable, "-m", "lab", "down"], cwd=REPO, capture_output=True, check=False
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("ClusterIP lab figures")
    for title, figures in FIGURES:
        terminalreporter.write_line(title)
        for key, value in figures.items():
            terminalreporter.write_line(f"    {key}: {value}")
