"""The kubelet's container runtime for the project's own images (clusterip-demo/*).

A pod's sandbox is a container with no network of the engine's (`--network
none`) that only sleeps, as the pause container does. The lab then plays the
CNI plugin: it names the sandbox's network namespace for `ip netns` (`ip netns
attach <pod> <pid>`, as containerd's CRI names them), moves a veth into it and
gives it the pod IP and routes. Each container of the pod joins it
(`--network container:<sandbox>`) under the pod's securityContext, volumes and
limits (lab/engine.py), with the pod's /etc/hosts and /etc/resolv.conf mounted
as the kubelet mounts its own.

The container runs attached: the engine's CLI lives as long as the container,
passes SIGTERM on, and exits with the container's exit code, so the kubelet
watches it as it watches a process. SIGKILL, which a CLI cannot pass on, goes
through the engine.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.engine import Engine, EngineError, Mount, RunSpec, run_argv, run_spec, sandbox_argv
from lab.manifests import Container, PodTemplate

LABEL = "clusterip-demo.lab"


def is_project_image(image: str) -> bool:
    return image.split("@", 1)[0].startswith("clusterip-demo/")


@dataclass
class Started:
    name: str
    argv: list[str]
    spec: RunSpec


class ImageRuntime:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def sandbox(self, netns: str, image: str, hostname: str) -> tuple[str, int]:
        """Start a pod's sandbox; its name and the pid that holds its network namespace.

        The containers joining its network (`--network container:`) take its hostname
        from it, as a pod's containers share the sandbox's UTS namespace: the pod's name.
        """
        name = f"{netns}-pause"
        self.engine.remove(name)  # a sandbox left by a lab that was killed
        labels = {LABEL: "sandbox"}
        self.engine(*sandbox_argv(name, image, "none", hostname=hostname, labels=labels))
        pid = int(self.engine("inspect", "--format", "{{.State.Pid}}", name))
        return name, pid

    def container_argv(
        self,
        sandbox: str,
        name: str,
        template: PodTemplate,
        container: Container,
        env: Mapping[str, str],
        command: Sequence[str],
        args: Sequence[str],
        volume_dirs: Mapping[str, Path],
        etc_dir: Path,
        env_file: Path,
    ) -> Started:
        """The attached `run` for one container: the CLI's argv, ready to exec."""
        labels = {LABEL: "container"}
        spec = run_spec(template, container, env, command, args, volume_dirs, labels)
        etc = [
            Mount(target="/etc/hosts", source=str(etc_dir / "hosts"), read_only=True),
            Mount(target="/etc/resolv.conf", source=str(etc_dir / "resolv.conf"), read_only=True),
        ]
        self.engine.remove(name)
        argv = run_argv(
            spec, name, f"container:{sandbox}", env_file, detach=False, extra_mounts=etc
        )
        return Started(name, [*self.engine.command, *argv], spec)

    def pid(self, name: str, timeout: float = 10.0) -> int | None:
        """The container's first process on the host, once it runs (None if it never did)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = self.engine.inspect(name)["State"]
            except (EngineError, IndexError, ValueError):
                state = {}
            if state.get("Pid"):
                return int(state["Pid"])
            if state.get("Status") in ("exited", "dead"):
                return None
            time.sleep(0.05)
        return None

    def signal(self, name: str, sig: int) -> None:
        self.engine("kill", "--signal", signal.Signals(sig).name, name, check=False)

    def finish(self, name: str) -> bool:
        """After the container exited: whether the kernel's OOM killer ended it; then remove it."""
        try:
            oom = bool(self.engine.inspect(name)["State"].get("OOMKilled"))
        except (EngineError, IndexError, ValueError):
            oom = False
        self.engine.remove(name)
        return oom

    def remove_all(self) -> list[str]:
        """Every container and sandbox of the lab's, e.g. left by a lab that was killed."""
        names = self.engine.labelled(LABEL)
        self.engine.remove(*names)
        return names
