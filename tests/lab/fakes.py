"""A fake kubelet for the controllers' unit tests: it changes the state as the kubelet would."""

from __future__ import annotations

from lab.apiserver import ApiServer
from lab.kubelet import ContainerState, Pod
from lab.network import PodNetwork


class FakeKubelet:
    """The PodRuntime the controllers call: records what they asked for."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self.started: list[str] = []
        self.deleted: list[str] = []

    def start_pod(self, pod: Pod) -> None:
        self.started.append(pod.name)
        pod.net = PodNetwork(pod.name, pod.ip, f"cip-{pod.name}", "cipfake")
        pod.containers = {c.name: ContainerState(c.name) for c in pod.template.containers}

    def delete_pod(self, pod: Pod) -> None:
        self.deleted.append(pod.name)
        pod.deleting = True

    # What the real kubelet reports later:
    @staticmethod
    def ready(*pods: Pod) -> None:
        for pod in pods:
            pod.init_done = True
            pod.phase = "Running"
            for c in pod.containers.values():
                c.state, c.ready = "running", True

    def gone(self, *pods: Pod) -> None:
        for pod in pods:
            pod.gone = True
            self.api.pods.pop(pod.name)
