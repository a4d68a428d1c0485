"""Real frontend processes (`python -m frontend`) for the tests, on free ports."""

from __future__ import annotations

from pathlib import Path

from tests.support.apps import AppProcess


class FrontendLauncher:
    """Starts frontend processes pointed at a BACKEND_URL and stops them all at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[AppProcess] = []

    def __call__(
        self,
        backend_url: str,
        pod_name: str | None = None,
        wait_ready: bool = True,
        **env: str,
    ) -> AppProcess:
        index = len(self.started)
        base_env = {
            "BACKEND_URL": backend_url,
            "POD_NAME": pod_name or f"frontend-test-{index}",
            "POD_IP": "127.0.0.1",
            "NODE_NAME": "test-node",
            "SHUTDOWN_DELAY_SECONDS": "0",
            "LOG_LEVEL": "INFO",
        }
        app = AppProcess(
            "frontend",
            base_env | {k.upper(): v for k, v in env.items()},
            self.workdir / f"frontend-{index}.log",
        )
        self.started.append(app)
        app.start(wait_ready=wait_ready)
        return app

    def stop_all(self) -> None:
        for app in self.started:
            app.stop()
