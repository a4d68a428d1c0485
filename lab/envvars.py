"""A container's environment, built the way the kubelet builds it.

Order and precedence as in the kubelet: Service link variables (when
enableServiceLinks is not false), then `envFrom` sources in order, then `env`
entries in order, each overriding what came before. `$(VAR)` in an `env`
value refers to variables defined before it; `$$` escapes; an undefined
reference is left as written. The same expansion applies to command and args.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lab.manifests import Container, ManifestError, Service


# What the Downward API can fill for one pod.
@dataclass(frozen=True)
class PodFacts:
    name: str
    namespace: str
    uid: str
    ip: str
    node_name: str
    host_ip: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    service_account: str = "default"


class EnvError(ManifestError):
    """The kubelet's CreateContainerConfigError: a missing ConfigMap, Secret or key."""


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' `$(VAR)` expansion (k8s.io/kubernetes/third_party/forked/golang/expansion)."""
    out: list[str] = []
    checkpoint = 0
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            out.append(text[checkpoint:i])
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", i + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[i + 2 : close]
                    value = lookup(name)
                    out.append(value if value is not None else f"$({name})")
                    advance = close - i
            else:
                out.append("$" + nxt)
                advance = 1
            i += advance
            checkpoint = i + 1
        i += 1
    out.append(text[checkpoint:])
    return "".join(out)


_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def env_variable_name(text: str) -> str:
    """The kubelet's makeEnvVariableName: upper case, `_` for `-` and `.`, `_` before a digit."""
    name = text.upper().replace(".", "_").replace("-", "_")
    return f"_{name}" if name[:1].isdigit() else name


def service_link_env(services: list[tuple[Service, str]]) -> dict[str, str]:
    """Docker-link-style variables for each Service with a ClusterIP (FOO_SERVICE_HOST, …)."""
    env: dict[str, str] = {}
    for service, ip in sorted(services, key=lambda s: s[0].name):
        if not service.ports or not ip:
            continue
        prefix = env_variable_name(service.name)
        first = service.ports[0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first.port)
        for port in service.ports:
            if port.name:
                env[f"{prefix}_SERVICE_PORT_{env_variable_name(port.name)}"] = str(port.port)
        env[f"{prefix}_PORT"] = f"{first.protocol.lower()}://{ip}:{first.port}"
        for port in service.ports:
            base = f"{prefix}_PORT_{port.port}_{port.protocol.upper()}"
            env[base] = f"{port.protocol.lower()}://{ip}:{port.port}"
            env[f"{base}_PROTO"] = port.protocol.lower()
            env[f"{base}_PORT"] = str(port.port)
            env[f"{base}_ADDR"] = ip
    return env


def _field_ref(path: str, pod: PodFacts) -> str:
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.service_account,
        "status.hostIP": pod.host_ip,
        "status.hostIPs": pod.host_ip,
        "status.podIP": pod.ip,
        "status.podIPs": pod.ip,
    }
    if path in simple:
        return simple[path]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        source = pod.labels if match.group(1) == "labels" else pod.annotations
        return source.get(match.group(2), "")
    raise EnvError(f"fieldRef {path!r} is not supported")


_SUFFIXES = {
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}


def parse_quantity(text: str) -> Decimal:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", text.strip())
    if not match or (match.group(2) and match.group(2) not in _SUFFIXES):
        raise EnvError(f"cannot read the quantity {text!r}")
    return Decimal(match.group(1)) * _SUFFIXES.get(match.group(2), Decimal(1))


def _resource_ref(raw: dict[str, Any], container: Container) -> str:
    resource = raw["resource"]  # e.g. limits.memory
    kind, _, name = resource.partition(".")
    value = container.resources.get(kind, {}).get(name)
    if value is None:
        raise EnvError(f"resourceFieldRef {resource}: the container sets no {resource}")
    divisor = parse_quantity(str(raw.get("divisor", "1")))
    # The kubelet rounds up: 500m of CPU with divisor 1 is 1.
    return str(math.ceil(parse_quantity(value) / divisor))


def container_env(
    container: Container,
    pod: PodFacts,
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
    service_env: Mapping[str, str],
) -> dict[str, str]:
    env: dict[str, str] = dict(service_env)
    for source in container.env_from:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref, store, what = source["configMapRef"], config_maps, "ConfigMap"
        elif "secretRef" in source:
            ref, store, what = source["secretRef"], secrets, "Secret"
        else:
            raise EnvError(f"container {container.name}: unknown envFrom source {sorted(source)}")
        data = store.get(ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise EnvError(f"container {container.name}: {what} {ref['name']!r} not found")
        for key, value in data.items():
            # The kubelet skips keys that are not valid variable names.
            if _ENV_NAME.match(prefix + key):
                env[prefix + key] = value

    for entry in container.env:
        name = entry["name"]
        if "valueFrom" not in entry:
            env[name] = expand(str(entry.get("value", "")), env.get)
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_ref(source["fieldRef"]["fieldPath"], pod)
        elif "resourceFieldRef" in source:
            env[name] = _resource_ref(source["resourceFieldRef"], container)
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            is_cm = "configMapKeyRef" in source
            ref = source["configMapKeyRef"] if is_cm else source["secretKeyRef"]
            store = config_maps if is_cm else secrets
            what = "ConfigMap" if is_cm else "Secret"
            data = store.get(ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                missing = (
                    f"{what} {ref['name']!r}"
                    if data is None
                    else f"key {ref['key']!r} in {what} {ref['name']!r}"
                )
                raise EnvError(f"container {container.name}: env {name}: {missing} not found")
            env[name] = data[ref["key"]]
        else:
            raise EnvError(f"container {container.name}: env {name}: unknown valueFrom")
    return env


def expand_command(container: Container, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """command and args with `$(VAR)` replaced from the container's final environment."""
    return (
        [expand(c, env.get) for c in container.command],
        [expand(a, env.get) for a in container.args],
    )
