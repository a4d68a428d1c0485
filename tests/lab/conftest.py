"""The lab for tests: one `python -m lab up` per module, started once, stopped like Ctrl-C.

Tests here need root, `ip` (iproute2), `iptables` (nf_tables), kubectl,
mariadbd, redis-server and setpriv. Without them they skip with the reason;
under CI=true that is a failure, as for the other real-server tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.engine import detect
from tests.conftest import missing
from tests.lab.labctl import (
    FIGURES,
    PROXY_MODES,
    REPO,
    REPORT_MODE,
    LabProcess,
    lab_unavailable,
)
from tests.support.ports import free_port


@pytest.fixture(scope="session")
def lab_host() -> None:
    reason = lab_unavailable()
    if reason:
        missing(reason)


@pytest.fixture(scope="module", params=PROXY_MODES)
def proxy_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _lab(
    mode: str, tmp_path_factory: pytest.TempPathFactory, extra: list[str]
) -> Iterator[LabProcess]:
    if mode == "nftables" and shutil.which("nft") is None:
        missing("nftables mode needs nft (apt-get install nftables)")
    log = tmp_path_factory.mktemp(f"lab-{mode}") / "lab.log"
    process = LabProcess(
        log,
        free_port(),
        ["--proxy-mode", mode, *extra],
        checkout=_private_checkout(tmp_path_factory),
    )
    process.proxy_mode = mode
    REPORT_MODE.append(mode)
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


@pytest.fixture(scope="module")
def lab(
    proxy_mode: str,
    lab_host: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LabProcess]:
    """The whole app in a lab of one node, ready: the host is the node, so its rules are the
    host's own. (`make lab` makes three; test_lab_nodes.py and test_lab_home.py run those.)"""
    yield from _lab(proxy_mode, tmp_path_factory, ["--nodes", "1"])


@pytest.fixture(scope="module")
def lab3(
    proxy_mode: str,
    lab_host: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LabProcess]:
    """The whole app in a lab of three nodes, as `make lab` makes it, ready."""
    yield from _lab(proxy_mode, tmp_path_factory, ["--nodes", "3"])


def _private_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository in a directory of mode 0700, as a clone in a Debian home
    directory is: the pods' uid 10001 cannot read it, so the lab runs the pods from
    their images. Without a container engine the repository itself is used
    (test_lab_home.py runs a private checkout with no engine)."""
    if detect(REPO) is None:
        return REPO
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    copy = home / "clusterip-demo"
    skip = shutil.ignore_patterns(".git", ".venv", "var", "node_modules", "__pycache__", ".*cache")
    shutil.copytree(REPO, copy, ignore=skip)
    return copy


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("ClusterIP lab figures")
    for title, figures in FIGURES:
        terminalreporter.write_line(title)
        for key, value in figures.items():
            terminalreporter.write_line(f"    {key}: {value}")
