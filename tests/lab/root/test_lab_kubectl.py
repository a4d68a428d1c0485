"""The machine's real kubectl drives the running lab, as a user drives a cluster.

One lab per proxy mode (the `lab` fixture, tests/lab/conftest.py), already deployed by
`lab up` with `kubectl apply -k k8s/`. Every command here is one a user types against a
cluster; what it prints is checked against what the lab itself knows (its status over
the control socket: pods, their IPs, kube-proxy's rules). Read-only tests first; then
scale, delete and evict, each putting the app back as it found it.

kubectl talks only to the lab's API server on 127.0.0.1; the request loops go only to the
lab's port-forward on 127.0.0.1 or to the lab's own pod addresses.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import re
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lab.naming import NODE_NAME
from tests.k8s.k8s_manifests import K8S_DIR
from tests.lab.labctl import NAMESPACE, LabProcess, Load, report, summary
from tests.lab.test_api_kubectl import Kubectl

pytestmark = pytest.mark.lab

BACKEND = "app.kubernetes.io/name=backend"
FRONTEND = "app.kubernetes.io/name=frontend"


class AppKubectl(Kubectl):
    """The real kubectl on the lab's kubeconfig, in the app's namespace."""

    def __call__(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run("-n", NAMESPACE, *args, check=check, stdin=stdin)

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def kubectl(lab: LabProcess, tmp_path_factory: pytest.TempPathFactory) -> AppKubectl:
    home = tmp_path_factory.mktemp("kubectl-home")
    return AppKubectl(home, lab.kubeconfig)


def _app_pods(lab: LabProcess, status: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    status = status or lab.status()
    return [p for p in status["pods"] if p["namespace"] == NAMESPACE and not p["deleting"]]


def _rows(table: str) -> dict[str, list[str]]:
    """kubectl's table as {first column: the row's columns} (header left out)."""
    return {line.split()[0]: line.split() for line in table.splitlines()[1:] if line.strip()}


def _names(kubectl: AppKubectl, selector: str) -> set[str]:
    pods = kubectl.json("get", "pods", "-l", selector)["items"]
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


@contextlib.contextmanager
def _replicas_restored(kubectl: AppKubectl, workload: str, replicas: int) -> Iterator[None]:
    """The manifests' replica count back afterwards, also when the test fails half-way."""
    try:
        yield
    finally:
        kubectl("scale", workload, f"--replicas={replicas}", check=False)
        kubectl("rollout", "status", workload, "--timeout=120s", check=False)


# --- apply ----------------------------------------------------------------------------


def test_apply_again_changes_nothing(lab: LabProcess, kubectl: AppKubectl) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, check=True
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    lines = kubectl.run("apply", "-k", str(K8S_DIR)).stdout.splitlines()
    assert len(lines) == len(objects), lines
    assert {line.split()[0].split("/")[1] for line in lines} == {
        o["metadata"]["name"] for o in objects
    }
    for line in lines:
        # A PodDisruptionBudget's selector is patchStrategy "replace": kubectl's patch is
        # never empty, so a cluster prints "configured" for it on every apply too.
        expected = "configured" if line.startswith("poddisruptionbudget.policy/") else "unchanged"
        assert line.endswith(f" {expected}"), line


# --- get and describe -----------------------------------------------------------------


def test_get_pods_wide_shows_each_pods_ip_and_node(lab: LabProcess, kubectl: AppKubectl) -> None:
    out = kubectl("get", "pods", "-o", "wide").stdout
    header = out.splitlines()[0].split()
    assert header == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    rows = _rows(out)
    pods = _app_pods(lab)
    assert set(rows) == {p["name"] for p in pods}
    for pod in pods:
        row = rows[pod["name"]]
        # RESTARTS may be "1 (2m ago)": the last four columns are counted from the end.
        assert row[1:3] == ["1/1", "Running"], out
        assert row[-4:] == [pod["ip"], NODE_NAME, "<none>", "<none>"], out


