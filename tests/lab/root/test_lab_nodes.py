"""Three nodes (`lab up --nodes 3`): a Service answers on every node, packets cross nodes,
and a node fails.

One lab per proxy mode (the `lab3` fixture, tests/lab/conftest.py). Each node is a
network namespace with its own kubelet, kube-proxy and CNI; checked here with the real
kubectl and with what each node's kernel holds. The last test stops a node under a
request loop and starts it again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.naming import node_ip
from lab.network import lab_netns, leftovers
from tests.k8s.k8s_manifests import K8S_DIR
from tests.lab.labctl import (
    LabProcess,
    Load,
    pid_alive,
    report,
    rows_by_the_test,
    summary,
)
from tests.lab.root.test_lab_kubectl import AppKubectl

pytestmark = pytest.mark.lab

NODES = ("lab-node-1", "lab-node-2", "lab-node-3")
ZONE = "topology.kubernetes.io/zone"


@pytest.fixture(scope="module")
def kubectl(lab3: LabProcess, tmp_path_factory: pytest.TempPathFactory) -> AppKubectl:
    home = tmp_path_factory.mktemp("kubectl-home")
    return AppKubectl(home, lab3.kubeconfig)


def _lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], capture_output=True, text=True, check=True
    )


def _node_of(status: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["node"] for p in status["pods"] if not p["deleting"]}


def _access_log(kubectl: AppKubectl, pod: str, container: str, ids: set[str]) -> dict[str, str]:
    """request id → the client address the tier logged, for the ids asked about."""
    seen: dict[str, str] = {}
    for line in kubectl("logs", pod, "-c", container).stdout.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("logger") == "access" and entry.get("request_id") in ids:
            seen[entry["request_id"]] = entry["client"]
    return seen


# --- the nodes ------------------------------------------------------------------------


def test_get_nodes_wide_prints_three_ready_nodes_in_two_zones(kubectl: AppKubectl) -> None:
    out = kubectl.run("get", "nodes", "-o", "wide", "-L", ZONE).stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert sorted(rows) == list(NODES)
    assert [rows[n][1] for n in NODES] == ["Ready"] * 3
    assert [rows[n][5] for n in NODES] == [str(node_ip(i)) for i in (1, 2, 3)]
    assert [rows[n][-1] for n in NODES] == ["lab-zone-a", "lab-zone-b", "lab-zone-a"]
    leases = kubectl.run("-n", "kube-node-lease", "get", "leases", "-o", "json").stdout
    holders = {item["spec"]["holderIdentity"] for item in json.loads(leases)["items"]}
    assert holders == set(NODES), "every node's kubelet renews its Lease"


def test_pods_are_spread_and_kubectl_shows_the_node_each_runs_on(
    lab3: LabProcess, kubectl: AppKubectl
) -> None:
    status = lab3.status()
    nodes = _node_of(status)
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    column = wide[0].split().index("NODE")
    shown = {line.split()[0]: line.split()[column] for line in wide[1:]}
    for pod, node in shown.items():
        assert nodes[pod] == node, f"{pod}: kubectl says {node}, its kubelet is {nodes[pod]}'s"
    backends = {nodes[p["name"]] for p in lab3.pods("backend", status)}
    assert backends == set(NODES), "the backend's spread constraint puts one pod per node"


def test_every_node_holds_the_same_service_rules(lab3: LabProcess) -> None:
    backend_ip = lab3.service_ip("backend")
    deadline = time.monotonic() + 30
    while True:
        listed = {node: _lab("rules", "--node", node).stdout for node in NODES}
        if len(set(listed.values())) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # a node still syncing an endpoint change
    assert len(set(listed.values())) == 1, "the nodes' kube-proxies wrote different rules"
    assert backend_ip in listed[NODES[0]]
    # Each node's rules are its own kernel's: the host itself holds none of them.
    mode = lab3.proxy_mode
    host = ["iptables-nft", "-t", "nat", "-S"] if mode == "iptables" else ["nft", "list", "ruleset"]
    assert backend_ip not in subprocess.run(host, capture_output=True, text=True).stdout


# --- the packet across nodes ----------------------------------------------------------

# Run in a pod's network namespace: N requests to a URL, each on a new connection.
_CLIENT = """
import sys, urllib.request
url, ids = sys.argv[1], sys.argv[2:]
for rid in ids:
    req = urllib.request.Request(url, headers={"X-Request-ID": rid})
    with urllib.request.urlopen(req, timeout=5) as answer:
        print(rid, answer.headers.get("X-Served-By"))
