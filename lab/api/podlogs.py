"""pods/log: a container's output, as the API server gets it from the pod's kubelet.

On a cluster kube-apiserver proxies the request to the kubelet of the pod's node, which
reads the container runtime's log file. The lab's kubelet runs in the same process as
its API server, so the link is a directory: the kubelet writes each container's output
to <pods dir>/<pod>/<container>.log, one section per start (a `--- lab:` line begins
each), and this reads the file the way `kubectl logs` wants it: the current start, or
with `previous` the one before, `tailLines` of it, and with `follow` what comes next.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lab.api.errors import ApiError

SECTION = b"--- lab: "
FOLLOW_POLL = 0.2


def sections(data: bytes) -> list[bytes]:
    """The output of each start of the container, oldest first, headers removed."""
    found: list[bytes] = []
    for line in data.splitlines(keepends=True):
        if line.startswith(SECTION):
            found.append(b"")
        elif found:
            found[-1] += line
    return found


def tail(text: bytes, lines: int | None) -> bytes:
    if lines is None:
        return text
    if lines <= 0:
        return b""
    return b"".join(text.splitlines(keepends=True)[-lines:])


def container_of(pod: dict[str, Any], asked: str | None) -> str:
    names = [c["name"] for c in pod["spec"].get("containers") or []]
    inits = [c["name"] for c in pod["spec"].get("initContainers") or []]
    name = pod["metadata"]["name"]
    if asked:
        if asked not in names + inits:
            raise ApiError(
                400,
                f"container {asked} is not valid for pod {name}",
                "BadRequest",
            )
        return asked
    if len(names) == 1:
        return names[0]
    raise ApiError(
        400,
        f"a container name must be specified for pod {name}, choose one of: "
        f"[{' '.join(names)}] or one of the init containers: [{' '.join(inits)}]",
        "BadRequest",
    )


class PodLogs:
    def __init__(self, pods_dir: Path) -> None:
        self.pods_dir = pods_dir

    def path(self, pod: str, container: str) -> Path:
        return self.pods_dir / pod / f"{container}.log"

    def read(self, pod: dict[str, Any], params: dict[str, str]) -> tuple[Path, bytes, int]:
        """The file, the answer now, and where a follow continues from."""
        container = container_of(pod, params.get("container"))
        name = pod["metadata"]["name"]
        path = self.path(name, container)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ApiError(
                400,
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
                "BadRequest",
            ) from None
        runs = sections(data)
        previous = params.get("previous") in ("true", "1")
        if previous:
            if len(runs) < 2:
                raise ApiError(
                    400,
                    f'previous terminated container "{container}" in pod "{name}" not found',
                    "BadRequest",
                )
            text = runs[-2]
        else:
            text = runs[-1] if runs else b""
        lines = params.get("tailLines")
        return path, tail(text, int(lines) if lines else None), len(data)

    async def follow(self, path: Path, offset: int, alive: Any) -> AsyncIterator[bytes]:
        """What is appended after `offset`, until `alive()` says the pod is gone."""
        while alive():
            await asyncio.sleep(FOLLOW_POLL)
            try:
                with path.open("rb") as log:
                    log.seek(offset)
                    more = log.read()
            except FileNotFoundError:
                return
            if more:
                offset += len(more)
                kept = b"".join(
                    line for line in more.splitlines(keepends=True) if not line.startswith(SECTION)
                )
                if kept:
                    yield kept
