"""The node agent: runs each pod's containers as processes and reports their state.

What it does, as the kubelet does:
- sets up the pod's network (through the CNI-like HostNetwork) and volumes,
- runs init containers one after the other, each to success, then the
  containers, with the environment the manifests give them,
- runs startup, readiness and liveness probes on their periods and
  thresholds; the pod is Ready when every container is started and ready,
- notices at once when a container's process exits (as the kubelet's PLEG
  does), marks the pod unready and restarts the container with the kubelet's
  back-off (at once, then 10 s, 20 s, … up to 5 min),
- on deletion: the pod leaves its Services first (it is terminating), the
  preStop hook runs, then SIGTERM, then SIGKILL once the grace period is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lab import runtime
from lab.checkout import AppSource
from lab.engine import EngineError
from lab.envvars import EnvError, PodFacts, container_env, expand_command
from lab.images import ImageRuntime, is_project_image
from lab.manifests import Container, Handler, ManifestError, PodTemplate, Probe
from lab.naming import NODE_GATEWAY, NODE_NAME, netns_name
from lab.network import ETC_NETNS, HostNetwork, NetworkError, PodNetwork, ip_binary
from lab.node.place import NodePlace
from lab.probes import ProbeResult, http_get, run_exec, run_probe
from lab.volumes import write_secret_volume

BACKOFF_START = 10.0
BACKOFF_MAX = 300.0
# A container that ran this long without crashing starts its back-off afresh.
BACKOFF_RESET_AFTER = 600.0


class LabServices(Protocol):
    """What every node's pods share: the lab's events, objects, engine and work directory."""

    workdir: Path
    images: ImageRuntime | None
    app_source: AppSource | None

    def notify(self) -> None: ...
    def event(self, obj: str, reason: str, message: str) -> None: ...
    def pod_event(self, pod: Pod, reason: str, message: str) -> None: ...
    def service_ips(self) -> dict[str, str]: ...
    def service_env(self, namespace: str) -> dict[str, str]: ...
    def config_maps(self, namespace: str) -> Mapping[str, Mapping[str, str]]: ...
    def secrets(self, namespace: str) -> Mapping[str, Mapping[str, str]]: ...


class Cluster(LabServices, Protocol):
    """What a pod worker needs: the shared services, and its own node's network."""

    network: HostNetwork
    node: NodePlace
    # `lab node stop`: the node is cut off. Its kubelet would still probe its pods
    # locally, where they answer; the lab's kubelet runs on the host and would probe
    # them across the cut link, so it holds their probe results instead.
    stopped: bool

    def pod_gone(self, pod: Pod) -> None: ...


@dataclass
class ContainerState:
    name: str
    init: bool = False
    state: str = "waiting"  # waiting, running, terminated
    reason: str = "ContainerCreating"
    exit_code: int | None = None
    restart_count: int = 0
    started: bool = False  # startup probe passed (or none)
    ready: bool = False
    pid: int | None = None
    started_at: float | None = None  # time.time() of the last start
    finished_at: float | None = None  # time.time() of the last exit
    last_probe: str = ""
    run_as: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "init": self.init,
            "state": self.state,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "restart_count": self.restart_count,
            "started": self.started,
            "ready": self.ready,
            "pid": self.pid,
            "last_probe": self.last_probe,
            "run_as": self.run_as,
        }


