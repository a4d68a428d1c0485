"""Real frontend processes (`python -m frontend`) for the tests, on free ports."""

from __future__ import annotations

from tests.support.apps import AppProcess, Launcher


class FrontendLauncher(Launcher):
    """Starts frontend processes pointed at a BACKEND_URL and stops them all at the end."""

    module = "frontend"

    def __call__(
        self,
        backend_url: str,
        pod_name: str | None = None,
        wait_ready: bool = True,
        **env: str,
    ) -> AppProcess:
        overrides = {k.upper(): v for k, v in env.items()}
        return self.launch({"BACKEND_URL": backend_url} | overrides, pod_name, wait_ready)
