"""A container of the rendered manifests, run by a real container engine.

The kubelet asks its runtime for a pod sandbox (the pause container that holds
the pod's network namespace), then for each container in it, with the pod's and
the container's securityContext, volumes and resource limits. Here the same
facts become a Docker or podman `run` command line:

- `command` replaces the image's ENTRYPOINT, `args` its CMD (as in Kubernetes:
  `command` alone drops the image's CMD too);
- runAsUser/runAsGroup → `--user`, fsGroup and supplementalGroups →
  `--group-add`; runAsNonRoot with uid 0 is refused, as the kubelet refuses it;
- readOnlyRootFilesystem → `--read-only`; `capabilities.drop: [ALL]` and `add`
  → `--cap-drop ALL` / `--cap-add`; allowPrivilegeEscalation false →
  `no-new-privileges`; seccomp RuntimeDefault → the engine's default profile,
  Unconfined or unset → `seccomp=unconfined` (the kubelet's default, unless it
  runs with --seccomp-default);
- an emptyDir is a fresh host directory of mode 0777 (the kubelet's), or a
  tmpfs for `medium: Memory`; sizeLimit is enforced by eviction on a node and
  not at all here;
- limits.memory → `--memory` with no swap; limits.cpu → `--cpus` (the CFS
  quota the kubelet sets). Requests only matter to a scheduler: not used.

Everything that turns manifests into arguments is pure and root-free; `Engine`
is the thin layer that calls the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.envvars import parse_quantity
from lab.manifests import Container, ManifestError, PodTemplate, SecurityContext

SANDBOX_UID = 65535  # the pause image's user


@dataclass(frozen=True)
class Mount:
    target: str
    source: str = ""  # a host directory; empty for tmpfs
    read_only: bool = False
    tmpfs: bool = False


@dataclass(frozen=True)
class RunSpec:
    """One container's `run`, independent of the engine's spelling."""

    image: str
    entrypoint: str | None
    args: tuple[str, ...]
    env: Mapping[str, str]
    user: str | None
    groups: tuple[int, ...] = ()
    read_only: bool = False
    cap_drop_all: bool = False
    cap_add: tuple[str, ...] = ()
    no_new_privileges: bool = False
    seccomp_unconfined: bool = True
    mounts: tuple[Mount, ...] = ()
    memory_bytes: int | None = None
    cpus: float | None = None
    working_dir: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def effective_security(pod: SecurityContext, container: SecurityContext) -> SecurityContext:
    """The container's fields win where both set them (runAsUser, runAsGroup, ...)."""

    def pick(name: str) -> object:
        mine = getattr(container, name)
        return mine if mine is not None else getattr(pod, name)

    return SecurityContext(
        run_as_user=pick("run_as_user"),  # type: ignore[arg-type]
        run_as_group=pick("run_as_group"),  # type: ignore[arg-type]
        run_as_non_root=pick("run_as_non_root"),  # type: ignore[arg-type]
        fs_group=pod.fs_group,
        supplemental_groups=pod.supplemental_groups,
        drop_all_capabilities=container.drop_all_capabilities,
        add_capabilities=container.add_capabilities,
        no_new_privileges=container.no_new_privileges,
        read_only_root_filesystem=container.read_only_root_filesystem,
        seccomp=pick("seccomp"),  # type: ignore[arg-type]
    )


def split_command(command: Sequence[str], args: Sequence[str]) -> tuple[str | None, list[str]]:
    """Kubernetes' command/args → the engine's --entrypoint and trailing arguments."""
    if command:
        return command[0], [*command[1:], *args]
    return None, list(args)