def test_get_services_and_endpointslices_in_every_namespace(
    lab: LabProcess, kubectl: AppKubectl
) -> None:
    services = kubectl.run("get", "svc", "-A").stdout
    assert re.search(
        r"^default +kubernetes +ClusterIP +10\.96\.0\.1 +<none> +443/TCP ", services, re.M
    ), services
    assert re.search(
        r"^kube-system +kube-dns +ClusterIP +10\.96\.0\.10 +<none> +53/UDP,53/TCP,9153/TCP ",
        services,
        re.M,
    ), services
    backend_ip = kubectl("get", "svc", "backend", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert re.search(
        rf"^{NAMESPACE} +backend +ClusterIP +{re.escape(backend_ip)} +<none> +8000/TCP,9000/TCP ",
        services,
        re.M,
    ), services
    assert re.search(rf"^{NAMESPACE} +mysql-headless +ClusterIP +None ", services, re.M)

    slices = kubectl.run("get", "endpointslices", "-A").stdout
    assert slices.splitlines()[0].split() == [
        "NAMESPACE",
        "NAME",
        "ADDRESSTYPE",
        "PORTS",
        "ENDPOINTS",
        "AGE",
    ]
    rows = [line.split() for line in slices.splitlines()[1:]]
    mysql0 = next(p for p in _app_pods(lab) if p["name"] == "mysql-0")
    # The headless Service has its slice too: it is what the DNS answers mysql-0 from.
    [headless] = [r for r in rows if r[1].startswith("mysql-headless-")]
    assert headless[0] == NAMESPACE and headless[2:5] == ["IPv4", "3306", mysql0["ip"]], slices
    [dns] = [r for r in rows if r[1].startswith("kube-dns-")]
    assert dns[0] == "kube-system" and dns[3] == "53,53,9153", slices
    assert any(r[:2] == ["default", "kubernetes"] for r in rows), slices
    labelled = kubectl.json("get", "endpointslices", "-l", "kubernetes.io/service-name=backend")
    [backend_slice] = labelled["items"]
    assert {e["addresses"][0] for e in backend_slice["endpoints"]} == {
        p["ip"] for p in lab.pods("backend")
    }


def test_get_workloads_budgets_policies_nodes_namespaces_events(
    lab: LabProcess, kubectl: AppKubectl
) -> None:
    deployments = _rows(kubectl("get", "deployments").stdout)
    assert {name: row[1] for name, row in deployments.items()} == {
        "backend": "3/3",
        "frontend": "2/2",
        "redis": "1/1",
    }
    replicasets = kubectl("get", "replicasets").stdout
    assert replicasets.splitlines()[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    current = {
        row[0].rsplit("-", 1)[0]: row[1:4]
        for row in _rows(replicasets).values()
        if row[1] != "0"  # a revision scaled to 0 by an earlier rollout
    }
    assert current == {"backend": ["3"] * 3, "frontend": ["2"] * 3, "redis": ["1"] * 3}
    statefulsets = _rows(kubectl("get", "statefulsets").stdout)
    assert statefulsets["mysql"][1] == "1/1"

    # The disruption controller follows the pods' status writes: wait for it, not a race.
    _allowed(kubectl, "backend", 1)
    _allowed(kubectl, "frontend", 1)
    budgets = kubectl("get", "poddisruptionbudgets").stdout
    assert budgets.splitlines()[0].split() == [
        "NAME",
        "MIN",
        "AVAILABLE",
        "MAX",
        "UNAVAILABLE",
        "ALLOWED",
        "DISRUPTIONS",
        "AGE",
    ]
    rows = _rows(budgets)
    assert rows["backend"][1:4] == ["N/A", "1", "1"], budgets  # 3 healthy, 1 may go
    assert rows["frontend"][1:4] == ["1", "N/A", "1"], budgets  # 2 healthy, 1 must stay

    policies = _rows(kubectl("get", "networkpolicies").stdout)
    assert set(policies) == {
        "allow-dns-egress",
        "allow-metrics-scrape",
        "backend",
        "default-deny-all",
        "frontend",
        "mysql",
        "redis",
    }
    assert policies["backend"][1] == "app.kubernetes.io/name=backend"
    assert policies["default-deny-all"][1] == "<none>"

    nodes = _rows(kubectl.run("get", "nodes").stdout)
    assert list(nodes) == [NODE_NAME] and nodes[NODE_NAME][1] == "Ready"
    namespaces = _rows(kubectl.run("get", "namespaces").stdout)
    assert {"default", "kube-system", NAMESPACE} <= set(namespaces)
    assert namespaces[NAMESPACE][1] == "Active"

    events = kubectl("get", "events").stdout
    assert events.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    reasons = {line.split()[2] for line in events.splitlines()[1:]}
    assert {"Scheduled", "SuccessfulCreate", "ScalingReplicaSet"} <= reasons, events
    assert re.search(
        rf"Scheduled +pod/mysql-0 +Successfully assigned {NAMESPACE}/mysql-0 to {NODE_NAME}",
        events,
    ), events


def test_describe_service_and_pod(lab: LabProcess, kubectl: AppKubectl) -> None:
    status = lab.status()
    backend_ip = lab.service_ip("backend", status)
    pod_ips = sorted(p["ip"] for p in lab.pods("backend", status))
    described = kubectl("describe", "svc", "backend").stdout
    assert re.search(rf"^IP: +{re.escape(backend_ip)}$", described, re.M), described
    assert re.search(r"^Type: +ClusterIP$", described, re.M), described
    endpoints = re.findall(r"^Endpoints: +(\S+)$", described, re.M)
    assert sorted(endpoints[0].split(",")) == sorted(f"{ip}:8000" for ip in pod_ips), described
    assert sorted(endpoints[1].split(",")) == sorted(f"{ip}:9000" for ip in pod_ips), described

    pod = lab.pods("backend", status)[0]
    described = kubectl("describe", "pod", pod["name"]).stdout
    assert re.search(rf"^Node: +{NODE_NAME}/", described, re.M), described
    assert re.search(rf"^IP: +{re.escape(pod['ip'])}$", described, re.M), described
    assert re.search(r"^Status: +Running$", described, re.M), described
    assert re.search(r"^  Ready +True *$", described, re.M), described
    assert re.search(r"^Controlled By: +ReplicaSet/backend-", described, re.M), described
    # The scheduler's event and the kubelet's, as a cluster's describe lists them.
    assert re.search(r"^  Normal +Scheduled +\S+ +default-scheduler +", described, re.M), described
    assert re.search(r"^  Normal +Started +\S+ +kubelet\b.* backend", described, re.M), described
    # The kubelet's times are the wall clock's: the pod was created, then its migration ran
    # and finished, then the container started, all before now.
    assert "Jan 0001" not in described and "Jan 1970" not in described, described
    obj = kubectl.json("get", "pod", pod["name"])
    [migrate] = obj["status"]["initContainerStatuses"]
    [backend] = obj["status"]["containerStatuses"]
    stamps = [
        obj["metadata"]["creationTimestamp"],
        migrate["state"]["terminated"]["startedAt"],
        migrate["state"]["terminated"]["finishedAt"],
        backend["state"]["running"]["startedAt"],
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    ]
    assert stamps == sorted(stamps), stamps


def test_get_endpoints_warns_it_is_deprecated(lab: LabProcess, kubectl: AppKubectl) -> None:
    done = kubectl("get", "endpoints")
    assert "Warning: v1 Endpoints is deprecated in v1.33+" in done.stderr, done.stderr
    assert set(_rows(done.stdout)) == {"backend", "frontend", "mysql", "mysql-headless", "redis"}


# --- logs and exec --------------------------------------------------------------------


def test_logs_tail_and_previous(lab: LabProcess, kubectl: AppKubectl) -> None:
    pod = lab.pods("backend")[0]
    lines = kubectl("logs", pod["name"], "--tail=5").stdout.splitlines()
    assert 1 <= len(lines) <= 5, lines
    for line in lines:
        record = json.loads(line)  # the backend logs JSON, one object a line
        assert record["service"] == "backend" and record["pod"] == pod["name"], record

    mysql0 = next(p for p in _app_pods(lab) if p["name"] == "mysql-0")
    assert mysql0["restarts"] == 0
    previous = kubectl("logs", "mysql-0", "--previous", check=False)
    assert previous.returncode != 0
    assert 'previous terminated container "mysql" in pod "mysql-0" not found' in previous.stderr, (
        previous.stderr
    )


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_logs_follow_shows_a_new_request(lab: LabProcess, kubectl: AppKubectl) -> None:
    pod = lab.pods("frontend")[0]
    follow = kubectl.popen("-n", NAMESPACE, "logs", "-f", pod["name"], "--tail=0")
    seen: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(follow.stdout, seen), daemon=True).start()
    sent: set[str] = set()
    record: dict[str, Any] = {}
    try:
        # A request a second, each with its own id, until one shows in the followed log:
        # --tail=0 prints nothing of what came before kubectl was following.
        deadline = time.monotonic() + 30
        while record.get("request_id") not in sent:
            assert time.monotonic() < deadline, f"no request of {sorted(sent)} was followed"
            request_id = uuid.uuid4().hex
            page = httpx.get(
                f"http://{pod['ip']}:8080/", headers={"X-Request-ID": request_id}, timeout=10
            )
            assert page.status_code == 200
            sent.add(request_id)
            with contextlib.suppress(queue.Empty):
                line = seen.get(timeout=1)
                while record.get("request_id") not in sent:
                    with contextlib.suppress(ValueError):
                        record = json.loads(line)
                    line = seen.get(timeout=0.2)
        assert (record["logger"], record["path"], record["status"]) == ("access", "/", 200)
        assert record["pod"] == pod["name"]
        assert follow.poll() is None, "kubectl logs -f is still following"
    finally:
        follow.terminate()
        follow.wait(timeout=10)


def test_exec_resolves_backend_to_its_cluster_ip(kubectl: AppKubectl) -> None:
    cluster_ip = kubectl("get", "svc", "backend", "-o", "jsonpath={.spec.clusterIP}").stdout
    out = kubectl("exec", "deploy/frontend", "--", "getent", "hosts", "backend").stdout
    assert out.split()[:2] == [cluster_ip, "backend.clusterip-demo.svc.cluster.local"], out


def test_exec_with_stdin_gives_the_commands_exit_code(kubectl: AppKubectl) -> None:
    done = kubectl(
        "exec",
        "-i",
        "deploy/frontend",
        "--",
        "sh",
        "-c",
        'read line; echo "got $line from $(hostname)"; exit 7',
        stdin="hello\n",
        check=False,
    )
    assert done.returncode == 7, done.stderr
    assert re.fullmatch(r"got hello from frontend-\S+\n", done.stdout), done.stdout
    assert "command terminated with exit code 7" in done.stderr
    # mysql-0 runs Debian's mariadbd as a process in its pod (no image): the same name.
    uts = kubectl("exec", "mysql-0", "--", "cat", "/proc/sys/kernel/hostname").stdout
    assert uts == "mysql-0\n", uts


# --- what is refused ------------------------------------------------------------------

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: frontend
spec:
  rules:
    - http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {name: frontend, port: {number: 80}}
"""


def test_port_forward_serves_the_page_and_the_spread(kubectl: AppKubectl) -> None:
    """The user's own command: `kubectl port-forward svc/frontend LOCAL:80`. kubectl picks
    one frontend pod and tunnels to its port 8080 through the API server (SPDY in a
    WebSocket), past the ClusterIP: every answer names that one pod."""
    from tests.support.ports import free_port

    local = free_port()
    forward = kubectl.popen("-n", NAMESPACE, "port-forward", "svc/frontend", f"{local}:80")
    try:
        base = f"http://127.0.0.1:{local}"
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"{base}/", timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "kubectl port-forward never answered"
                time.sleep(0.2)
        assert page.status_code == 200
        assert "backend" in page.text and 'method="post"' in page.text.lower()
        spread = httpx.get(f"{base}/spread", timeout=30)
        assert spread.status_code == 200
        # The page names the frontend pod that served it: one pod, through the tunnel.
        served = {page.headers.get("x-served-by")}
        served.add(httpx.get(f"{base}/", timeout=10).headers.get("x-served-by"))
        frontends = {
            p["metadata"]["name"] for p in kubectl.json("get", "pods", "-l", FRONTEND)["items"]
        }
        assert len(served) == 1 and served <= frontends, (served, frontends)
    finally:
        forward.terminate()
        out = forward.communicate(timeout=10)[0]
    assert f"Forwarding from 127.0.0.1:{local} -> 8080" in out, out


def test_an_unsupported_kind_is_refused_naming_it(kubectl: AppKubectl) -> None:
    done = kubectl("apply", "-f", "-", stdin=INGRESS, check=False)
    assert done.returncode == 1
    assert 'ingresses.networking.k8s.io "frontend" is forbidden' in done.stderr, done.stderr
    assert "cannot run an Ingress: the lab has no ingress controller" in done.stderr
    absent = kubectl("get", "ingress", "frontend", check=False)
    assert absent.returncode == 1 and "NotFound" in absent.stderr, absent.stderr


def test_a_request_without_the_token_is_refused(lab: LabProcess, tmp_path: Path) -> None:
    config = yaml.safe_load(lab.kubeconfig.read_text())
    [cluster] = [c["cluster"] for c in config["clusters"] if c["name"] == "clusterip-lab"]
    [user] = [u["user"] for u in config["users"] if u["name"] == "clusterip-lab"]
    assert cluster["server"].startswith("https://127.0.0.1:")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    url = f"{cluster['server']}/api/v1/namespaces/{NAMESPACE}/pods"
    trusted = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(verify=trusted, trust_env=False, timeout=10) as client:
        anonymous = client.get(url)
        wrong = client.get(url, headers={"Authorization": "Bearer not-the-token"})
        right = client.get(url, headers={"Authorization": f"Bearer {user['token']}"})
    for refused in (anonymous, wrong):
        assert refused.status_code == 401, refused.text
        assert refused.json()["reason"] == "Unauthorized"
    assert right.status_code == 200 and right.json()["kind"] == "PodList"


# --- scale, delete, evict -------------------------------------------------------------


def _endpoints(lab: LabProcess, count: int) -> Any:
    return lambda s: (
        len(lab.in_iptables("backend", s) or []) == count and (len(lab.pods("backend", s)) == count)
    )


def test_scale_and_rollout_status(lab: LabProcess, kubectl: AppKubectl) -> None:
    started = time.monotonic()
    with _replicas_restored(kubectl, "deployment/backend", 3):
        kubectl("scale", "deployment/backend", "--replicas=4")
        rollout = kubectl("rollout", "status", "deployment/backend", "--timeout=120s").stdout
        assert 'deployment "backend" successfully rolled out' in rollout, rollout
        rows = _rows(kubectl("get", "pods", "-l", BACKEND).stdout)
        assert len(rows) == 4 and all(r[1:3] == ["1/1", "Running"] for r in rows.values()), rows
        lab.wait_for(_endpoints(lab, 4), 30, "kube-proxy sends the backend to 4 pods")
        scaled_up = time.monotonic() - started
        kubectl("scale", "deployment/backend", "--replicas=3")
        kubectl("rollout", "status", "deployment/backend", "--timeout=120s")
        lab.wait_for(_endpoints(lab, 3), 60, "kube-proxy sends the backend to 3 pods")
    assert len(_names(kubectl, BACKEND)) == 3
    report(
        "kubectl scale deployment/backend 3 → 4 → 3",
        {
            "seconds until 4 in kube-proxy's rules": round(scaled_up, 1),
            "seconds for the whole round": round(time.monotonic() - started, 1),
        },
    )


def test_delete_pod_and_wait_under_load(lab: LabProcess, kubectl: AppKubectl) -> None:
    before = _names(kubectl, BACKEND)
    victim = sorted(before)[0]
    with Load(lab.base_url, max_seconds=150) as load:
        time.sleep(1)
        started = time.monotonic()
        kubectl("delete", "pod", victim, "--wait=false")
        kubectl("wait", "--for=delete", f"pod/{victim}", "--timeout=60s")
        gone = time.monotonic()
        kubectl("wait", "--for=condition=Ready", "pod", "-l", BACKEND, "--timeout=120s")
        lab.wait_for(_endpoints(lab, 3), 60, "the replacement is in kube-proxy's rules")
        time.sleep(1)
        during = summary(load.between(started))
    after = _names(kubectl, BACKEND)
    report(
        "kubectl delete pod (a backend pod, graceful) under load",
        {
            "seconds until the pod was gone": round(gone - started, 1),
            "requests / failed": f"{during['requests']} / {during['failed']}",
            "statuses": during["statuses"],
        },
    )
    assert victim not in after and len(after) == 3 and len(after - before) == 1, (before, after)
    assert during["requests"] > 0 and during["failed"] == 0, during
    # The kubelet told why the container stopped, as `kubectl describe pod` would show it.
    events = kubectl.json("get", "events", "--field-selector", f"involvedObject.name={victim}")
    reasons = [e["reason"] for e in events["items"]]
    assert "Killing" in reasons and "Scheduled" in reasons, reasons


EVICTION = {"apiVersion": "policy/v1", "kind": "Eviction"}


def _evict(kubectl: AppKubectl, tmp_path: Path, pod: str) -> subprocess.CompletedProcess[str]:
    body = tmp_path / f"eviction-{pod}.json"
    body.write_text(json.dumps({**EVICTION, "metadata": {"name": pod, "namespace": NAMESPACE}}))
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction"
    return kubectl.run("create", "--raw", path, "-f", str(body), check=False)


def _allowed(kubectl: AppKubectl, budget: str, value: int) -> None:
    kubectl(
        "wait",
        f"--for=jsonpath={{.status.disruptionsAllowed}}={value}",
        f"pdb/{budget}",
        "--timeout=60s",
    )


def test_eviction_honours_the_disruption_budget(
    lab: LabProcess, kubectl: AppKubectl, tmp_path: Path
) -> None:
    """The frontend's budget keeps 1 pod: with 1 replica no eviction is allowed; with 2,
    one is, and the evicted pod is replaced."""
    with _replicas_restored(kubectl, "deployment/frontend", 2):
        kubectl("scale", "deployment/frontend", "--replicas=1")
        kubectl("rollout", "status", "deployment/frontend", "--timeout=120s")
        lab.wait_for(lambda s: len(lab.pods("frontend", s)) == 1, 60, "one frontend pod")
        _allowed(kubectl, "frontend", 0)
        [last] = _names(kubectl, FRONTEND)
        refused = _evict(kubectl, tmp_path, last)
        assert refused.returncode != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget" in (
            refused.stderr
        ), refused.stderr
        assert "TooManyRequests" in refused.stderr or "429" in refused.stderr, refused.stderr
        still = kubectl.json("get", "pod", last)
        assert not still["metadata"].get("deletionTimestamp"), still["metadata"]

        kubectl("scale", "deployment/frontend", "--replicas=2")
        kubectl("rollout", "status", "deployment/frontend", "--timeout=120s")
        _allowed(kubectl, "frontend", 1)
        before = _names(kubectl, FRONTEND)
        allowed = _evict(kubectl, tmp_path, last)
        assert allowed.returncode == 0, allowed.stderr
        kubectl("wait", "--for=delete", f"pod/{last}", "--timeout=60s")
        kubectl("rollout", "status", "deployment/frontend", "--timeout=120s")
        kubectl("wait", "--for=condition=Ready", "pod", "-l", FRONTEND, "--timeout=120s")
    after = _names(kubectl, FRONTEND)
    assert last not in after and len(after) == 2 and len(after - before) == 1, (before, after)
    _allowed(kubectl, "frontend", 1)
