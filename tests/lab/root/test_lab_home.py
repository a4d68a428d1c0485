"""`sudo make lab` from a clone in a private home directory, on a machine with no engine.

A Debian home directory is 0700 and the clone's venv lives inside it: the pods'
uid 10001 can read neither. With no container engine answering, the lab runs
frontend and backend as processes from a copy of the app and its venv in its
own work directory (lab/checkout.py), and Ctrl-C removes the copy with the rest.

"No engine" is a DOCKER_HOST that nothing listens on: scripts/container-engine.sh
then finds none (the machine's shared engine is left alone, and never stopped).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lab.checkout import COPY_DIR, blocking_directory
from lab.engine import detect
from lab.network import IP_FORWARD, leftovers
from lab.state import lock_is_held
from tests.lab.labctl import REPO, LabProcess, report
from tests.support.ports import free_port

pytestmark = pytest.mark.lab

NO_ENGINE = "unix:///run/cip-lab-test-no-engine/docker.sock"
# The interpreter a Debian user makes the venv with (python3-venv, installed by .ci/run).
DEBIAN_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def home_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree copied into a 0700 home, with a venv of its own inside it."""
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    clone = home / "clusterip-demo"
    skip = shutil.ignore_patterns(".git", ".venv", "var", "node_modules", "__pycache__", ".*cache")
    shutil.copytree(REPO, clone, ignore=skip)
    # A venv of Debian's python3, as a Debian user's `make` makes it. Not the test's own:
    # where that one's interpreter lives under a 0700 directory (pyenv in /root on these
    # machines), uid 10001 gets another libpython (3.11.2) beside packages chosen for
    # 3.11.7, and environment markers (async-timeout below 3.11.3) no longer match.
    venv = clone / ".venv"
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
            str(clone / "requirements" / "dev.txt"),
        ],
        check=True,
    )
    (venv / ".installed").touch()  # `make` must not reinstall the requirements
    return clone


@pytest.fixture(scope="module")
def no_engine(lab_host: None) -> Iterator[dict[str, str]]:
    env = {**os.environ, "DOCKER_HOST": NO_ENGINE}
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = NO_ENGINE  # for leftovers(): the lab's engine, none
    try:
        if detect(REPO) is not None:
            pytest.skip("a container engine answers even with DOCKER_HOST pointing nowhere")
        yield env
    finally:
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved


def _wait_for_other_labs() -> None:
    deadline = time.monotonic() + 300
    while lock_is_held() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not lock_is_held(), "another lab is running on this machine"


def _app_processes(workdir: Path) -> dict[int, tuple[int, str]]:
    """pid → (uid, argv[0]) of every process that runs a Python from the lab's copy."""
    found: dict[int, tuple[int, str]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if argv and argv[0].decode(errors="replace").startswith(str(workdir / COPY_DIR)):
            uid = int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])
            found[int(proc.name)] = (uid, argv[0].decode())
    return found


def _ctrl_c(lab: LabProcess) -> int | None:
    """Ctrl-C as a terminal sends it, to make and the lab alike (make passes nothing on)."""
    if lab.proc is not None and lab.proc.poll() is None:
        os.killpg(lab.proc.pid, signal.SIGINT)
        try:
            lab.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(lab.proc.pid, signal.SIGKILL)
    return lab.stop()


def test_make_lab_from_a_private_home_with_no_engine(
    home_clone: Path, no_engine: dict[str, str], tmp_path: Path
) -> None:
    assert blocking_directory(home_clone) is not None  # uid 10001 cannot read the clone
    forward = IP_FORWARD.read_text().strip()
    port = free_port()
    _wait_for_other_labs()
    lab = LabProcess(
        tmp_path / "lab.log",
        port,
        checkout=home_clone,
        command=["make", "lab", "PROXY_MODE=iptables"],
        env={**no_engine, "LAB_PORT": str(port)},
    )
    started = time.monotonic()
    try:
        lab.start()
        page = httpx.get(f"{lab.base_url}/", timeout=30)
        served = time.monotonic() - started
        status = lab.status()
        workdir = Path(status["workdir"])
        processes = _app_processes(workdir)
        log = lab.log_tail(200_000)
    finally:
        code = _ctrl_c(lab)
    report(
        "make lab (three nodes) from a 0700 home, no engine",
        {"to a served page (s)": round(served, 1)},
        mode="iptables",  # the command's PROXY_MODE, not the last lab fixture's
    )

    assert page.status_code == 200, page.text[:500]
    # `make lab` makes three nodes unless NODES says otherwise.
    assert [n["name"] for n in status["nodes"]] == ["lab-node-1", "lab-node-2", "lab-node-3"]
    backend_vip = next(s["cluster_ip"] for s in status["services"] if s["name"] == "backend")
    backend_pods = {
        p["name"]
        for p in status["pods"]
        if p["labels"].get("app.kubernetes.io/name") == "backend" and not p["deleting"]
    }
    assert backend_vip in page.text
    assert any(name in page.text for name in backend_pods)
    assert "no container engine answers" in log, log[-3000:]
    assert "run from a copy" in log, log[-3000:]
    # Frontend and backend (three replicas) run the copy's Python, as the manifests' uid.
    assert len(processes) >= 4, processes
    assert {uid for uid, _ in processes.values()} == {10001}, processes
    copy_python = str(workdir / COPY_DIR / ".venv" / "bin" / "python")
    assert {argv0 for _, argv0 in processes.values()} == {copy_python}, processes

    # make dies of the SIGINT it got, as in a terminal; the lab under it stopped cleanly.
    assert code in (0, -signal.SIGINT), lab.log_tail()
    assert "lab: stopped; everything it added is removed." in lab.log_tail(), lab.log_tail()
    assert not workdir.exists()
    left = leftovers()
    assert not any(left.values()), left
    assert IP_FORWARD.read_text().strip() == forward
    assert (home_clone.parent.stat().st_mode & 0o777) == 0o700
    down = subprocess.run(
        ["make", "lab-down"], cwd=home_clone, env=no_engine, capture_output=True, text=True
    )
    assert down.returncode == 0 and "nothing of the lab is left" in down.stdout, down


def test_lab_down_stops_it_and_removes_the_copy(
    home_clone: Path, no_engine: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    _wait_for_other_labs()
    lab = LabProcess(
        tmp_path / "lab.log",
        port,
        checkout=home_clone,
        command=["make", "lab"],
        env={**no_engine, "LAB_PORT": str(port)},
    )
    try:
        lab.start()
        workdir = Path(lab.status()["workdir"])
        assert (workdir / COPY_DIR / ".venv" / "pyvenv.cfg").is_file()
        # From another terminal, as the lab's last line says.
        down = subprocess.run(
            ["make", "lab-down"], cwd=home_clone, env=no_engine, capture_output=True, text=True
        )
        assert lab.proc is not None
        lab.proc.wait(timeout=90)
    finally:
        _ctrl_c(lab)
    assert down.returncode == 0 and "nothing of the lab is left" in down.stdout, down
    assert not workdir.exists()
    left = leftovers()
    assert not any(left.values()), left
