"""The lab's Kubernetes API server beside its node: started with `lab up`, gone with it.

`lab up` serves lab/api/ on a free loopback port (its own thread and event loop, so a
slow request never holds up the kubelet's or kube-proxy's loop), writes the
`clusterip-lab` context into the invoking user's kubeconfig as kind does, and on the
way out removes the context and the server's state files. Meanwhile `python -m lab
kubeconfig` prints a standalone kubeconfig for it. The path written goes into the lab's
state, so `lab down` after a crash removes the context too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from lab.api import kubeconfig
from lab.api.podexec import Kubelet
from lab.api.server import InThread, Running
from lab.naming import STATE_DIR

# Inside the lab's own state directory (root's, 0700), not the root-free server's: a
# `python -m lab apiserver` someone runs beside the lab keeps its own files.
API_DIR = Path(STATE_DIR) / "api"


class ControlPlane:
    def __init__(self, workdir: Path | None = None, config_path: Path | None = None) -> None:
        self.workdir = workdir or API_DIR
        self.config_path = config_path or kubeconfig.default_path()
        self.server: InThread | None = None
        self.running: Running | None = None

    def start(
        self, pods_dir: Path | None = None, kubelet: Kubelet | None = None, nodes: int = 1
    ) -> Running:
        self.workdir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.workdir, 0o700)  # the token and the CA's key are in it
        self.server = InThread(self.workdir, pods_dir=pods_dir, kubelet=kubelet, nodes=nodes)
        self.running = self.server.start()
        creds = self.running.credentials
        kubeconfig.add_context(self.config_path, self.running.url, creds.ca_pem, creds.token)
        return self.running

    def stop(self) -> None:
        """Remove the context first: kubectl must not be left pointing at a dead port."""
        remove(self.config_path, self.workdir)
        if self.server is not None:
            self.server.stop()
            self.server = None


def remove(config_path: Path, workdir: Path) -> list[str]:
    """The context and the state files, whether or not the server still runs."""
    removed = []
    with contextlib.suppress(OSError, ValueError):
        if kubeconfig.remove_context(config_path):
            removed.append(f"context {kubeconfig.CONTEXT} in {config_path}")
    if workdir.exists():
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(str(workdir))
    return removed