def run_spec(
    template: PodTemplate,
    container: Container,
    env: Mapping[str, str],
    command: Sequence[str],
    args: Sequence[str],
    volume_dirs: Mapping[str, Path],
    labels: Mapping[str, str] | None = None,
) -> RunSpec:
    """What the kubelet would ask the runtime for. `volume_dirs`: volume name → host dir;
    `labels` mark the container as the caller's (for listing and clean-up).

    `command`/`args` come expanded (`$(VAR)`) by envvars.expand_command.
    """
    where = f"container {container.name}"
    security = effective_security(template.security, container.security)
    if security.run_as_non_root and security.run_as_user == 0:
        raise ManifestError(f"{where}: runAsNonRoot with runAsUser 0 (the kubelet refuses it)")
    user = None
    if security.run_as_user is not None:
        group = security.run_as_group if security.run_as_group is not None else 0
        user = f"{security.run_as_user}:{group}"
    groups = tuple(g for g in (security.fs_group, *security.supplemental_groups) if g is not None)
    volumes = {v.name: v for v in template.volumes}
    mounts = []
    for name, path in container.volume_mounts:
        volume = volumes[name]
        if volume.kind == "emptyDir" and volume.medium == "Memory":
            mounts.append(Mount(target=path, tmpfs=True))
        else:
            # A Secret is always mounted read-only, whatever the volumeMount says.
            read_only = volume.kind == "secret"
            mounts.append(Mount(target=path, source=str(volume_dirs[name]), read_only=read_only))
    limits = container.resources.get("limits", {})
    memory = int(parse_quantity(limits["memory"])) if "memory" in limits else None
    cpus = float(parse_quantity(limits["cpu"])) if "cpu" in limits else None
    entrypoint, rest = split_command(command, args)
    return RunSpec(
        image=container.image,
        entrypoint=entrypoint,
        args=tuple(rest),
        env=dict(env),
        user=user,
        groups=groups,
        read_only=security.read_only_root_filesystem,
        cap_drop_all=security.drop_all_capabilities,
        cap_add=security.add_capabilities,
        no_new_privileges=security.no_new_privileges,
        seccomp_unconfined=security.seccomp != "RuntimeDefault",
        mounts=tuple(mounts),
        memory_bytes=memory,
        cpus=cpus,
        working_dir=container.working_dir,
        labels=dict(labels or {}),
    )


def run_argv(
    spec: RunSpec,
    name: str,
    network: str,
    env_file: Path | None = None,
    detach: bool = True,
    extra_mounts: Sequence[Mount] = (),
) -> list[str]:
    """`run` arguments (after `docker`/`podman`) for one container.

    `network`: `container:<sandbox>` to join a pod's network namespace. With
    `env_file`, the environment is written there (mode 0600) instead of the
    command line, where `ps` would show a password. Attached (`detach=False`),
    the CLI lives as long as the container, passes it SIGTERM, and exits with
    its exit code, as a process the kubelet watches would.
    """
    argv = ["run", *(["--detach"] if detach else []), "--name", name, "--network", network]
    for key, value in sorted(spec.labels.items()):
        argv += ["--label", f"{key}={value}"]
    if spec.user is not None:
        argv += ["--user", spec.user]
    for group in spec.groups:
        argv += ["--group-add", str(group)]
    if spec.read_only:
        argv.append("--read-only")
    if spec.cap_drop_all:
        argv += ["--cap-drop", "ALL"]
    for cap in spec.cap_add:
        argv += ["--cap-add", cap]
    if spec.no_new_privileges:
        argv += ["--security-opt", "no-new-privileges"]
    if spec.seccomp_unconfined:
        argv += ["--security-opt", "seccomp=unconfined"]
    for mount in (*spec.mounts, *extra_mounts):
        if mount.tmpfs:
            argv += ["--tmpfs", f"{mount.target}:rw,mode=1777"]
        else:
            suffix = ",readonly" if mount.read_only else ""
            argv += ["--mount", f"type=bind,source={mount.source},target={mount.target}{suffix}"]
    if spec.memory_bytes is not None:
        # No swap beyond the limit: a container over it is OOM-killed, as on a node.
        argv += ["--memory", str(spec.memory_bytes), "--memory-swap", str(spec.memory_bytes)]
    if spec.cpus is not None:
        argv += ["--cpus", f"{spec.cpus:g}"]
    if spec.working_dir:
        argv += ["--workdir", spec.working_dir]
    if env_file is not None:
        env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(spec.env.items())))
        env_file.chmod(0o600)
        argv += ["--env-file", str(env_file)]
    else:
        for key, value in sorted(spec.env.items()):
            argv += ["--env", f"{key}={value}"]
    if spec.entrypoint is not None:
        argv += ["--entrypoint", spec.entrypoint]
    argv.append(spec.image)
    argv += spec.args
    return argv


