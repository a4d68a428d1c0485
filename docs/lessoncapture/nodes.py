"""The lesson's step 8, captured in the three-node lab (iptables mode).

run.py calls `three_nodes` in its iptables-mode lab after the other steps: the nodes
and where the pods run, the same rules on every node, a connection from a frontend
pod answered on other nodes with the pod's own address, internalTrafficPolicy Local
dropping on a node without a backend pod, PreferSameNode keeping connections on the
node, and a node that fails and comes back. Each capture
puts the app back as `k8s/` has it before the next; each checks that what it shows
is what the lesson says it shows, and stops the run when it is not (no hand edits).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

from docs.lessoncapture.run import (
    CHANGED,
    KUBECTL,
    REPO,
    Run,
    settled,
    status,
    wait_until,
)

NODES = ("lab-node-1", "lab-node-2", "lab-node-3")
RULES = "sudo .venv/bin/python -m lab rules --node"
WHICH_POD = "docs/exercises/which-pod.py"
APP_PODS = f"{KUBECTL} get pods -o wide -l 'app.kubernetes.io/name in (frontend,backend)'"
HINTS = (
    f"{KUBECTL} get endpointslices -l kubernetes.io/service-name=backend -o jsonpath="
    '\'{range .items[*].endpoints[*]}{.addresses[0]}{"\\t"}{.nodeName}{"\\t"}{.hints}'
    '{"\\n"}{end}\''
)
# The backend pods' access log: which pod answered each request, and the client it saw.
ACCESS_LOG = (
    f"{KUBECTL} logs -l app.kubernetes.io/name=backend -c backend --tail=-1"
    " | grep -F '\"{tag}-' | jq -r '[.pod, .request_id, .client] | @tsv'"
)


def three_nodes(run: Run) -> None:
    run.mode = "iptables"
    if not _placed(2, 3) or _backends_on(status()) != set(NODES):
        # The exercises' rollouts can leave two pods on a node (the scheduler spreads a
        # ReplicaSet's new pods, it never moves old ones): a restart spreads them again.
        run.shell(f"{KUBECTL} rollout restart deployment/backend deployment/frontend")
    _app_back()
    run.capture(
        "nodes",
        "kubectl get nodes -o wide -L topology.kubernetes.io/zone",
        f"{KUBECTL} get pods -o wide",
    )
    svc = same_rules(run)
    across_nodes(run)
    internal_traffic_local(run)
    prefer_same_node(run)
    node_fails(run, svc)


# --- what the lab holds --------------------------------------------------------------------------


def _app(now: dict[str, Any], app: str) -> list[dict[str, Any]]:
    return [
        p
        for p in now["pods"]
        if p["labels"].get("app.kubernetes.io/name") == app and not p["deleting"]
    ]


def _backends_on(now: dict[str, Any]) -> set[str]:
    return {p["node"] for p in _app(now, "backend")}


def _rules(node: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "lab", "rules", "--node", node],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _placed(frontends: int, backends: int) -> bool:
    """Everything settled, one frontend pod per node, this many backend pods, all ready."""
    now = status()
    front, back = _app(now, "frontend"), _app(now, "backend")
    return (
        settled()
        and all(n["synced"] for n in now["nodes"])
        and len(front) == frontends == len({p["node"] for p in front})
        and len(back) == backends
        and all(p["ready"] for p in [*front, *back])
    )


def _app_back() -> None:
    """The app as k8s/ has it: two frontend pods, three backend pods, one per node."""
    wait_until(lambda: _placed(2, 3) and _backends_on(status()) == set(NODES), "the app back")


def _fail(what: str, body: str) -> None:
    raise SystemExit(f"lesson-capture: {what}; the capture showed:\n{body}")


def _answers(body: str, tag: str) -> dict[str, list[str]]:
    """which-pod's lines in a capture: the asking pod's node → the node of each answer
    (`-`: no answer), in the order the commands ran."""
    found: dict[str, list[str]] = {}
    asking = ""
    for line in body.splitlines():
        if line.startswith("from "):
            asking = line.split()[-1]
            found[asking] = []
        elif line.startswith(f"{tag}-"):
            found[asking].append("-" if "no answer" in line else line.split()[-1])
    return found


def which_pod(pod: str, tag: str, count: int) -> str:
    return f"{KUBECTL} exec -i {pod} -- python - {tag} {count} < {WHICH_POD}"


def _frontend_on(node: str) -> str:
    return next(p["name"] for p in _app(status(), "frontend") if p["node"] == node)


# --- the captures --------------------------------------------------------------------------------


def same_rules(run: Run) -> str:
    """Every node's kube-proxy wrote the same rules: the backend's chain on two nodes, and a
    checksum of each node's whole listing. Returns the backend's chain."""
    wait_until(lambda: len({_rules(n) for n in NODES}) == 1, "the same rules on every node", 30)
    svc = re.search(r"backend:http cluster IP\".* -j (CIP-SVC-\w+)", _rules(NODES[0]))
    if svc is None:
        raise SystemExit("lesson-capture: node 1 has no chain for backend:http")
    grep = f"grep -- '-A {svc[1]} '"
    run.capture(
        "nodes-rules",
        f"{RULES} lab-node-1 | {grep}",
        f"{RULES} lab-node-3 | {grep}",
        *(f"{RULES} {node} | sha256sum" for node in NODES),
    )
    return svc[1]


def across_nodes(run: Run) -> None:
    frontend = _app(status(), "frontend")[0]
    body = run.capture(
        "nodes-cross",
        which_pod(frontend["name"], "cross", 6),
        ACCESS_LOG.format(tag="cross"),
    )
    answers = _answers(body, "cross").get(frontend["node"], [])
    if len(answers) != 6 or set(answers) <= {frontend["node"]}:
        _fail(f"no answer from a node other than {frontend['node']}", body)
    clients = [line.split("\t")[-1] for line in body.splitlines() if "\tcross-" in line]
    if clients != [frontend["ip"]] * 6:
        _fail(f"the backend saw other clients than {frontend['ip']}", body)


def _bare() -> str:
    """The node left without a backend pod."""
    return next(n for n in NODES if n not in _backends_on(status()))


def internal_traffic_local(run: Run) -> None:
    # The frontend pods start while every node has a backend pod (a frontend pod is
    # ready once the backend answered it); then one backend pod goes.
    body = run.capture(
        "nodes-local",
        f"kubectl apply -k docs/exercises/internal-traffic-local | {CHANGED}",
        f"{KUBECTL} scale deployment/frontend --replicas=3",
        lambda: wait_until(lambda: _placed(3, 3), "a frontend pod on every node"),
        f"{KUBECTL} scale deployment/backend --replicas=2",
        lambda: wait_until(lambda: _placed(3, 2), "two backend pods"),
        APP_PODS,
        lambda: which_pod(_frontend_on(_bare()), "local", 3),
        lambda: which_pod(_frontend_on(min(_backends_on(status()))), "local", 3),
        lambda: f"{RULES} {_bare()} | grep backend:http",
        lambda: f"{RULES} {min(_backends_on(status()))} | grep backend:http",
    )
    answers = _answers(body, "local")
    bare = _bare()
    if answers.get(bare) != ["-"] * 3:
        _fail(f"{bare}, with no backend pod, did not drop every connection", body)
    if any(node != bare and set(a) != {node} for node, a in answers.items()):
        _fail("a node with a backend pod sent a connection elsewhere", body)


def prefer_same_node(run: Run) -> None:
    body = run.capture(
        "nodes-prefer",
        f"kubectl apply -k docs/exercises/prefer-same-node | {CHANGED}",
        f"{KUBECTL} scale deployment/frontend --replicas=3",
        lambda: wait_until(lambda: _placed(3, 3), "a frontend and a backend pod on every node"),
        HINTS,
        f"{KUBECTL} scale deployment/backend --replicas=2",
        lambda: wait_until(lambda: _placed(3, 2), "two backend pods"),
        *(lambda node=node: which_pod(_frontend_on(node), "near", 4) for node in NODES),
        f"kubectl apply -k k8s/ | {CHANGED}",
        _app_back,
    )
    answers = _answers(body, "near")
    bare = _bare_in(body)
    for node, got in answers.items():
        if node == bare and ("-" in got or bare in got):
            _fail(f"{bare} did not fall back to other nodes' pods", body)
        if node != bare and set(got) != {node}:
            _fail(f"{node} sent a connection off the node", body)


def _bare_in(body: str) -> str:
    """The node with no backend pod in the capture's `get pods` after the scale-down:
    the node whose frontend's answers all came from elsewhere."""
    answers = _answers(body, "near")
    return next((n for n, got in answers.items() if n not in got), "")