@dataclass
class Pod:
    name: str
    namespace: str
    workload: str  # "Kind/name" of the workload that owns it
    template: PodTemplate
    labels: dict[str, str]
    ip: str
    hostname_aliases: list[str] = field(default_factory=list)
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = field(default_factory=time.time)
    template_hash: str = ""
    ordinal: int | None = None
    phase: str = "Pending"
    deleting: bool = False
    deleted_at: float | None = None
    init_done: bool = False
    gone: bool = False
    net: PodNetwork | None = None
    # The node it runs on, and that node's InternalIP (status.hostIP).
    node_name: str = NODE_NAME
    host_ip: str = str(NODE_GATEWAY)
    containers: dict[str, ContainerState] = field(default_factory=dict)
    inits: dict[str, ContainerState] = field(default_factory=dict)

    @property
    def netns(self) -> str:
        return netns_name(self.name)

    @property
    def serving(self) -> bool:
        """Every container started and passing readiness (terminating or not)."""
        return (
            self.init_done
            and bool(self.containers)
            and all(c.state == "running" and c.ready for c in self.containers.values())
        )

    @property
    def ready(self) -> bool:
        return self.serving and not self.deleting

    @property
    def restarts(self) -> int:
        return sum(c.restart_count for c in self.containers.values())

    def status_text(self) -> str:
        """kubectl's STATUS column."""
        if self.deleting:
            return "Terminating"
        for c in self.inits.values():
            if not self.init_done:
                if c.reason in ("CrashLoopBackOff", "CreateContainerConfigError", "Error"):
                    return f"Init:{c.reason}"
                return f"Init:{list(self.inits).index(c.name)}/{len(self.inits)}"
        for c in self.containers.values():
            if c.state == "waiting":
                return c.reason
            if c.state == "terminated":
                return c.reason or "Error"
        return "Running" if self.phase == "Running" else self.phase

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "workload": self.workload,
            "ip": self.ip,
            "node": self.node_name,
            "netns": self.netns,
            "host_iface": self.net.host_iface if self.net else None,
            "labels": self.labels,
            "phase": self.phase,
            "status": self.status_text(),
            "ready": self.ready,
            "serving": self.serving,
            "deleting": self.deleting,
            "restarts": self.restarts,
            "created_at": self.created_at,
            "template_hash": self.template_hash,
            "containers": [c.as_dict() for c in self.containers.values()],
            "init_containers": [c.as_dict() for c in self.inits.values()],
        }


class Backoff:
    """The kubelet's restart back-off: first restart at once, then doubling from 10 s."""

    def __init__(self) -> None:
        self.next_delay = 0.0

    def delay(self, ran_for: float) -> float:
        if ran_for >= BACKOFF_RESET_AFTER:
            self.next_delay = 0.0
        delay = self.next_delay
        self.next_delay = BACKOFF_START if delay == 0 else min(delay * 2, BACKOFF_MAX)
        return delay


@dataclass
class Running:
    """One live container process and what it was started with."""

    proc: asyncio.subprocess.Process
    launch: runtime.Launch
    exec_prefix: list[str]
    env: dict[str, str]
    init_sql_path: Path | None = None
    # A container of the project's images, run by the engine under this name.
    engine_name: str | None = None
    pid: int | None = None  # the container's first process on the host


