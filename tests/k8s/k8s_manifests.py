"""Helpers for the manifest checks: render `k8s/` offline and read the objects.

No cluster and no container engine are needed. Where kubectl is missing the tests skip
with the reason, except under CI=true, where a missing tool is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "k8s"
NAMESPACE = "clusterip-demo"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"}


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
