"""Test launchers for the real tiers; the process wrapper lives in localservers/."""

from __future__ import annotations

from pathlib import Path

from localservers.apps import REPO, AppProcess, migrate

__all__ = ["REPO", "AppProcess", "Launcher", "migrate"]


class Launcher:
    """Starts processes of one tier for a test and stops them all at the end."""

    module: str

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[AppProcess] = []

    def launch(self, env: dict[str, str], pod_name: str | None, wait_ready: bool) -> AppProcess:
        index = len(self.started)
        identity = {
            "POD_NAME": pod_name or f"{self.module}-test-{index}",
            "POD_IP": "127.0.0.1",
            "NODE_NAME": "test-node",
            "SHUTDOWN_DELAY_SECONDS": "0",
            "LOG_LEVEL": "INFO",
        }
        app = AppProcess(self.module, identity | env, self.workdir / f"{self.module}-{index}.log")
        self.started.append(app)
        app.start(wait_ready=wait_ready)
        return app

    def stop_all(self) -> None:
        for app in self.started:
            app.stop()