"""


def test_a_pod_to_clusterip_connection_crosses_nodes_with_the_pods_address(
    lab3: LabProcess, kubectl: AppKubectl
) -> None:
    status = lab3.status()
    nodes = _node_of(status)
    frontend = lab3.pods("frontend", status)[0]
    url = f"http://{lab3.service_ip('backend', status)}:8000/api/info"
    ids = [uuid.uuid4().hex for _ in range(24)]
    done = subprocess.run(
        ["ip", "netns", "exec", frontend["netns"], sys.executable, "-c", _CLIENT, url, *ids],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    served = dict(line.split() for line in done.stdout.splitlines())
    seen: dict[str, str] = {}
    for pod in {*served.values()}:
        seen.update(_access_log(kubectl, pod, "backend", set(ids)))
    elsewhere = {nodes[pod] for pod in served.values()} - {frontend["node"]}
    report(
        "three nodes: pod → ClusterIP → pod",
        {
            "frontend pod's node": frontend["node"],
            "answered by pods on": sorted({nodes[p] for p in served.values()}),
            "source the backend saw": sorted(set(seen.values())),
        },
    )
    assert elsewhere, "no connection left the frontend pod's node"
    assert sorted(seen) == sorted(ids)
    # Pod to pod, even through the ClusterIP and across nodes: not masqueraded.
    assert set(seen.values()) == {frontend["ip"]}


def test_a_connection_from_outside_the_pod_network_is_masqueraded(
    lab3: LabProcess, kubectl: AppKubectl
) -> None:
    """The host is a machine on the nodes' network; it reaches the ClusterIP through
    lab-node-1, whose kube-proxy marks what does not come from the cluster CIDR: the
    frontend sees node 1's address on the link the packet left by."""
    status = lab3.status()
    nodes = _node_of(status)
    ids = [uuid.uuid4().hex for _ in range(24)]
    url = f"http://{lab3.service_ip('frontend', status)}/api/messages"
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, url, *ids], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    served = dict(line.split() for line in done.stdout.splitlines())
    expected = {"lab-node-1": "10.244.1.1"}  # its own pods: from its gateway address
    seen: dict[str, str] = {}
    for pod in set(served.values()):
        for rid, client in _access_log(kubectl, pod, "frontend", set(ids)).items():
            seen[rid] = client
            node = nodes[pod]
            assert client == expected.get(node, str(node_ip(1))), f"{pod} on {node}: {client}"
    assert sorted(seen) == sorted(ids)
    assert "10.250.0.1" not in seen.values(), "the host's own address never reaches a pod"


# --- traffic policies: which pods answer, from which node ------------------------------

# Run in a pod's network namespace: N requests, each on a new connection; "-" for none.
_COUNTER = """
import sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
for _ in range(n):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            print(answer.headers.get("X-Served-By"))
    except OSError:
        print("-")
"""


