"""Helpers for the manifest checks: render `k8s/` offline and read the objects.

No cluster and no container engine are needed. Where kubectl is missing the tests skip
with the reason, except under CI=true, where a missing tool is a failure.

Every check runs over each rendering in RENDERINGS: development (`k8s/`), production
(`k8s/overlays/production/`), and each optional component switched on the way a user
switches it on, by adding it to `components:` (in a copy of k8s/).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "k8s"
NAMESPACE = "clusterip-demo"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"}
BASE_DIR = K8S_DIR / "base"
DEVELOPMENT_DIR = K8S_DIR / "development"
PRODUCTION_DIR = K8S_DIR / "overlays" / "production"
# What production expects to exist before the apply (overlays/production/README.md): the
# keys, with the non-secret values the README creates; the passwords are unknown here.
EXTERNAL_SECRETS = {
    "mysql-credentials": {
        "MYSQL_DATABASE": "app",
        "MYSQL_USER": "app",
        "MYSQL_PASSWORD": "<created before the apply>",
        "MYSQL_ROOT_PASSWORD": "<created before the apply>",
    }
}


@dataclass(frozen=True)
class Rendering:
    name: str
    directory: Path  # the kustomization that is applied
    extra_components: tuple[str, ...] = ()  # names under k8s/components/ switched on
    # Fields of the kustomization removed with them, as its comments tell a user to.
    drop: tuple[str, ...] = ()

    @property
    def environment(self) -> str:
        return "production" if self.directory == PRODUCTION_DIR else "development"

    def components(self) -> set[str]:
        """Every component this rendering switches on (listed or added)."""
        kustomization = yaml.safe_load((self.directory / "kustomization.yaml").read_text())
        listed = {Path(c).name for c in kustomization.get("components") or []}
        return listed | set(self.extra_components)


RENDERINGS = (
    Rendering("development", K8S_DIR),
    Rendering("production", PRODUCTION_DIR),
    Rendering("development+hpa", K8S_DIR, ("hpa",)),
    Rendering("development+session-affinity", K8S_DIR, ("session-affinity",)),
    # The overlay's `replicas:` would put a count back that the autoscaler owns.
    Rendering("production+hpa", PRODUCTION_DIR, ("hpa",), drop=("replicas",)),
    Rendering("production+session-affinity", PRODUCTION_DIR, ("session-affinity",)),
    # The traffic policies of the three-node lab's lesson.
    Rendering("development+internal-traffic-local", K8S_DIR, ("internal-traffic-local",)),
    Rendering("development+prefer-same-node", K8S_DIR, ("prefer-same-node",)),
    Rendering("development+prefer-same-zone", K8S_DIR, ("prefer-same-zone",)),
    Rendering("development+tracing", K8S_DIR, ("tracing",)),
    Rendering("production+tracing", PRODUCTION_DIR, ("tracing",)),
    Rendering("production+service-monitor", PRODUCTION_DIR, ("service-monitor",)),
    Rendering("production+gateway", PRODUCTION_DIR, ("gateway",)),
    Rendering("development+gateway", K8S_DIR, ("gateway",)),
    Rendering("production+backup", PRODUCTION_DIR, ("backup",)),
    Rendering("development+backup", K8S_DIR, ("backup",)),
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def need_tool(name: str, hint: str) -> str:
    """The path of a tool, or skip (fail under CI=true) saying how to get it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH: {hint}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def render(directory: Path = K8S_DIR) -> list[dict[str, Any]]:
    kubectl = need_tool("kubectl", "it renders k8s/ with its built-in kustomize")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_rendering(rendering: Rendering, scratch: Path) -> list[dict[str, Any]]:
    """The objects of one rendering; extra components are added in a copy of k8s/."""
    return render(kustomization_dir(rendering, scratch))


def kustomization_dir(rendering: Rendering, scratch: Path) -> Path:
    """The directory to render or `kubectl apply -k`: k8s/ itself, or a copy of it in
    `scratch` with the extra components added to `components:`, as a user adds them."""
    if not rendering.extra_components:
        return rendering.directory
    copy = scratch / "k8s"
    shutil.copytree(K8S_DIR, copy)
    directory = copy / rendering.directory.relative_to(K8S_DIR)
    path = directory / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text())
    for name in rendering.extra_components:
        component = os.path.relpath(copy / "components" / name, directory)
        kustomization.setdefault("components", []).append(component)
    for key in rendering.drop:
        del kustomization[key]
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return directory


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + matchExpressions).

    An empty selector matches everything; None (an absent selector) matches nothing.
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, `#` comments and blank lines: what kustomize `envs:` and
    docker-compose `env_file:` both read."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {raw!r}"
        values[key.strip()] = value
    return values


def container_env(
    container: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
    secrets: dict[str, dict[str, str]],
) -> dict[str, Any]:
    """The container's environment as Kubernetes would build it: envFrom first, then env.

    Values: a plain string, ("secret", name, key), or ("field", fieldPath).
    """
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in config_maps, f"envFrom names a missing ConfigMap {name}"
            env.update({prefix + k: v for k, v in config_maps[name].items()})
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            assert name in secrets, f"envFrom names a missing Secret {name}"
            env.update({prefix + k: ("secret", name, k) for k in secrets[name]})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["name"] in secrets, f"{item['name']}: missing Secret {ref['name']}"
            assert ref["key"] in secrets[ref["name"]], f"{item['name']}: missing key {ref['key']}"
            env[item["name"]] = ("secret", ref["name"], ref["key"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["name"] in config_maps, f"{item['name']}: missing ConfigMap {ref['name']}"
            env[item["name"]] = config_maps[ref["name"]][ref["key"]]
        elif "fieldRef" in source:
            env[item["name"]] = ("field", source["fieldRef"]["fieldPath"])
        else:
            env[item["name"]] = ("other", source)
    return env


def secret_mount_files(
    container: dict[str, Any], spec: dict[str, Any]
) -> dict[str, tuple[str, str]]:
    """Path of each file a container sees from a Secret volume -> (Secret name, key)."""
    volumes = {v["name"]: v["secret"] for v in spec.get("volumes", []) if "secret" in v}
    files: dict[str, tuple[str, str]] = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes.get(mount["name"])
        if secret is None:
            continue
        assert mount.get("readOnly") is True, f"{container['name']}: Secret mounted writable"
        assert "subPath" not in mount, "a subPath mount of a Secret never sees updates"
        for item in secret.get("items", []):
            path = f"{mount['mountPath'].rstrip('/')}/{item['path']}"
            files[path] = (secret["secretName"], item["key"])
    return files


def effective_replicas(obj: dict[str, Any], hpas: dict[str, dict[str, Any]]) -> int:
    """What runs when nothing is under load: the autoscaler's minimum where one targets
    this workload, else spec.replicas (default 1). A CronJob runs one Job at a time
    (concurrencyPolicy: Forbid), and none while suspended."""
    if obj["kind"] == "CronJob":
        assert obj["spec"]["concurrencyPolicy"] == "Forbid", obj["metadata"]["name"]
        return 0 if obj["spec"].get("suspend") else 1
    for hpa in hpas.values():
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) == (obj["kind"], obj["metadata"]["name"]):
            return int(hpa["spec"].get("minReplicas", 1))
    return int(obj["spec"].get("replicas", 1))
