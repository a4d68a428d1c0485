"""lab/kubelet.py's way into a running container, for `kubectl exec`."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

from lab.kubelet import PodWorker, Running


def _worker(**running: Running) -> Any:
    return SimpleNamespace(running=running)


def _running(prefix: list[str], engine: str | None, env: dict[str, str]) -> Running:
    proc: Any = SimpleNamespace(returncode=None)
    return Running(proc, None, prefix, env, engine_name=engine)  # type: ignore[arg-type]


def test_an_engine_container_is_entered_by_the_engines_cli_in_the_labs_environment() -> None:
    worker = _worker(app=_running(["docker", "exec", "cip-app"], "cip-app", {"PORT": "8080"}))
    argv, env = PodWorker.exec_argv(worker, "app", stdin=True)  # type: ignore[misc]
    # stdin only reaches the command with -i; the CLI must find its engine (DOCKER_HOST).
    assert argv == ["docker", "exec", "-i", "cip-app"]
    assert env == dict(os.environ)  # the container's own env is the engine's to give


def test_a_process_container_is_entered_with_its_own_environment() -> None:
    prefix = ["ip", "netns", "exec", "cip-db-0", "setpriv", "--reuid", "999"]
    worker = _worker(db=_running(prefix, None, {"MYSQL_DATABASE": "app"}))
    argv, env = PodWorker.exec_argv(worker, "db", stdin=False)  # type: ignore[misc]
    assert argv == prefix and env == {"MYSQL_DATABASE": "app"}


def test_a_container_that_is_not_running_cannot_be_entered() -> None:
    stopped = _running(["docker", "exec", "x"], "x", {})
    stopped.proc.returncode = 0  # type: ignore[misc]
    assert PodWorker.exec_argv(_worker(app=stopped), "app", stdin=False) is None  # type: ignore[misc]
    assert PodWorker.exec_argv(_worker(), "app", stdin=False) is None  # type: ignore[misc]


def test_a_terminal_is_asked_of_the_engine_with_t() -> None:
    worker = _worker(app=_running(["docker", "exec", "cip-app"], "cip-app", {}))
    argv, _ = PodWorker.exec_argv(worker, "app", stdin=True, tty=True)  # type: ignore[misc]
    assert argv == ["docker", "exec", "-i", "-t", "cip-app"]