def _answers(lab3: LabProcess, status: dict[str, Any], n: int = 12) -> dict[str, list[str]]:
    """From each frontend pod's node: the nodes of the backend pods that answered
    (`-`: no answer)."""
    # Every pod, terminating ones too: a pod on its way out may still answer.
    nodes = {p["name"]: p["node"] for p in status["pods"]} | {"-": "-"}
    url = f"http://{lab3.service_ip('backend', status)}:8000/api/info"
    found: dict[str, list[str]] = {}
    for frontend in lab3.pods("frontend", status):
        done = subprocess.run(
            ["ip", "netns", "exec", frontend["netns"], sys.executable, "-c", _COUNTER, url, str(n)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        found[frontend["node"]] = [
            nodes.get(p, "?") if p != "-" else p for p in done.stdout.split()
        ]
    return found


def _apply_with(kubectl: AppKubectl, scratch: Path, component: str | None) -> None:
    """`kubectl apply -k` of k8s/ with one more component, as a user switches one on
    (None: k8s/ as it is, which switches it off again)."""
    directory = K8S_DIR
    if component is not None:
        directory = scratch / "k8s"
        shutil.rmtree(directory, ignore_errors=True)
        shutil.copytree(K8S_DIR, directory)
        path = directory / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        kustomization["components"].append(f"components/{component}")
        path.write_text(yaml.safe_dump(kustomization, sort_keys=False))
    kubectl.run("apply", "-k", str(directory))


def _settled(
    lab3: LabProcess, expect: Any, timeout: float = 40, n: int = 12
) -> dict[str, list[str]]:
    """The answers once `expect(answers)` holds (each node's kube-proxy has synced)."""
    deadline = time.monotonic() + timeout
    while True:
        answers = _answers(lab3, lab3.status(), n)
        if expect(answers) or time.monotonic() > deadline:
            return answers
        time.sleep(1)


def _one_frontend_per_node(lab3: LabProcess, kubectl: AppKubectl, backends: int) -> None:
    kubectl("scale", "deployment/frontend", "--replicas=3")
    kubectl("scale", "deployment/backend", f"--replicas={backends}")

    def placed(s: dict[str, Any]) -> bool:
        front = [p for p in lab3.pods("frontend", s) if p["ready"] and not p["deleting"]]
        back = [p for p in lab3.pods("backend", s) if p["ready"] and not p["deleting"]]
        return (
            len({p["node"] for p in front}) == 3
            and len(back) == backends
            and len(lab3.pods("backend", s)) == backends
        )

    lab3.wait_for(placed, 120, f"a frontend pod on every node, {backends} backend pods")


@pytest.mark.parametrize("component", ["internal-traffic-local", "prefer-same-node"])
def test_a_node_local_policy_keeps_connections_on_the_node(
    lab3: LabProcess, kubectl: AppKubectl, tmp_path: Path, component: str
) -> None:
    try:
        _apply_with(kubectl, tmp_path, component)

        def local(answers: dict[str, list[str]]) -> bool:
            return len(answers) == 3 and all(set(a) == {n} for n, a in answers.items())

        _one_frontend_per_node(lab3, kubectl, backends=3)
        every_node = _settled(lab3, local)
        # One backend fewer: one node has none of its own.
        _one_frontend_per_node(lab3, kubectl, backends=2)
        backends = {p["node"] for p in lab3.pods("backend")}
        bare = next(n for n in NODES if n not in backends)

        def fallen_back(answers: dict[str, list[str]]) -> bool:
            if component == "internal-traffic-local":
                return set(answers.get(bare, [])) == {"-"}
            return bool(answers.get(bare)) and set(answers[bare]) <= set(NODES) - {bare}

        two = _settled(lab3, fallen_back, n=6)  # a dropped connection waits its 2 s timeout
    finally:
        _apply_with(kubectl, tmp_path, None)
        kubectl("rollout", "status", "deployment/backend", "--timeout=120s", check=False)
        kubectl("rollout", "status", "deployment/frontend", "--timeout=120s", check=False)
    report(
        f"three nodes: {component} (which node answered, from each frontend pod's node)",
        {
            "three backend pods": {n: sorted(set(a)) for n, a in every_node.items()},
            f"two backend pods, none on {bare}": {n: sorted(set(a)) for n, a in two.items()},
        },
    )
    assert local(every_node), every_node
    for node in set(two) - {bare}:
        assert set(two[node]) == {node}, two
    if component == "internal-traffic-local":
        # No local endpoint: kube-proxy drops, though backend pods run on other nodes.
        assert set(two[bare]) == {"-"}, two
    else:
        # PreferSameNode falls back (to the zone's pods, or all): every connection answered.
        assert two[bare] and set(two[bare]) <= set(NODES) - {bare}, two


def test_prefer_same_zone_keeps_connections_in_the_zone(
    lab3: LabProcess, kubectl: AppKubectl, tmp_path: Path
) -> None:
    zone = {"lab-node-1": "lab-zone-a", "lab-node-2": "lab-zone-b", "lab-node-3": "lab-zone-a"}

    def zonal(answers: dict[str, list[str]]) -> bool:
        return len(answers) == 3 and all(
            set(a) == {m for m in NODES if zone[m] == zone[n]} for n, a in answers.items()
        )

    try:
        _apply_with(kubectl, tmp_path, "prefer-same-zone")
        _one_frontend_per_node(lab3, kubectl, backends=3)
        seen = _settled(lab3, zonal, n=24)
    finally:
        _apply_with(kubectl, tmp_path, None)
        kubectl("rollout", "status", "deployment/backend", "--timeout=120s", check=False)
        kubectl("rollout", "status", "deployment/frontend", "--timeout=120s", check=False)
    report(
        "three nodes: prefer-same-zone (which node answered, from each frontend pod's node)",
        {n: sorted(set(a)) for n, a in seen.items()},
    )
    # Zone a (nodes 1 and 3) answers from both of its nodes, zone b (node 2) from itself.
    assert zonal(seen), seen


# --- a network fault on a pod of another node -----------------------------------------

_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


def test_a_partition_cuts_a_pod_on_its_own_node(lab3: LabProcess) -> None:
    status = lab3.status()
    frontend = lab3.pods("frontend", status)[0]
    backend = next(p for p in lab3.pods("backend", status) if p["node"] != frontend["node"])
    node_ns = next(n["netns"] for n in status["nodes"] if n["name"] == backend["node"])

    def connect() -> str:
        argv = [sys.executable, "-c", _CONNECT, backend["ip"], "8000"]
        done = subprocess.run(
            ["ip", "netns", "exec", frontend["netns"], *argv], capture_output=True, text=True
        )
        return done.stdout.strip()

    assert connect() == "connected"
    _lab("partition", backend["name"])
    try:
        fence = subprocess.run(
            ["ip", "netns", "exec", node_ns, "iptables-nft", "-S", "FORWARD"],
            capture_output=True,
            text=True,
        ).stdout
        assert "CIP-FAULT-" in fence, "the fault is in the pod's node's own FORWARD"
        assert connect() == "TimeoutError"
    finally:
        _lab("heal", backend["name"])
    assert connect() == "connected"


# --- a node fails ---------------------------------------------------------------------


def _node_ready(kubectl: AppKubectl, node: str) -> str:
    obj = json.loads(kubectl.run("get", "node", node, "-o", "json").stdout)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    return str(ready["status"])


def _wait(what: str, check: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s")


def _ready_endpoints(status: dict[str, Any]) -> set[str]:
    return {e["pod"] for ep in status["endpoints"] for e in ep["endpoints"] if e["ready"]}


def _victim(lab3: LabProcess) -> str:
    """A node the app can lose: not node 1 (the host's way in), not MySQL's (a
    StatefulSet's pod is not replaced while its node is only unreachable)."""
    status = lab3.status()
    nodes = _node_of(status)
    mysql = nodes[lab3.pods("mysql", status)[0]["name"]]
    return next(n for n in NODES[1:] if n != mysql)


def test_drain_moves_a_nodes_pods_through_the_budgets_under_load(
    lab3: LabProcess, kubectl: AppKubectl
) -> None:
    """`kubectl drain` evicts through the eviction API (the PodDisruptionBudgets honoured,
    kubectl retrying a refusal), the pods come back on the other nodes, no request fails."""
    victim = _victim(lab3)
    try:
        with Load(lab3.base_url, max_seconds=180) as loads:
            time.sleep(2)
            drained = kubectl.run(
                "drain",
                victim,
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=100s",
                check=False,
            )
            lab3.wait_for(
                lambda s: (
                    not [p for p in s["pods"] if p["node"] == victim]
                    and len([p for p in lab3.pods("backend", s) if p["ready"]]) >= 3
                ),
                120,
                "every pod of the drained node replaced elsewhere",
            )
            time.sleep(2)
        rows = {
            line.split()[0]: line.split()[1]
            for line in kubectl.run("get", "nodes").stdout.splitlines()[1:]
        }
    finally:
        kubectl.run("uncordon", victim, check=False)
        # Spread over the three nodes again, for what follows: a rollout's new pods are
        # placed by the spread constraints, the drained node's emptiness included.
        kubectl("rollout", "restart", "deployment/backend", "deployment/frontend", check=False)
        for deployment in ("backend", "frontend"):
            kubectl("rollout", "status", f"deployment/{deployment}", "--timeout=120s", check=False)
    outcome = summary(loads.outcomes)
    report(
        f"three nodes: kubectl drain {victim} under load",
        {"requests": outcome["requests"], "failed": outcome["failed"]},
    )
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert f"node/{victim} drained" in drained.stdout
    assert rows[victim] == "Ready,SchedulingDisabled"
    assert outcome["requests"] > 0 and outcome["failed"] == 0, outcome


def test_a_node_fails_its_pods_are_replaced_and_traffic_recovers(
    lab3: LabProcess, kubectl: AppKubectl
) -> None:
    victim = _victim(lab3)
    on_victim = [p for p, n in _node_of(lab3.status()).items() if n == victim]
    assert on_victim, f"no pod on {victim} to lose"
    with Load(lab3.base_url, max_seconds=240) as loads:
        time.sleep(3)
        t_stop = time.monotonic()
        _lab("node", "stop", victim)
        t_unknown = _wait("NotReady", lambda: _node_ready(kubectl, victim) == "Unknown", 60)
        t_out = lab3.wait_for(
            lambda s: (
                not any(
                    e["pod"] in on_victim
                    for ep in s["endpoints"]
                    for e in ep["endpoints"]
                    if e["ready"]
                )
            ),
            60,
            "the unreachable node's pods out of the endpoints",
        )

        def replaced(s: dict[str, Any]) -> bool:
            live = [
                p for p in s["pods"] if p["node"] != victim and p["ready"] and not p["deleting"]
            ]
            names = [p["labels"].get("app.kubernetes.io/name") for p in live]
            return names.count("backend") >= 3 and names.count("frontend") >= 2

        t_replaced = lab3.wait_for(replaced, 120, "replacements ready on the other nodes")
        time.sleep(5)  # traffic on the replacements only
        t_calm = time.monotonic()
        time.sleep(3)
        _lab("node", "start", victim)
        t_back = _wait("Ready again", lambda: _node_ready(kubectl, victim) == "True", 60)
        t_gone = _wait(
            "the evicted pods removed once their kubelet is back",
            lambda: not set(on_victim) & set(_node_of(lab3.status())),
            90,
        )
        time.sleep(2)
    during = summary(loads.between(t_stop, t_replaced))
    after = summary(loads.between(t_calm))
    report(
        f"three nodes: {victim} stopped (lab timings: node-monitor grace 8 s, "
        "default toleration 20 s)",
        {
            "pods on the node": on_victim,
            "NotReady after (s)": round(t_unknown - t_stop, 1),
            "its pods out of the rules after (s)": round(t_out - t_stop, 1),
            "replacements ready after (s)": round(t_replaced - t_stop, 1),
            "requests, stop to replaced": during["requests"],
            "failed, stop to replaced": during["failed"],
            "node Ready again after start (s)": round(t_back - t_calm - 3, 1),
            "evicted pods gone after start (s)": round(t_gone - t_calm - 3, 1),
            "failed after the replacements": after["failed"],
        },
    )
    assert after["requests"] > 0 and after["failed"] == 0, after
    # Cut off, the node's pods kept running, as on a node the network lost: its kubelet
    # probes them locally, so no probe failed and no container was killed.
    killed = [
        e
        for e in lab3.status()["events"]
        if e["obj"].removeprefix("pod/") in on_victim and "probe failed" in e["message"]
    ]
    assert killed == [], killed
    _acknowledged_writes_are_rows(lab3, loads)


def _acknowledged_writes_are_rows(lab3: LabProcess, loads: Load) -> None:
    created = loads.created()
    assert created, "the load saw no acknowledged write"
    rows = rows_by_the_test(lab3)
    assert [o.message_id for o in created if rows.get(o.message_id) != o.text] == []


def test_node_stop_names_the_nodes_it_knows(lab3: LabProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lab", "node", "stop", "lab-node-9"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "lab-node-1, lab-node-2, lab-node-3" in done.stdout + done.stderr


# --- last: a crashed three-node lab, cleaned by `lab down` ------------------------------


def test_a_killed_lab_of_three_nodes_leaves_nothing_after_lab_down(lab3: LabProcess) -> None:
    status = lab3.status()
    pids = [c["pid"] for p in status["pods"] for c in p["containers"] if c["pid"]]
    netns = {n["netns"] for n in status["nodes"]}
    assert netns <= set(lab_netns()) and "cip-switch" in lab_netns()
    assert lab3.proc is not None
    lab3.proc.kill()  # no clean-up of its own: the nodes' namespaces, links, routes stay
    lab3.proc.wait(timeout=30)
    assert set(lab_netns()) >= netns, "the kill itself removed nothing"
    down = subprocess.run(
        [sys.executable, "-m", "lab", "down"], capture_output=True, text=True, check=False
    )
    assert down.returncode == 0, down.stdout + down.stderr
    left = leftovers()
    assert not any(left.values()), left
    assert not any(pid_alive(pid) for pid in pids)
