"""An empty cluster gets its DNS add-on, then the app through the real `kubectl apply`.

As on a cluster made with kubeadm: the DNS Deployment is created in kube-system by the
installer (its Service is the API server's, lab/api/bootstrap.py), and the user's own
command deploys the app. The lab runs `kubectl apply -k <dir>` (or `-f <file>`) with a
kubeconfig of its own, so what the user sees is kubectl's output, verbatim.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from lab.api import kubeconfig
from lab.node.client import ApiError, Client

KUBELET_PORT = 10250  # where a kubelet listens; registered in the Node's status


async def register_kubelet(client: Client, node: str) -> None:
    """status.daemonEndpoints: from now on the API server deletes this node's pods
    gracefully, waiting for the kubelet to stop them (lab/api/graceful.py)."""
    path = f"/api/v1/nodes/{node}"
    current = await client.get(path)
    status = current.setdefault("status", {})
    status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": KUBELET_PORT}}
    await client.replace(f"{path}/status", current)


async def create_addon(client: Client, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        namespace = doc["metadata"]["namespace"]
        try:
            await client.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", doc)
        except ApiError as exc:
            if exc.code != 409:  # already there: a second `up` on the same store
                raise


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, token: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(kubeconfig.dump(kubeconfig.standalone(server, ca_pem, token)))
    return path


def apply_command(config: Path, kustomize: Path | None, filename: Path | None) -> list[str]:
    source = ["-f", str(filename)] if filename else ["-k", str(kustomize)]
    return ["kubectl", "--kubeconfig", str(config), "apply", *source]


async def kubectl_apply(argv: list[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")
