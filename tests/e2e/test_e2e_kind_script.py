"""scripts/e2e-kind.sh cannot run here (no engine, no kind), but its refusal can: it must
stop at once, non-zero, naming what is missing, before it builds or applies anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "e2e-kind.sh"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run(bin_dir: Path) -> subprocess.CompletedProcess:
    # Only our fake tools plus the basics: whatever docker/kind the host has stays hidden.
    basics = bin_dir / "basics"
    basics.mkdir(exist_ok=True)
    for tool in ("bash", "sed", "sort", "wc", "printf", "dirname", "cat", "env", "grep"):
        found = shutil.which(tool)
        if found and not (basics / tool).exists():
            (basics / tool).symlink_to(found)
    env = {"PATH": f"{bin_dir}:{basics}", "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(basics / "bash"), str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def test_script_is_executable():
    assert os.access(SCRIPT, os.X_OK)


def test_refuses_without_docker(tmp_path):
    result = _run(tmp_path)
    assert result.returncode != 0
    assert "docker is not installed" in result.stderr


def test_refuses_without_a_docker_engine(tmp_path):
    _fake(tmp_path, "docker", 'echo "Cannot connect to the Docker daemon" >&2; exit 1')
    result = _run(tmp_path)
    assert result.returncode != 0
    assert "engine is not reachable" in result.stderr


def test_refuses_without_kind(tmp_path):
    _fake(tmp_path, "docker", 'if [ "$1" = info ]; then exit 0; fi; echo "build!" >&2; exit 1')
    result = _run(tmp_path)
    assert result.returncode != 0
    assert "kind is not installed" in result.stderr
    assert "build!" not in result.stderr, "it must not build before the preflight passes"


def test_refuses_without_kubectl(tmp_path):
    _fake(tmp_path, "docker", 'if [ "$1" = info ]; then exit 0; fi; exit 1')
    _fake(tmp_path, "kind", "exit 1")
    result = _run(tmp_path)
    assert result.returncode != 0
    assert "kubectl is not installed" in result.stderr


def test_script_passes_shellcheck():
    found = shutil.which("shellcheck")
    if found is None:
        pytest.skip("shellcheck not installed (Debian: apt-get install -y shellcheck)")
    result = subprocess.run(
        [found, str(SCRIPT)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout
