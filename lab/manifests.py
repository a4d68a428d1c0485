"""The rendered manifests, read into the few shapes the lab acts on.

The lab runs what `kubectl kustomize k8s/` says: Services (selector, ports,
targetPort), Deployments and StatefulSets (replicas, pod template: containers,
init containers, ports, env, probes, lifecycle, security context, volumes),
ConfigMaps and Secrets (for env), NetworkPolicies (kept for enforcement).
Anything the lab cannot honour is refused with a message naming the field,
rather than silently run differently.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lab import fields
from lab.naming import check_dns_label

REPO = Path(__file__).resolve().parents[1]
DEFAULT_KUSTOMIZE_DIR = REPO / "k8s"


# What kube-proxy's rules and the lab's NetworkPolicies handle (SCTP: no).
PROTOCOLS = ("TCP", "UDP")


class ManifestError(ValueError):
    """The manifests ask for something the lab cannot run."""


_T = TypeVar("_T")


def _honoured(check: Callable[..., _T], *args: Any) -> _T:
    """Run one of lab/fields.py's checks: a field the lab cannot honour is a ManifestError."""
    try:
        return check(*args)
    except fields.FieldError as exc:
        raise ManifestError(str(exc)) from None


# --- label selectors ---------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        raise ManifestError(f"unknown selector operator {self.operator!r}")


@dataclass(frozen=True)
class Selector:
    """A LabelSelector. The empty selector matches everything (as in NetworkPolicy)."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> Selector:
        return cls(tuple(Requirement(k, "In", (v,)) for k, v in sorted(labels.items())))

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> Selector:
        raw = raw or {}
        reqs = [Requirement(k, "In", (str(v),)) for k, v in (raw.get("matchLabels") or {}).items()]
        for expr in raw.get("matchExpressions") or []:
            reqs.append(
                Requirement(
                    expr["key"], expr["operator"], tuple(str(v) for v in expr.get("values") or ())
                )
            )
        return cls(tuple(reqs))

    def matches(self, labels: dict[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)


# --- pods --------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerPort:
    name: str | None
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Probe:
    kind: str  # httpGet, tcpSocket, exec
    port: int | str | None = None
    path: str = "/"
    scheme: str = "HTTP"
    command: tuple[str, ...] = ()
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, raw: dict[str, Any] | None, where: str) -> Probe | None:
        if not raw:
            return None
        common = {
            "initial_delay": float(raw.get("initialDelaySeconds", 0)),
            "period": float(raw.get("periodSeconds", 10)),
            "timeout": float(raw.get("timeoutSeconds", 1)),
            "success_threshold": int(raw.get("successThreshold", 1)),
            "failure_threshold": int(raw.get("failureThreshold", 3)),
        }
        if "httpGet" in raw:
            http = raw["httpGet"]
            scheme = http.get("scheme", "HTTP")
            if scheme != "HTTP":
                raise ManifestError(f"{where}: only HTTP httpGet probes are supported")
            return cls("httpGet", port=http["port"], path=http.get("path", "/"), **common)
        if "tcpSocket" in raw:
            return cls("tcpSocket", port=raw["tcpSocket"]["port"], **common)
        if "exec" in raw:
            return cls("exec", command=tuple(raw["exec"]["command"]), **common)
        raise ManifestError(f"{where}: probe kind not supported (httpGet, tcpSocket, exec)")


@dataclass(frozen=True)
class Handler:
    """A lifecycle hook: preStop."""

    kind: str  # sleep, exec, httpGet
    seconds: float = 0
    command: tuple[str, ...] = ()
    port: int | str | None = None
    path: str = "/"

    @classmethod
    def parse(cls, raw: dict[str, Any] | None, where: str) -> Handler | None:
        if not raw:
            return None
        if "sleep" in raw:
            return cls("sleep", seconds=float(raw["sleep"]["seconds"]))
        if "exec" in raw:
            return cls("exec", command=tuple(raw["exec"]["command"]))
        if "httpGet" in raw:
            return cls("httpGet", port=raw["httpGet"]["port"], path=raw["httpGet"].get("path", "/"))
        raise ManifestError(f"{where}: lifecycle handler not supported")


@dataclass(frozen=True)
class SecurityContext:
    """A pod's or a container's securityContext (the fields the lab acts on)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    drop_all_capabilities: bool = False
    add_capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = False
    read_only_root_filesystem: bool = False
    seccomp: str | None = None  # RuntimeDefault, Unconfined; None: not set here

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> SecurityContext:
        raw = raw or {}
        capabilities = raw.get("capabilities") or {}
        drops = [str(c).upper() for c in capabilities.get("drop") or []]
        seccomp = (raw.get("seccompProfile") or {}).get("type")
        if seccomp not in (None, "RuntimeDefault", "Unconfined"):
            raise ManifestError(f"seccompProfile.type {seccomp!r} is not supported in the lab")
        return cls(
            run_as_user=raw.get("runAsUser"),
            run_as_group=raw.get("runAsGroup"),
            run_as_non_root=raw.get("runAsNonRoot"),
            fs_group=raw.get("fsGroup"),
            supplemental_groups=tuple(int(g) for g in raw.get("supplementalGroups") or ()),
            drop_all_capabilities="ALL" in drops,
            add_capabilities=tuple(str(c).upper() for c in capabilities.get("add") or ()),
            no_new_privileges=raw.get("allowPrivilegeEscalation") is False,
            read_only_root_filesystem=bool(raw.get("readOnlyRootFilesystem")),
            seccomp=seccomp,
        )


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[dict[str, Any], ...]
    env_from: tuple[dict[str, Any], ...]
    ports: tuple[ContainerPort, ...]
    startup_probe: Probe | None
    readiness_probe: Probe | None
    liveness_probe: Probe | None
    pre_stop: Handler | None
    security: SecurityContext
    volume_mounts: tuple[tuple[str, str], ...]  # (volume name, mount path)
    working_dir: str | None
    resources: dict[str, dict[str, str]] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str) -> Container:
        name = raw["name"]
        here = f"{where} container {name}"
        _honoured(fields.check_container, raw, here)
        ports = tuple(
            ContainerPort(p.get("name"), int(p["containerPort"]), p.get("protocol", "TCP"))
            for p in raw.get("ports") or []
        )
        for port in ports:
            if port.protocol not in PROTOCOLS:
                raise ManifestError(
                    f"{here}: only TCP and UDP ports are supported, not {port.protocol}"
                )
        lifecycle = raw.get("lifecycle") or {}
        if lifecycle.get("postStart"):
            raise ManifestError(f"{here}: postStart hooks are not supported")
        return cls(
            name=name,
            image=raw["image"],
            command=tuple(str(c) for c in raw.get("command") or ()),
            args=tuple(str(a) for a in raw.get("args") or ()),
            env=tuple(raw.get("env") or ()),
            env_from=tuple(raw.get("envFrom") or ()),
            ports=ports,
            startup_probe=Probe.parse(raw.get("startupProbe"), here),
            readiness_probe=Probe.parse(raw.get("readinessProbe"), here),
            liveness_probe=Probe.parse(raw.get("livenessProbe"), here),
            pre_stop=Handler.parse(lifecycle.get("preStop"), here),
            security=SecurityContext.parse(raw.get("securityContext")),
            volume_mounts=tuple((m["name"], m["mountPath"]) for m in raw.get("volumeMounts") or ()),
            working_dir=raw.get("workingDir"),
            resources={
                k: {r: str(q) for r, q in (v or {}).items()}
                for k, v in (raw.get("resources") or {}).items()
            },
        )

    def port_number(self, port: int | str) -> int | None:
        """A probe's or a Service's targetPort: a number, or a container port's name."""
        if isinstance(port, int):
            return port
        if port.isdigit():
            return int(port)
        for p in self.ports:
            if p.name == port:
                return p.port
        return None


