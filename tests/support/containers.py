"""Pods of the rendered manifests, run by the machine's container engine.

A pod here is what a kubelet makes of one: a sandbox container holding the
network namespace (with the Service's name as a DNS alias on a private network,
and the ports published on 127.0.0.1), the init containers run one by one to
exit 0, then the containers, all joining the sandbox's namespace, under the
securityContext, volumes and limits of the manifests (lab/engine.py).

Docker's DNS plays the Service name here: these tests prove the images, not
ClusterIPs (the lab does that).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lab.engine import Engine, RunSpec, run_argv, run_spec, sandbox_argv
from lab.envvars import PodFacts, container_env, expand_command
from lab.manifests import Container, Manifests, PodTemplate, Workload
from lab.volumes import write_secret_volume

REPO = Path(__file__).resolve().parents[2]
LABEL = "clusterip-demo.test"


@dataclass
class Pod:
    name: str
    sandbox: str
    ip: str
    containers: dict[str, str]  # container name in the manifest → engine container name
    ports: dict[int, int]  # container port → 127.0.0.1 port
    grace: float
    specs: dict[str, RunSpec] = field(default_factory=dict)

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"


class PodRunner:
    """Starts pods on one private network; `close()` removes all it made."""

    def __init__(self, engine: Engine, manifests: Manifests, workdir: Path) -> None:
        self.engine = engine
        self.manifests = manifests
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:8]
        self.network = f"cid-test-{self.run_id}"
        self.made: list[str] = []
        engine("network", "create", "--label", f"{LABEL}={self.run_id}", self.network)

    def workload(self, name: str) -> Workload:
        for workload in self.manifests.workloads.values():
            if workload.name == name:
                return workload
        raise KeyError(name)

    def start(
        self,
        workload_name: str,
        aliases: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
    ) -> Pod:
        """One pod of the workload; `env` overrides the manifest's values (e.g. a SQLite URL)."""
        workload = self.workload(workload_name)
        template = workload.template
        pod_name = f"{workload_name}-{self.run_id}-{uuid.uuid4().hex[:5]}"
        sandbox = f"{pod_name}-pause"
        ports = sorted({p.port for c in template.containers for p in c.ports})
        image = template.containers[0].image
        self._run(sandbox_argv(sandbox, image, self.network, aliases, ports, pod_name), sandbox)
        ip = self.engine.ip_of(sandbox, self.network)
        volume_dirs = self._volumes(pod_name, workload)
        facts = PodFacts(
            name=pod_name,
            namespace=workload.namespace,
            uid=str(uuid.uuid4()),
            ip=ip,
            node_name=socket.gethostname(),
            host_ip="127.0.0.1",
            labels=template.labels,
            annotations=template.annotations,
        )
        pod = Pod(pod_name, sandbox, ip, {}, {}, template.termination_grace)
        for container in template.init_containers:
            self._container(pod, template, container, facts, env, volume_dirs)
            code = self.engine.exit_code(pod.containers[container.name], timeout=180)
            if code != 0:
                logs = self.logs(pod, container.name)
                raise AssertionError(f"init container {container.name} exited {code}:\n{logs}")
        for container in template.containers:
            self._container(pod, template, container, facts, env, volume_dirs)
        pod.ports = {port: self.engine.host_port(sandbox, port) for port in ports}
        return pod

    def _container(
        self,
        pod: Pod,
        template: PodTemplate,
        container: Container,
        facts: PodFacts,
        env: Mapping[str, str] | None,
        volume_dirs: Mapping[str, Path],
    ) -> None:
        config_maps, secrets = self.manifests.config_maps, self.manifests.secrets
        values = container_env(container, facts, config_maps, secrets, {}) | dict(env or {})
        command, args = expand_command(container, values)
        labels = {LABEL: self.run_id}
        spec = run_spec(template, container, values, command, args, volume_dirs, labels)
        name = f"{pod.name}-{container.name}"
        # The environment goes in a 0600 file: on the command line `ps` would show passwords.
        env_file = self.workdir / f"{name}.env"
        self._run(run_argv(spec, name, f"container:{pod.sandbox}", env_file), name)
        pod.containers[container.name] = name
        pod.specs[container.name] = spec

    def _volumes(self, pod_name: str, workload: Workload) -> dict[str, Path]:
        """A host directory per volume, as the kubelet makes them.

        emptyDir and claims: fresh, mode 0777 (with fsGroup: group-owned, setgid);
        secret: the Secret's files, root-owned, group fsGroup, defaultMode.
        """
        dirs: dict[str, Path] = {}
        fs_group = workload.template.security.fs_group
        for volume in workload.template.volumes:
            path = self.workdir / pod_name / volume.name
            if volume.kind == "secret":
                data = self.manifests.secrets.get(volume.secret_name or "")
                write_secret_volume(path, volume, data, fs_group)
            else:
                path.mkdir(parents=True)
                path.chmod(0o777)
                if fs_group is not None:
                    os.chown(path, 0, fs_group)
                    path.chmod(0o2777)
            dirs[volume.name] = path
        return dirs

    def _run(self, argv: list[str], name: str) -> None:
        self.made.append(name)
        self.engine(*argv)

    def logs(self, pod: Pod, container: str) -> str:
        return self.engine.logs(pod.containers[container])

    def delete(self, pod: Pod) -> None:
        names = [*pod.containers.values(), pod.sandbox]
        self.engine.remove(*names)

    def close(self) -> None:
        self.engine.remove(*reversed(self.made))
        self.engine("network", "rm", self.network, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
