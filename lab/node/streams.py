"""What the API server asks of this node's kubelet for `kubectl exec`: how to enter a
running container. Bound late: the API server starts before the kubelet's pods exist."""

from __future__ import annotations

from collections.abc import Callable

from lab.kubelet import PodWorker


class KubeletExec:
    def __init__(self) -> None:
        self.workers: Callable[[], dict[str, PodWorker]] = dict

    def exec_argv(
        self, pod: str, container: str, stdin: bool, tty: bool = False
    ) -> tuple[list[str], dict[str, str]] | None:
        worker = self.workers().get(pod)
        if worker is None or worker.pod.deleting:
            return None
        return worker.exec_argv(container, stdin, tty)