@dataclass(frozen=True)
class Volume:
    name: str
    kind: str  # emptyDir, secret, persistentVolumeClaim (from a StatefulSet claim template)
    medium: str = ""  # emptyDir: "" (node disk) or "Memory" (tmpfs)
    size_limit: str | None = None
    # secret volumes: the Secret, the (key, path) items (empty: every key), file mode.
    secret_name: str | None = None
    items: tuple[tuple[str, str], ...] = ()
    default_mode: int = 0o644
    optional: bool = False

    @classmethod
    def secret(cls, raw: dict[str, Any], where: str) -> Volume:
        source = raw["secret"] or {}
        if "secretName" not in source:
            raise ManifestError(f"{where}: secret volume {raw['name']} names no secretName")
        items = []
        for item in source.get("items") or ():
            if "mode" in item:
                raise ManifestError(f"{where}: secret volume {raw['name']}: per-item mode")
            path = str(item["path"])
            if path.startswith("/") or ".." in path.split("/"):
                raise ManifestError(f"{where}: secret volume {raw['name']}: bad path {path!r}")
            items.append((str(item["key"]), path))
        return cls(
            raw["name"],
            "secret",
            secret_name=str(source["secretName"]),
            items=tuple(items),
            default_mode=int(source.get("defaultMode", 0o644)),
            optional=bool(source.get("optional", False)),
        )


