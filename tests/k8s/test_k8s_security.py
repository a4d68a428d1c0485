"""The Pod Security "restricted" profile and the rest of the hardening, for every pod and
every container (init containers included), plus the resource budget that keeps the
whole app on a laptop's kind or minikube."""

from __future__ import annotations

import copy
import re

import pytest
from k8s_manifests import K8S_DIR, REPO, all_containers, effective_replicas, pod_spec, render

# https://kubernetes.io/docs/concepts/security/pod-security-standards/ (restricted)
ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}

# The whole app must fit a laptop cluster; docs/kubernetes.md states these totals.
BUDGET_REQUESTS = {"cpu": 1000, "memory": 1536}  # millicores, MiB
BUDGET_LIMITS = {"cpu": 4000, "memory": 3072}


def restricted_violations(spec: dict) -> list[str]:
    """What the restricted Pod Security profile (plus this project's extras) rejects."""
    problems = []
    pod_sc = spec.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            problems.append(f"pod: {host}")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("pod: automountServiceAccountToken is not false")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: {kinds - ALLOWED_VOLUME_TYPES}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod: runAsUser 0")
    for container in all_containers(spec):
        where = f"container {container['name']}"
        sc = container.get("securityContext", {})
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{where}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ALLOWED_SECCOMP:
            problems.append(f"{where}: seccompProfile {seccomp}")
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{where}: capabilities not dropping ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: adds {capabilities['add']}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort")
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(section, {}):
                    problems.append(f"{where}: no {section}.{resource}")
    return problems


def test_namespace_enforces_restricted(by_kind):
    # Production does not own the namespace: it applies k8s/namespace/ once, the very
    # object development renders (test_k8s_components checks they are the same).
    namespaces = by_kind.get("Namespace") or {
        d["metadata"]["name"]: d for d in render(K8S_DIR / "namespace")
    }
    labels = namespaces["clusterip-demo"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels.get("pod-security.kubernetes.io/warn") == "restricted"


def test_every_pod_meets_the_restricted_profile(workloads):
    problems = {name: restricted_violations(pod_spec(obj)) for name, obj in workloads.items()}
    assert not any(problems.values()), problems


@pytest.mark.parametrize(
    "breakage",
    [
        lambda s: s["initContainers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        lambda s: s["initContainers"][0]["securityContext"]["capabilities"].update(drop=[]),
        lambda s: s["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
        lambda s: s["securityContext"].pop("seccompProfile"),
        lambda s: s["securityContext"].pop("runAsNonRoot"),
        lambda s: s.update(automountServiceAccountToken=True),
        lambda s: s["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        lambda s: s["containers"][0]["resources"].pop("limits"),
    ],
)
def test_the_profile_check_catches_each_breakage(workloads, breakage):
    spec = copy.deepcopy(pod_spec(workloads["backend"]))
    assert not restricted_violations(spec)
    breakage(spec)
    assert restricted_violations(spec)


def test_pods_get_no_service_links(workloads):
    # Docker-link style BACKEND_PORT=tcp://10.96.…:8000 variables would shadow settings;
    # names come from DNS, which is the lesson.
    for name, obj in workloads.items():
        assert pod_spec(obj).get("enableServiceLinks") is False, name


def test_writable_paths_are_volumes(workloads):
    # With a read-only root filesystem every path a tier writes must be a volume.
    must_write = {
        "frontend": {"/tmp"},
        "backend": {"/tmp"},
        "redis": {"/data"},
        "mysql": {"/var/lib/mysql", "/var/run/mysqld", "/var/lib/mysql-files", "/tmp"},
    }
    for name, paths in must_write.items():
        for container in all_containers(pod_spec(workloads[name])):
            mounted = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert paths <= mounted, (name, container["name"], paths - mounted)


def test_official_images_run_as_their_own_users(workloads):
    for name in ("mysql", "redis"):
        context = pod_spec(workloads[name])["securityContext"]
        assert context["runAsUser"] == context["runAsGroup"] == 999, name
    assert pod_spec(workloads["mysql"])["securityContext"]["fsGroup"] == 999
    for name in ("frontend", "backend"):
        assert pod_spec(workloads[name])["securityContext"]["runAsUser"] == 10001


def _millicores(value: str | int) -> int:
    text = str(value)
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def _mebibytes(value: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", str(value))
    assert match, f"unexpected memory quantity {value}"
    return int(int(match.group(1)) * units[match.group(2)])


def resource_totals(workloads, hpas) -> dict[str, dict[str, int]]:
    """Sum over replicas of each pod's effective requests and limits (an init container
    counts only where it asks for more than the app containers together). Under an
    autoscaler, its minimum."""
    totals = {s: {"cpu": 0, "memory": 0} for s in ("requests", "limits")}
    for obj in workloads.values():
        spec, replicas = pod_spec(obj), effective_replicas(obj, hpas)
        for section in totals:
            cpu = sum(_millicores(c["resources"][section]["cpu"]) for c in spec["containers"])
            mem = sum(_mebibytes(c["resources"][section]["memory"]) for c in spec["containers"])
            for init in spec.get("initContainers", []):
                cpu = max(cpu, _millicores(init["resources"][section]["cpu"]))
                mem = max(mem, _mebibytes(init["resources"][section]["memory"]))
            totals[section]["cpu"] += cpu * replicas
            totals[section]["memory"] += mem * replicas
    return totals


def test_the_whole_app_fits_a_laptop(workloads, hpas, rendering):
    if rendering.environment != "development":
        return  # production is sized for production nodes; docs/kubernetes.md states it
    totals = resource_totals(workloads, hpas)
    for resource, budget in BUDGET_REQUESTS.items():
        assert totals["requests"][resource] <= budget, totals
    for resource, budget in BUDGET_LIMITS.items():
        assert totals["limits"][resource] <= budget, totals


def test_docs_state_the_resource_totals(workloads, hpas, rendering):
    if rendering.extra_components:
        return  # the docs state the environments as shipped
    totals = resource_totals(workloads, hpas)
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    # One table row per environment: "| requests (development) | 375m CPU | 1120 MiB |".
    for section in ("requests", "limits"):
        row = (
            f"| {section} ({rendering.environment}) | {totals[section]['cpu']}m CPU"
            f" | {totals[section]['memory']} MiB |"
        )
        assert row in docs, f"docs/kubernetes.md should have the row {row!r}"