def _node_ready(run: Run, node: str) -> str:
    done = subprocess.run(
        ["kubectl", "get", "node", node, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=run.env,
    )
    conditions = json.loads(done.stdout)["status"]["conditions"]
    return str(next(c["status"] for c in conditions if c["type"] == "Ready"))


def _victim() -> str:
    """A node the app can lose: not node 1 (the host's way in to the page), not
    mysql-0's (a StatefulSet's pod is not replaced while its node is only unreachable)."""
    mysql = _app(status(), "mysql")[0]["node"]
    return next(n for n in reversed(NODES[1:]) if n != mysql)


def _out_of_the_rules(pods: set[str]) -> bool:
    now = status()
    ready = {e["pod"] for ep in now["endpoints"] for e in ep["endpoints"] if e["ready"]}
    return not ready & pods and all(n["synced"] for n in now["nodes"] if not n["stopped"])


def _replaced(victim: str) -> bool:
    live = [p for p in status()["pods"] if p["node"] != victim and not p["deleting"]]
    ready = [p["labels"].get("app.kubernetes.io/name") for p in live if p["ready"]]
    return ready.count("backend") == 3 and ready.count("frontend") == 2


def node_fails(run: Run, svc: str) -> None:
    victim = _victim()
    on_victim = {p["name"] for p in status()["pods"] if p["node"] == victim}
    run.capture(
        "node-stop",
        f"sudo .venv/bin/python -m lab node stop {victim}",
        lambda: wait_until(lambda: _node_ready(run, victim) == "Unknown", "NotReady", 60),
        lambda: wait_until(lambda: _out_of_the_rules(on_victim), "its pods out of the rules"),
        "kubectl get nodes",
        f"kubectl get node {victim} -o jsonpath="
        "'{range .spec.taints[*]}{.key}:{.effect}{\"\\n\"}{end}'",
        f"{RULES} lab-node-1 | grep -- '-A {svc} '",
        lambda: wait_until(lambda: _replaced(victim), "replacements ready", 120),
        f"{KUBECTL} get pods -o wide",
    )
    run.capture(
        "node-start",
        f"sudo .venv/bin/python -m lab node start {victim}",
        lambda: wait_until(lambda: _node_ready(run, victim) == "True", "Ready again", 60),
        lambda: wait_until(
            lambda: settled() and not on_victim & {p["name"] for p in status()["pods"]},
            "the evicted pods gone",
            90,
        ),
        "kubectl get nodes",
        f"{KUBECTL} get pods -o wide",
    )