def sandbox_argv(
    name: str,
    image: str,
    network: str,
    aliases: Sequence[str] = (),
    publish: Sequence[int] = (),
    hostname: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """The pause container: holds the pod's network namespace, runs nothing else.

    Any image with `sleep` will do; it runs as the pause image's user with nothing
    writable and no capabilities. Published ports belong here, as a pod's IP does.
    """
    argv = ["run", "--detach", "--name", name, "--network", network]
    for alias in aliases:
        argv += ["--network-alias", alias]
    for port in publish:
        argv += ["--publish", f"127.0.0.1::{port}"]
    if hostname:
        argv += ["--hostname", hostname]
    for key, value in sorted((labels or {}).items()):
        argv += ["--label", f"{key}={value}"]
    argv += [
        "--user",
        f"{SANDBOX_UID}:{SANDBOX_UID}",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--entrypoint",
        "sleep",
        image,
        "infinity",
    ]
    return argv


class EngineError(RuntimeError):
    pass


@dataclass
class Engine:
    """The engine's CLI: `docker` (or `env DOCKER_HOST=… docker`) or `podman`."""

    command: tuple[str, ...]

    def __call__(self, *argv: str, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run(
            [*self.command, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise EngineError(f"{' '.join(argv[:3])}: {done.stderr.strip() or done.stdout}")
        return done.stdout.strip()

    def environ(self) -> dict[str, str]:
        """The environment for another client of the same engine (docker-compose): this
        process's, plus what an `env NAME=value … docker` command sets."""
        env = dict(os.environ)
        if self.command[0] == "env":
            env.update(a.split("=", 1) for a in self.command[1:] if "=" in a)
        return env

    def has_image(self, ref: str) -> bool:
        """Whether the engine holds `ref` (`image inspect` prints `[]` when not: the exit
        status says it)."""
        done = subprocess.run(
            [*self.command, "image", "inspect", ref],
            capture_output=True,
            timeout=60,
            check=False,
        )
        return done.returncode == 0

    def inspect(self, name: str) -> dict:
        return json.loads(self("inspect", name))[0]

    def ip_of(self, name: str, network: str) -> str:
        networks = self.inspect(name)["NetworkSettings"]["Networks"]
        return networks[network]["IPAddress"]

    def host_port(self, name: str, port: int) -> int:
        out = self("port", name, f"{port}/tcp")
        return int(out.splitlines()[0].rsplit(":", 1)[1])

    def logs(self, name: str) -> str:
        """stdout and stderr interleaved, as `kubectl logs` shows them."""
        done = subprocess.run(
            [*self.command, "logs", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout

    def exit_code(self, name: str, timeout: float) -> int:
        return int(self("wait", name, timeout=timeout))

    def remove(self, *names: str) -> None:
        if names:
            self("rm", "--force", "--volumes", *names, check=False)

    def labelled(self, label: str) -> list[str]:
        """Names of the containers (running or not) that carry `label` (key or key=value)."""
        out = self(
            "ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}", check=False
        )
        return out.split()


def project_images(repo: Path) -> list[str]:
    """clusterip-demo/{backend,frontend} with the tag k8s/base/kustomization.yaml pins."""
    tag = subprocess.run(
        [str(repo / "scripts" / "image-tag.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    return [f"clusterip-demo/{tier}:{tag}" for tier in ("backend", "frontend")]


def detect(repo: Path) -> Engine | None:
    """The engine scripts/container-engine.sh picks (Docker, the private dockerd, podman)."""
    done = subprocess.run(
        [str(repo / "scripts" / "container-engine.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return Engine(tuple(done.stdout.split())) if done.returncode == 0 else None