@dataclass(frozen=True)
class PodTemplate:
    labels: dict[str, str]
    annotations: dict[str, str]
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...]
    volumes: tuple[Volume, ...]
    security: SecurityContext
    termination_grace: float
    restart_policy: str
    enable_service_links: bool
    # The template as written, for the pod-template-hash.
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str, claims: tuple[str, ...]) -> PodTemplate:
        spec = raw.get("spec") or {}
        _honoured(fields.check_pod, spec, where)
        volumes: list[Volume] = []
        for vol in spec.get("volumes") or []:
            if "emptyDir" in vol:
                empty = vol["emptyDir"] or {}
                limit = empty.get("sizeLimit")
                volumes.append(
                    Volume(
                        vol["name"],
                        "emptyDir",
                        medium=empty.get("medium", ""),
                        size_limit=None if limit is None else str(limit),
                    )
                )
            elif "secret" in vol:
                volumes.append(Volume.secret(vol, where))
            else:
                kinds = sorted(set(vol) - {"name"})
                raise ManifestError(f"{where}: volume {vol['name']} of kind {kinds} not supported")
        volumes.extend(Volume(claim, "persistentVolumeClaim") for claim in claims)
        names = {v.name for v in volumes}
        containers = tuple(Container.parse(c, where) for c in spec.get("containers") or ())
        inits = tuple(Container.parse(c, f"{where} init") for c in spec.get("initContainers") or ())
        if not containers:
            raise ManifestError(f"{where}: no containers")
        for container in containers + inits:
            for volume_name, _ in container.volume_mounts:
                if volume_name not in names:
                    raise ManifestError(
                        f"{where}: container {container.name} mounts unknown volume {volume_name}"
                    )
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                raise ManifestError(f"{where}: {key} is not supported in the lab")
        metadata = raw.get("metadata") or {}
        return cls(
            labels={k: str(v) for k, v in (metadata.get("labels") or {}).items()},
            annotations={k: str(v) for k, v in (metadata.get("annotations") or {}).items()},
            containers=containers,
            init_containers=inits,
            volumes=tuple(volumes),
            security=SecurityContext.parse(spec.get("securityContext")),
            termination_grace=float(spec.get("terminationGracePeriodSeconds", 30)),
            restart_policy=spec.get("restartPolicy", "Always"),
            enable_service_links=bool(spec.get("enableServiceLinks", True)),
            raw=raw,
        )

    def all_containers(self) -> tuple[Container, ...]:
        return self.init_containers + self.containers


@dataclass(frozen=True)
class Strategy:
    kind: str  # RollingUpdate, Recreate (Deployment); RollingUpdate, OnDelete (StatefulSet)
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"


@dataclass
class Workload:
    kind: str  # Deployment, StatefulSet
    name: str
    namespace: str
    replicas: int
    selector: Selector
    template: PodTemplate
    strategy: Strategy
    service_name: str | None = None  # StatefulSet's governing Service


# --- services ----------------------------------------------------------------


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str = "TCP"


@dataclass
class Service:
    name: str
    namespace: str
    selector: dict[str, str] | None
    ports: tuple[ServicePort, ...]
    cluster_ip: str | None  # as written; None means "allocate one"
    headless: bool = False
    # sessionAffinity: ClientIP's timeoutSeconds; None for sessionAffinity: None.
    affinity_timeout: int | None = None

    def port_name(self, port: ServicePort) -> str:
        """kube-proxy's "ns/svc:port" string, used in chain hashes and comments."""
        return (
            f"{self.namespace}/{self.name}:{port.name}"
            if port.name
            else (f"{self.namespace}/{self.name}")
        )


@dataclass
class Manifests:
    namespace: str
    services: dict[str, Service]
    workloads: dict[str, Workload]  # key "Kind/name"
    config_maps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    network_policies: list[dict[str, Any]]
    ignored: list[str]  # kinds the lab reads but does not act on
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)


# --- loading -----------------------------------------------------------------


def render_kustomize(directory: Path) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ManifestError(
            "kubectl is not installed: the lab renders k8s/ with `kubectl kustomize`"
        )
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise ManifestError(f"kubectl kustomize {directory} failed:\n{done.stderr.strip()}")
    return done.stdout


def _int_or_str(value: Any) -> int | str:
    return value if isinstance(value, int) else str(value)


def _service(doc: dict[str, Any], namespace: str) -> Service:
    spec = doc.get("spec") or {}
    name = check_dns_label(doc["metadata"]["name"])
    kind = spec.get("type", "ClusterIP")
    if kind != "ClusterIP":
        raise ManifestError(f"Service {name}: type {kind} is not supported, only ClusterIP")
    _honoured(fields.check_service, spec, f"Service {name}")
    affinity = _honoured(fields.session_affinity, spec, f"Service {name}")
    ports = []
    for raw in spec.get("ports") or []:
        protocol = raw.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            raise ManifestError(
                f"Service {name}: only TCP and UDP ports are supported, not {protocol}"
            )
        ports.append(
            ServicePort(
                name=raw.get("name") or "",
                port=int(raw["port"]),
                target_port=_int_or_str(raw.get("targetPort", raw["port"])),
                protocol=protocol,
            )
        )
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    return Service(
        name=name,
        namespace=namespace,
        selector={k: str(v) for k, v in spec["selector"].items()} if spec.get("selector") else None,
        ports=tuple(ports),
        cluster_ip=None if headless or not cluster_ip else str(cluster_ip),
        headless=headless,
        # kube-proxy writes no rules for a headless Service, affinity or not.
        affinity_timeout=None if headless else affinity,
    )


