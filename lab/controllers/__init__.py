"""The lab's controllers, one small unit each, as kube-controller-manager runs them.

Each reads the API server's state (lab/apiserver.py) and acts through a
`PodRuntime`: the kubelet in the lab, a fake in the unit tests.
"""

from __future__ import annotations

from typing import Protocol

from lab.kubelet import Pod


class PodRuntime(Protocol):
    """What a controller asks of the node: run this pod, delete that one."""

    def start_pod(self, pod: Pod) -> None: ...

    def delete_pod(self, pod: Pod) -> None: ...
