"""The traffic-policy components applied with the real kubectl to a three-node API server.

Root-free: the in-process API server with three nodes over two zones, and the stand-in
kubelets of test_api_kubectl_nodes.py. `kubectl apply -k` of k8s/ with one component
switched on (as a user switches it on); then the EndpointSlice the controller wrote for
`backend` (each endpoint's nodeName, its node's zone, the hints) as kubectl prints it, and
what each node's kube-proxy makes of that slice: which backend pods it sends connections
to. The packets are the three-node lab's test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.api.server import InThread
from lab.kubeproxy.model import NodeTopology
from lab.kubeproxy.topology import categorize
from lab.sources.kubeproxy import service_port_rules
from tests.k8s.k8s_manifests import K8S_DIR, Rendering, kustomization_dir
from tests.lab.test_api_kubectl import NS, Kubectl, _wait_for, kubectl_for
from tests.lab.test_api_kubectl_nodes import (
    NODE_NAMES,
    FakeKubelets,
    running_kubelets,
    three_nodes,
)

ZONES = {"lab-node-1": "lab-zone-a", "lab-node-2": "lab-zone-b", "lab-node-3": "lab-zone-a"}
NODES = tuple(NodeTopology(name, ZONES[name]) for name in NODE_NAMES)
BACKEND_SLICES = "kubernetes.io/service-name=backend"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InThread]:
    yield from three_nodes(tmp_path_factory, "apiserver-policies")


@pytest.fixture(scope="module")
def kubelets(server: InThread) -> Iterator[FakeKubelets]:
    yield from running_kubelets(server)


@pytest.fixture(scope="module")
def kubectl(server: InThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    assert server.running
    return kubectl_for(server.running, tmp_path_factory.mktemp("kubectl-policies-home"))


def _apply(kubectl: Kubectl, scratch: Path, *components: str) -> None:
    rendering = Rendering("policies", K8S_DIR, components)
    kubectl.run("apply", "-k", str(kustomization_dir(rendering, scratch)))


def _get(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl.run("get", "-n", NS, *args, "-o", "json").stdout)


def _backend_slice(kubectl: Kubectl) -> dict[str, Any]:
    (found,) = _get(kubectl, "endpointslices", "-l", BACKEND_SLICES)["items"]
    return found


def _ready_backends(kubectl: Kubectl) -> list[dict[str, Any]]:
    endpoints = _backend_slice(kubectl).get("endpoints") or []
    return [e for e in endpoints if e["conditions"].get("ready")]


def _settled(kubectl: Kubectl, hints: Any) -> bool:
    """Three ready backend endpoints, each with the hints `hints(endpoint)` expects."""
    ready = _ready_backends(kubectl)
    return len(ready) == 3 and all(e.get("hints") == hints(e) for e in ready)


def _picks(kubectl: Kubectl) -> dict[str, set[str]]:
    """node → the backend pods its kube-proxy balances backend:http over."""
    services = _get(kubectl, "services")["items"]
    slices = _get(kubectl, "endpointslices")["items"]
    (backend,) = [
        r for r in service_port_rules(services, slices) if r.port_name == f"{NS}/backend:http"
    ]
    return {
        node.name: {e.pod for e in categorize(backend, node).policy(backend.internal_traffic_local)}
        for node in NODES
    }


def _pods_by_node(kubectl: Kubectl) -> dict[str, set[str]]:
    pods = _get(kubectl, "pods", "-l", "app.kubernetes.io/name=backend")["items"]
    placed: dict[str, set[str]] = {name: set() for name in NODE_NAMES}
    for pod in pods:
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
            placed[pod["spec"]["nodeName"]].add(pod["metadata"]["name"])
    return placed


def test_every_endpoint_names_its_node_and_zone(
    kubectl: Kubectl, kubelets: FakeKubelets, tmp_path: Path
) -> None:
    _apply(kubectl, tmp_path)
    _wait_for(lambda: _settled(kubectl, lambda e: None), 30)
    for endpoint in _ready_backends(kubectl):
        assert endpoint["zone"] == ZONES[endpoint["nodeName"]]
        assert "hints" not in endpoint
    # No policy: every node's kube-proxy uses every backend pod.
    every = set().union(*_pods_by_node(kubectl).values())
    assert _picks(kubectl) == {name: every for name in NODE_NAMES}


def test_the_server_accepts_the_policies_under_strict_validation(
    kubectl: Kubectl, kubelets: FakeKubelets, tmp_path: Path
) -> None:
    # kubectl asks for fieldValidation=Strict: an unknown field would be refused (400).
    # After the first apply, so that the namespace exists for the server-side dry run.
    for component in ("internal-traffic-local", "prefer-same-node", "prefer-same-zone"):
        scratch = tmp_path / component
        scratch.mkdir()
        rendering = Rendering(component, K8S_DIR, (component,))
        done = kubectl.run(
            "apply", "-k", str(kustomization_dir(rendering, scratch)), "--dry-run=server"
        )
        assert "service/backend" in done.stdout, done.stdout


def test_prefer_same_node_hints_each_endpoint_for_its_node_and_zone(
    kubectl: Kubectl, kubelets: FakeKubelets, tmp_path: Path
) -> None:
    _apply(kubectl, tmp_path, "prefer-same-node")
    backend = _get(kubectl, "service", "backend")
    assert backend["spec"]["trafficDistribution"] == "PreferSameNode"

    def expected(e: dict[str, Any]) -> dict[str, Any]:
        return {"forNodes": [{"name": e["nodeName"]}], "forZones": [{"name": e["zone"]}]}

    _wait_for(lambda: _settled(kubectl, expected), 30)
    placed = _pods_by_node(kubectl)
    for name, picked in _picks(kubectl).items():
        zone_pods = set().union(*(placed[n] for n in NODE_NAMES if ZONES[n] == ZONES[name]))
        # Its own node's pods; where it has none, its zone's; failing those, every pod.
        assert picked == (placed[name] or zone_pods or set().union(*placed.values())), name


def test_prefer_same_zone_hints_each_endpoint_for_its_zone(
    kubectl: Kubectl, kubelets: FakeKubelets, tmp_path: Path
) -> None:
    _apply(kubectl, tmp_path, "prefer-same-zone")

    def expected(e: dict[str, Any]) -> dict[str, Any]:
        return {"forZones": [{"name": e["zone"]}]}

    _wait_for(lambda: _settled(kubectl, expected), 30)
    placed = _pods_by_node(kubectl)
    for name, picked in _picks(kubectl).items():
        zone_pods = set().union(*(placed[n] for n in NODE_NAMES if ZONES[n] == ZONES[name]))
        assert picked == (zone_pods or set().union(*placed.values())), name


def test_internal_traffic_local_keeps_each_node_to_its_own_pods(
    kubectl: Kubectl, kubelets: FakeKubelets, tmp_path: Path
) -> None:
    _apply(kubectl, tmp_path, "internal-traffic-local")
    spec = _get(kubectl, "service", "backend")["spec"]
    # kubectl apply took the last component's trafficDistribution away again.
    assert spec["internalTrafficPolicy"] == "Local" and "trafficDistribution" not in spec
    _wait_for(lambda: _settled(kubectl, lambda e: None), 30)
    assert _picks(kubectl) == _pods_by_node(kubectl)  # a node with none: an empty set, a drop