def _strategy(kind: str, spec: dict[str, Any]) -> Strategy:
    if kind == "Deployment":
        raw = spec.get("strategy") or {}
        rolling = raw.get("rollingUpdate") or {}
        return Strategy(
            raw.get("type", "RollingUpdate"),
            _int_or_str(rolling.get("maxSurge", "25%")),
            _int_or_str(rolling.get("maxUnavailable", "25%")),
        )
    raw = spec.get("updateStrategy") or {}
    rolling = raw.get("rollingUpdate") or {}
    return Strategy(
        raw.get("type", "RollingUpdate"), 0, _int_or_str(rolling.get("maxUnavailable", 1))
    )


def _workload(doc: dict[str, Any], namespace: str) -> Workload:
    kind = doc["kind"]
    name = check_dns_label(doc["metadata"]["name"])
    spec = doc.get("spec") or {}
    where = f"{kind} {name}"
    selector = Selector.parse(spec.get("selector"))
    claims: tuple[str, ...] = ()
    if kind == "StatefulSet":
        claims = tuple(c["metadata"]["name"] for c in spec.get("volumeClaimTemplates") or ())
    template = PodTemplate.parse(spec.get("template") or {}, where, claims)
    if not selector.requirements or not selector.matches(template.labels):
        raise ManifestError(f"{where}: spec.selector does not match the pod template's labels")
    return Workload(
        kind=kind,
        name=name,
        namespace=namespace,
        replicas=int(spec.get("replicas", 1)),
        selector=selector,
        template=template,
        strategy=_strategy(kind, spec),
        service_name=spec.get("serviceName"),
    )


def parse_documents(docs: list[dict[str, Any]]) -> Manifests:
    namespaces = {d["metadata"].get("namespace") for d in docs if d.get("kind") != "Namespace"}
    namespaces.discard(None)
    if len(namespaces) > 1:
        raise ManifestError(f"the lab runs one namespace; the manifests use {sorted(namespaces)}")
    namespace = namespaces.pop() if namespaces else "default"
    result = Manifests(namespace, {}, {}, {}, {}, [], [])
    for doc in docs:
        kind = doc.get("kind")
        name = doc.get("metadata", {}).get("name", "?")
        if kind == "Service":
            result.services[name] = _service(doc, namespace)
        elif kind in ("Deployment", "StatefulSet"):
            result.workloads[f"{kind}/{name}"] = _workload(doc, namespace)
        elif kind == "ConfigMap":
            result.config_maps[name] = {k: str(v) for k, v in (doc.get("data") or {}).items()}
        elif kind == "Secret":
            values = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
            values.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
            result.secrets[name] = values
        elif kind == "NetworkPolicy":
            result.network_policies.append(doc)
        elif kind == "Namespace":
            labels = {k: str(v) for k, v in (doc["metadata"].get("labels") or {}).items()}
            result.namespace_labels[name] = labels
        elif kind in ("DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"):
            raise ManifestError(f"{kind} {name}: the lab runs Deployments and StatefulSets only")
        else:
            result.ignored.append(f"{kind}/{name}")
    # The API server labels every namespace with its own name.
    labels = result.namespace_labels.setdefault(namespace, {})
    labels["kubernetes.io/metadata.name"] = namespace
    for workload in result.workloads.values():
        if workload.kind == "StatefulSet" and workload.service_name not in result.services:
            raise ManifestError(
                f"StatefulSet {workload.name}: serviceName {workload.service_name!r} is no Service"
            )
    return result


def render(kustomize_dir: Path | None = None, manifest_file: Path | None = None) -> str:
    """The manifests as YAML: a kustomize directory (default k8s/) or an already rendered file."""
    if manifest_file is not None:
        return manifest_file.read_text()
    return render_kustomize(kustomize_dir or DEFAULT_KUSTOMIZE_DIR)


def parse_text(text: str) -> Manifests:
    return parse_documents([d for d in yaml.safe_load_all(text) if d])


def load(kustomize_dir: Path | None = None, manifest_file: Path | None = None) -> Manifests:
    """Render and parse: a kustomize directory (default k8s/) or an already rendered file."""
    return parse_text(render(kustomize_dir, manifest_file))


def template_fingerprint(template: PodTemplate) -> str:
    """What the pod-template-hash is computed from: the template as written."""
    return json.dumps(template.raw, sort_keys=True, separators=(",", ":"))