class PodWorker:
    def __init__(self, cluster: Cluster, pod: Pod) -> None:
        self.cluster = cluster
        self.pod = pod
        self.dir = cluster.workdir / "pods" / pod.name
        self.deleted = asyncio.Event()
        self.running: dict[str, Running] = {}
        self.grace_override: float | None = None
        self.skip_pre_stop = False
        self.volumes: runtime.VolumeMap | None = None
        self.volume_dirs: dict[str, Path] = {}
        self.sandbox: str | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._readiness_now: dict[str, asyncio.Event] = {}
        self._terminating: asyncio.Task[None] | None = None
        self._late_stops: list[asyncio.Task[None]] = []
        self.finished = asyncio.Event()

    # -- helpers -------------------------------------------------------------

    def _event(self, reason: str, message: str) -> None:
        self.cluster.pod_event(self.pod, reason, message)

    def _facts(self) -> PodFacts:
        return PodFacts(
            name=self.pod.name,
            namespace=self.pod.namespace,
            uid=self.pod.uid,
            ip=self.pod.ip,
            node_name=self.pod.node_name,
            host_ip=self.pod.host_ip,
            labels=self.pod.labels,
            annotations=self.pod.template.annotations,
        )

    def _setup_volumes(self) -> runtime.VolumeMap:
        """emptyDirs and Secrets under the pod's directory; a claim's directory outlives
        the pod. The lab has no mount namespace: runtime.plan points a container at
        these directories wherever its args or env name a path under a mountPath."""
        template = self.pod.template
        uid = template.security.run_as_user or 0
        gid = template.security.fs_group or template.security.run_as_group or uid
        host: dict[str, Path] = {}
        for volume in template.volumes:
            if volume.kind == "emptyDir":
                path = self.dir / "volumes" / volume.name
                path.mkdir(parents=True, exist_ok=True)
                # The kubelet creates emptyDirs world-writable.
                path.chmod(0o777)
            elif volume.kind == "secret":
                path = self.dir / "volumes" / volume.name
                secret = self.cluster.secrets(self.pod.namespace).get(volume.secret_name or "")
                write_secret_volume(path, volume, secret, template.security.fs_group)
            else:
                path = self.cluster.workdir / "pvc" / f"{volume.name}-{self.pod.name}"
                path.mkdir(parents=True, exist_ok=True)
                os.chown(path, uid, gid)
                path.chmod(0o770)
            host[volume.name] = path
        self.volume_dirs = host
        mounts: dict[str, Path] = {}
        for container in template.all_containers():
            for name, mount_path in container.volume_mounts:
                mounts[mount_path] = host[name]
        return runtime.VolumeMap(mounts)

    def _log_path(self, container: Container) -> Path:
        return self.dir / f"{container.name}.log"

    def _from_image(self, container: Container) -> bool:
        return self.cluster.images is not None and is_project_image(container.image)

    async def _start_sandbox(self) -> int | None:
        """The pause container, for a pod with containers from the project's images."""
        images = self.cluster.images
        app = [c for c in self.pod.template.all_containers() if self._from_image(c)]
        if images is None or not app:
            return None
        self.sandbox, pid = await asyncio.to_thread(
            images.sandbox, self.pod.netns, app[0].image, self.pod.name[:63]
        )
        return pid

    # -- the pod's life ----------------------------------------------------------

    async def run(self) -> None:
        pod = self.pod
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.dir.chmod(0o755)
            self.volumes = self._setup_volumes()
            sandbox_pid = await self._start_sandbox()
            pod.net = await asyncio.to_thread(
                self.cluster.network.add_pod,
                pod.name,
                pod.ip,
                self.cluster.service_ips(),
                pod.hostname_aliases,
                namespace=pod.namespace,
                sandbox_pid=sandbox_pid,
            )
            # The CNI's policy and the status's podIP follow the address at once.
            self.cluster.notify()
            self._event("Scheduled", f"assigned to {pod.node_name}, IP {pod.ip}, netns {pod.netns}")
            for container in pod.template.init_containers:
                pod.inits[container.name] = ContainerState(container.name, init=True)
            for container in pod.template.containers:
                pod.containers[container.name] = ContainerState(container.name)
            for container in pod.template.init_containers:
                if not await self._run_init(container):
                    break
            else:
                if not pod.deleting:
                    pod.init_done = True
                    pod.phase = "Running"
                    self._tasks = [
                        asyncio.create_task(self._container_loop(c), name=f"{pod.name}/{c.name}")
                        for c in pod.template.containers
                    ]
                    self.cluster.notify()
            await self.deleted.wait()
            await self._terminated()
        except (NetworkError, OSError, ManifestError, EngineError) as exc:
            # EngineError: the sandbox could not start (an image missing, the engine down).
            pod.phase = "Failed"
            self._event("Failed", f"{type(exc).__name__}: {exc}")
            await self.deleted.wait()
            await self._terminated()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._teardown()
            self.finished.set()

    async def _run_init(self, container: Container) -> bool:
        state = self.pod.inits[container.name]
        backoff = Backoff()
        while not self.pod.deleting:
            code = await self._run_once(container, state, wait=True)
            if code == 0:
                state.reason = "Completed"
                return True
            if self.pod.deleting:
                break
            state.restart_count += 1
            delay = backoff.delay(0)
            if delay:
                state.reason = "CrashLoopBackOff"
                self._event(
                    "BackOff", f"init container {container.name} failed, retry in {delay:g}s"
                )
                if await self._sleep_or_deleted(delay):
                    break
        return False

    async def _sleep_or_deleted(self, seconds: float) -> bool:
        """Sleep; True if the pod was deleted meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.deleted.wait(), seconds)
        return self.deleted.is_set()

    async def _container_loop(self, container: Container) -> None:
        state = self.pod.containers[container.name]
        backoff = Backoff()
        policy = self.pod.template.restart_policy
        while not self.pod.deleting:
            started = time.monotonic()
            code = await self._run_once(container, state, wait=True, probes=True)
            self.cluster.notify()
            if self.pod.deleting:
                return
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                return
            delay = backoff.delay(time.monotonic() - started)
            state.restart_count += 1
            if delay:
                state.reason = "CrashLoopBackOff"
                self._event("BackOff", f"restarting {container.name} in {delay:g}s")
                if await self._sleep_or_deleted(delay):
                    return

    async def _start(self, container: Container, state: ContainerState) -> Running:
        assert self.volumes is not None
        pod = self.pod
        env = container_env(
            container,
            self._facts(),
            self.cluster.config_maps(pod.namespace),
            self.cluster.secrets(pod.namespace),
            self.cluster.service_env(pod.namespace) if pod.template.enable_service_links else {},
        )
        command, args = expand_command(container, env)
        if self._from_image(container):
            return await self._start_image(container, state, env, command, args)
        launch = runtime.plan(
            container, pod.template, command, args, env, self.volumes, self.cluster.app_source
        )
        uid, gid, note = runtime.effective_user(launch)
        if note:
            self._event("Warning", f"{container.name}: {note}")
            launch.uid, launch.gid = uid, gid
            if launch.kind == "mysql" and "--user=root" not in launch.argv:
                launch.argv.append("--user=root")
        state.run_as = launch.uid
        init_sql_path = None
        log = self._log_path(container)
        if launch.kind == "mysql" and launch.init_sql is not None:
            # The official entrypoint's first-run initialisation.
            await asyncio.to_thread(runtime.install_mysql_datadir, launch, log)
            assert launch.datadir is not None
            init_sql_path = launch.datadir.parent / "lab-init.sql"
            init_sql_path.write_text(launch.init_sql)
            os.chown(init_sql_path, launch.uid, launch.gid)
            init_sql_path.chmod(0o600)
            launch.argv.append(f"--init-file={init_sql_path}")
        privilege = runtime.privilege_prefix(launch.uid, launch.gid, launch.security)
        enter = [ip_binary(), "netns", "exec", pod.netns]
        hostname = pod.name[:63]
        argv = [
            *enter,
            # Own UTS namespace, so the process's hostname is the pod name.
            "unshare",
            "--uts",
            "--",
            "/bin/sh",
            "-c",
            'hostname "$0" && exec "$@"',
            hostname,
            *privilege,
            *launch.argv,
        ]
        header = f"starting {container.name}: {' '.join(launch.argv)}"
        proc = await _spawn(argv, log, header, env=launch.env, cwd=launch.cwd)
        # `ip netns exec` and unshare exec in place: proc.pid is the container's process.
        # Entering its UTS namespace, `kubectl exec … hostname` sees the pod's name too.
        uts = ["nsenter", f"--target={proc.pid}", "--uts", "--"]
        return Running(proc, launch, [*uts, *enter, *privilege], launch.env, init_sql_path)

    async def _start_image(
        self,
        container: Container,
        state: ContainerState,
        env: dict[str, str],
        command: list[str],
        args: list[str],
    ) -> Running:
        """The container from its image, through the engine, in the pod's sandbox."""
        images = self.cluster.images
        assert images is not None and self.sandbox is not None
        attempt = state.restart_count
        name = f"{self.pod.netns}-{container.name}-{attempt}"
        started = await asyncio.to_thread(
            images.container_argv,
            self.sandbox,
            name,
            self.pod.template,
            container,
            env,
            command,
            args,
            self.volume_dirs,
            ETC_NETNS / self.pod.netns,
            self.dir / f"{container.name}.env",
        )
        uid, gid = (int(part) for part in (started.spec.user or "0:0").split(":"))
        state.run_as = uid
        launch = runtime.Launch(
            argv=started.argv,
            env=env,
            cwd="/",
            uid=uid,
            gid=gid,
            security=container.security,
            kind="image",
        )
        header = f"starting {container.name} from {container.image}"
        proc = await _spawn(started.argv, self._log_path(container), header)
        pid = await asyncio.to_thread(images.pid, name)
        exec_prefix = [*images.engine.command, "exec", name]
        return Running(proc, launch, exec_prefix, env, engine_name=name, pid=pid)

    def _signal(self, running: Running, sig: int) -> None:
        """SIGTERM or SIGKILL to a container: its process group, or through the engine."""
        if running.engine_name is not None and self.cluster.images is not None:
            self.cluster.images.signal(running.engine_name, sig)
        else:
            _signal_group(running.proc.pid, sig)

    async def _run_once(
        self, container: Container, state: ContainerState, wait: bool, probes: bool = False
    ) -> int | None:
        try:
            running = await self._start(container, state)
        except EnvError as exc:
            state.state, state.reason = "waiting", "CreateContainerConfigError"
            self._event("Failed", str(exc))
            await self._sleep_or_deleted(BACKOFF_START)
            return None
        except (ManifestError, RuntimeError, OSError) as exc:
            state.state, state.reason = "waiting", "RunContainerError"
            self._event("Failed", f"{container.name}: {exc}")
            await self._sleep_or_deleted(BACKOFF_START)
            return None
        self.running[container.name] = running
        if self.pod.deleting:
            # Deleted while this container was starting: stop it like the rest.
            self._late_stops.append(
                asyncio.create_task(self._stop_process(container, running, self.grace()))
            )
        state.state, state.reason = "running", ""
        state.pid = running.pid if running.engine_name else running.proc.pid
        # Wall-clock: the status written to the API server stamps it (startedAt).
        state.started_at, state.exit_code = time.time(), None
        state.started = container.startup_probe is None
        state.ready = False
        # A kubelet's three events per start; the lab's images are always on the machine.
        self._event("Pulled", f'Container image "{container.image}" already present on machine')
        self._event("Created", f"Created container: {container.name}")
        self._event(
            "Started",
            f"container {container.name} (pid {state.pid}, uid {running.launch.uid})",
        )
        prober: asyncio.Task[None] | None = None
        if probes:
            prober = asyncio.create_task(self._probe(container, state, running))
        try:
            code = await running.proc.wait()
        finally:
            if prober is not None:
                prober.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await prober
            self.running.pop(container.name, None)
            if running.init_sql_path is not None:
                running.init_sql_path.unlink(missing_ok=True)
        oom = False
        if running.engine_name is not None and self.cluster.images is not None:
            oom = await asyncio.to_thread(self.cluster.images.finish, running.engine_name)
        state.state, state.pid, state.ready, state.started = "terminated", None, False, False
        state.exit_code, state.finished_at = code, time.time()
        if code == 0:
            state.reason = "Completed"
        elif oom:
            # Over resources.limits.memory: the kernel's OOM killer, as on a node.
            state.reason = "OOMKilled"
        else:
            state.reason = "Error"
        killed = f" (signal {-code})" if code is not None and code < 0 else ""
        killed += " (OOMKilled: over its memory limit)" if oom else ""
        self._event(
            "Exited" if code == 0 else "Died",
            f"container {container.name} exited with {code}{killed}",
        )
        return code

    # -- probes ----------------------------------------------------------------

    async def _probe(self, container: Container, state: ContainerState, running: Running) -> None:
        tasks = [asyncio.create_task(self._startup(container, state, running))]
        tasks.append(asyncio.create_task(self._readiness(container, state, running)))
        if container.liveness_probe is not None:
            tasks.append(asyncio.create_task(self._liveness(container, state, running)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _once(self, probe: Probe, container: Container, running: Running) -> ProbeResult:
        return await run_probe(probe, container, self.pod.ip, running.exec_prefix, running.env)

    def _mark_started(self, container: Container, state: ContainerState) -> None:
        state.started = True
        if container.readiness_probe is None:
            state.ready = True
        # The kubelet runs a readiness probe that has no result yet at once
        # (prober manager's manual trigger), not at its next period.
        self._readiness_now.setdefault(container.name, asyncio.Event()).set()
        self.cluster.notify()

    async def _startup(self, container: Container, state: ContainerState, running: Running) -> None:
        probe = container.startup_probe
        if probe is None:
            self._mark_started(container, state)
            return
        await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            if self.cluster.stopped:
                await asyncio.sleep(probe.period)
                continue
            result = await self._once(probe, container, running)
            state.last_probe = f"startup: {result.detail}"
            if result.ok:
                self._mark_started(container, state)
                return
            failures += 1
            if failures >= probe.failure_threshold:
                self._event("Unhealthy", f"{container.name} startup probe failed: {result.detail}")
                await self._kill_container(container.name, "startup probe failed")
                return
            await asyncio.sleep(probe.period)

    async def _readiness(
        self, container: Container, state: ContainerState, running: Running
    ) -> None:
        probe = container.readiness_probe
        if probe is None:
            return  # ready as soon as started: the startup worker says so
        await asyncio.sleep(probe.initial_delay)
        trigger = self._readiness_now.setdefault(container.name, asyncio.Event())
        successes = failures = 0
        while True:
            trigger.clear()
            # As the kubelet: no readiness probing until the startup probe passed.
            if state.started and not self.cluster.stopped:
                result = await self._once(probe, container, running)
                state.last_probe = f"readiness: {result.detail}"
                if result.ok:
                    successes, failures = successes + 1, 0
                    if not state.ready and successes >= probe.success_threshold:
                        state.ready = True
                        self._event("Ready", f"{container.name} readiness probe passed")
                        self.cluster.notify()
                else:
                    successes, failures = 0, failures + 1
                    if state.ready and failures >= probe.failure_threshold:
                        state.ready = False
                        self._event("Unready", f"{container.name} readiness: {result.detail}")
                        self.cluster.notify()
                if running.init_sql_path is not None and state.ready:
                    # The server has run it; the passwords in it are not kept.
                    running.init_sql_path.unlink(missing_ok=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(trigger.wait(), probe.period)

    async def _liveness(
        self, container: Container, state: ContainerState, running: Running
    ) -> None:
        probe = container.liveness_probe
        assert probe is not None
        await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            if state.started and not self.cluster.stopped:
                result = await self._once(probe, container, running)
                if result.ok:
                    failures = 0
                else:
                    failures += 1
                    if failures >= probe.failure_threshold:
                        self._event(
                            "Unhealthy", f"{container.name} liveness probe failed: {result.detail}"
                        )
                        await self._kill_container(container.name, "liveness probe failed")
                        return
            await asyncio.sleep(probe.period)

    # -- stopping --------------------------------------------------------------

    def grace(self) -> float:
        if self.grace_override is not None:
            return self.grace_override
        return self.pod.template.termination_grace

    async def _kill_container(self, name: str, why: str) -> None:
        """Stop one container the kubelet's way (preStop, SIGTERM, grace, SIGKILL)."""
        running = self.running.get(name)
        if running is None:
            return
        self._event("Killing", f"container {name}: {why}")
        container = next(c for c in self.pod.template.containers if c.name == name)
        await self._stop_process(container, running, self.grace())

    async def _run_pre_stop(self, handler: Handler, container: Container, running: Running) -> None:
        if handler.kind == "sleep":
            await asyncio.sleep(handler.seconds)
        elif handler.kind == "exec":
            await run_exec([*running.exec_prefix, *handler.command], running.env, 3600)
        else:
            port = container.port_number(handler.port or 80) or 80
            await http_get(self.pod.ip, port, handler.path, 3600)

    async def _stop_process(self, container: Container, running: Running, grace: float) -> None:
        deadline = time.monotonic() + grace
        proc = running.proc
        if container.pre_stop is not None and not self.skip_pre_stop:
            self._event("PreStop", f"{container.name}: {container.pre_stop.kind}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._run_pre_stop(container.pre_stop, container, running), grace
                )
        if proc.returncode is None:
            self._signal(running, signal.SIGTERM)
            remaining = max(deadline - time.monotonic(), 0.0)
            # The kubelet gives at least 2 s after SIGTERM when preStop ate the grace.
            remaining = max(remaining, 2.0) if container.pre_stop is not None else remaining
            try:
                await asyncio.wait_for(proc.wait(), remaining)
            except TimeoutError:
                self._event("Killing", f"{container.name}: grace period over, SIGKILL")
                self._signal(running, signal.SIGKILL)
                await proc.wait()

    def request_delete(self, grace: float | None = None, skip_pre_stop: bool = False) -> None:
        if self.pod.deleting:
            return
        self.grace_override = grace
        self.skip_pre_stop = skip_pre_stop
        self.pod.deleting = True
        self.pod.deleted_at = time.time()
        self._event("Killing", f"deleting pod (grace {self.grace():g}s)")
        # Terminating pods leave their Services at once (EndpointSlice
        # ready=false, terminating=true), while preStop and SIGTERM run.
        self.cluster.notify()
        self.deleted.set()
        # Stop what runs now, whatever phase the pod is in (an init container
        # waiting for its database must not hold the deletion up).
        self._terminating = asyncio.create_task(self._terminate())

    async def _terminated(self) -> None:
        if self._terminating is None:
            self._terminating = asyncio.create_task(self._terminate())
        await self._terminating
        # Containers that were starting while the others were being stopped.
        await asyncio.gather(*self._late_stops, return_exceptions=True)

    async def _terminate(self) -> None:
        stops = []
        for container in self.pod.template.all_containers():
            running = self.running.get(container.name)
            if running is not None:
                stops.append(self._stop_process(container, running, self.grace()))
        await asyncio.gather(*stops, return_exceptions=True)

    async def _teardown(self) -> None:
        pod = self.pod
        if pod.net is not None:
            await asyncio.to_thread(self.cluster.network.remove_pod, pod.net)
        if self.sandbox is not None and self.cluster.images is not None:
            await asyncio.to_thread(self.cluster.images.engine.remove, self.sandbox)
        pod.gone = True
        pod.phase = "Succeeded" if pod.phase == "Running" else pod.phase
        self._event("Deleted", "pod removed, network namespace gone")
        self.cluster.pod_gone(pod)
        self.cluster.notify()

    def exec_argv(
        self, container: str, stdin: bool, tty: bool = False
    ) -> tuple[list[str], dict[str, str]] | None:
        """What enters a running container to run a command there (`kubectl exec`)."""
        running = self.running.get(container)
        if running is None or running.proc.returncode is not None:
            return None
        prefix = list(running.exec_prefix)
        if running.engine_name is None:
            return prefix, dict(running.env)
        # The engine passes stdin only with -i, and gives the command a terminal with -t.
        flags = (["-i"] if stdin else []) + (["-t"] if tty else [])
        at = prefix.index("exec") + 1
        prefix[at:at] = flags
        # The engine's CLI runs with the lab's environment (DOCKER_HOST among it), as it
        # did to start the container; `exec` gives the command the container's own.
        return prefix, dict(os.environ)

    def kill_all(self) -> None:
        for running in list(self.running.values()):
            if running.proc.returncode is None:
                self._signal(running, signal.SIGKILL)

    def kill_process(self, container: str | None = None, sig: int = signal.SIGKILL) -> int:
        """Signal a container's process directly, as `kill -9 <pid>` would. Returns the pid."""
        name = container or self.pod.template.containers[0].name
        running = self.running.get(name)
        if running is None:
            raise ProcessLookupError(f"container {name} of {self.pod.name} is not running")
        pid = running.pid if running.engine_name else running.proc.pid
        if pid is None:
            raise ProcessLookupError(f"container {name} of {self.pod.name} has no process")
        os.kill(pid, sig)
        return pid


async def _spawn(
    argv: list[str],
    log: Path,
    header: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> asyncio.subprocess.Process:
    """A container's process (or the engine's CLI attached to it), its output in `log`."""
    with log.open("ab") as out:
        out.write(f"--- lab: {header}\n".encode())
        out.flush()
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=cwd,
            # Its own session: Ctrl-C on the lab's terminal is the lab's to
            # handle, and a signal to the group reaches any child it forks.
            start_new_session=True,
        )


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
