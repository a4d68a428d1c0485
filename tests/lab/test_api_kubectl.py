"""The machine's real kubectl against the lab's API server, started in this process.

Root-free. kubectl is a dispatcher over 1.27-1.33 that picks by the server's /version
(v1.33.0 here). A temporary KUBECONFIG, cache and HOME: never the user's. Without
kubectl these skip, except under CI=true where that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.api import kubeconfig
from lab.api.cli import state_dir
from lab.api.resources import groups
from lab.api.server import InThread, Running
from lab.naming import NODE_NAME
from tests.conftest import missing
from tests.k8s.k8s_manifests import K8S_DIR, RENDERINGS, REPO, Rendering, render_rendering
from tests.support.ports import free_port

NS = "clusterip-demo"
KUBECTL = "/usr/bin/kubectl"


class Kubectl:
    def __init__(self, home: Path, config: Path) -> None:
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "KUBECONFIG": str(config),
            "KUBECACHEDIR": str(home / "cache"),
        }

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [KUBECTL, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert done.returncode == 0, (
                f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [KUBECTL, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def kubectl_for(server: Running, home: Path) -> Kubectl:
    """The machine's kubectl on a kubeconfig of its own (0600) for `server`."""
    config = home / "kubeconfig"
    config.write_text(kubeconfig.dump(server.kubeconfig()))
    config.chmod(0o600)
    return Kubectl(home, config)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not (Path(KUBECTL).exists() and shutil.which("kubectl")):
        missing(
            "kubectl is not installed at /usr/bin/kubectl: "
            "these tests drive the lab's API server with it"
        )
    thread = InThread(tmp_path_factory.mktemp("apiserver"))
    running = thread.start()
    yield running
    thread.stop()


@pytest.fixture(scope="module")
def kubectl(server: Running, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return kubectl_for(server, tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture(scope="module")
def applied(kubectl: Kubectl) -> list[str]:
    """The output of the first `kubectl apply -k k8s/`."""
    return kubectl.run("apply", "-k", str(K8S_DIR)).stdout.splitlines()


def _wait_for(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.1)


def test_the_server_speaks_as_kube_apiserver_133(kubectl: Kubectl) -> None:
    version = kubectl.run("version").stdout
    assert "Server Version: v1.33.0" in version
    assert "Client Version: v1.33" in version  # the dispatcher picked the matching client


def test_apply_creates_everything_then_changes_nothing(
    kubectl: Kubectl, applied: list[str]
) -> None:
    assert applied and all(line.endswith(" created") for line in applied), applied
    again = kubectl.run("apply", "-k", str(K8S_DIR)).stdout.splitlines()
    assert [line.rsplit(" ", 1)[0] for line in again] == [
        line.rsplit(" ", 1)[0] for line in applied
    ]
    for line in again:
        # A PodDisruptionBudget's selector is patchStrategy "replace": kubectl's patch is
        # never empty, so a cluster prints "configured" for it on every apply too.
        expected = "configured" if line.startswith("poddisruptionbudget.policy/") else "unchanged"
        assert line.endswith(f" {expected}"), line


def test_server_side_dry_run_and_diff_change_nothing(kubectl: Kubectl, applied: list[str]) -> None:
    before = kubectl.run(
        "get", "deploy/backend", "-n", NS, "-o", "jsonpath={.metadata.resourceVersion}"
    ).stdout
    dry = kubectl.run("scale", "deploy/backend", "--replicas=7", "-n", NS, "--dry-run=server")
    assert "(server dry run)" in dry.stdout
    assert (
        kubectl.run("get", "deploy/backend", "-n", NS, "-o", "jsonpath={.spec.replicas}").stdout
        != "7"
    )
    diff = kubectl.run("diff", "-k", str(K8S_DIR), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr  # nothing differs after apply
    after = kubectl.run(
        "get", "deploy/backend", "-n", NS, "-o", "jsonpath={.metadata.resourceVersion}"
    ).stdout
    assert after == before


def test_get_prints_kube_apiservers_columns_for_each_kind(
    kubectl: Kubectl, applied: list[str]
) -> None:
    headers = {
        "pods": "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
        "services": "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR",
        "endpointslices": "NAME ADDRESSTYPE PORTS ENDPOINTS AGE",
        "endpoints": "NAME ENDPOINTS AGE",
        "deployments": "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
        "replicasets": "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR",
        "statefulsets": "NAME READY AGE CONTAINERS IMAGES",
        "networkpolicies": "NAME POD-SELECTOR AGE",
        "poddisruptionbudgets": "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE",
        "configmaps": "NAME DATA AGE",
        "secrets": "NAME TYPE DATA AGE",
        "serviceaccounts": "NAME SECRETS AGE",
    }
    for kind, header in headers.items():
        out = kubectl.run("get", kind, "-n", NS, "-o", "wide").stdout
        assert " ".join(out.splitlines()[0].split()) == header, (kind, out)
        assert len(out.splitlines()) > 1, f"no {kind} in {NS}"
    nodes = kubectl.run("get", "nodes").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:3] == ["lab-node-1", "Ready", "control-plane"]
    namespaces = kubectl.run("get", "ns").stdout
    for name in ("default", "kube-system", "kube-public", NS):
        assert f"\n{name} " in namespaces
    events = kubectl.run("get", "events", "-n", NS)
    assert events.returncode == 0


def test_short_names_and_the_all_category(kubectl: Kubectl, applied: list[str]) -> None:
    out = kubectl.run("get", "all", "-n", NS).stdout
    for prefix in (
        "pod/backend-",
        "service/backend ",
        "deployment.apps/backend ",
        "replicaset.apps/backend-",
        "statefulset.apps/mysql ",
    ):
        assert prefix in out, prefix
    for short in ("svc", "deploy", "rs", "sts", "ep", "pdb", "netpol", "cm", "sa", "po"):
        kubectl.run("get", short, "-n", NS)


def test_services_across_namespaces_include_kubernetes_and_the_dns(
    kubectl: Kubectl, applied: list[str]
) -> None:
    rows = {
        tuple(line.split()[:2]): line.split()
        for line in kubectl.run("get", "svc", "-A").stdout.splitlines()[1:]
    }
    assert rows[("default", "kubernetes")][2:6] == ["ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    assert rows[("kube-system", "kube-dns")][2:6] == [
        "ClusterIP",
        "10.96.0.10",
        "<none>",
        "53/UDP,53/TCP,9153/TCP",
    ]
    assert rows[(NS, "mysql-headless")][3] == "None"


def test_the_headless_service_has_its_endpointslice(kubectl: Kubectl, applied: list[str]) -> None:
    out = kubectl.run(
        "get",
        "endpointslices",
        "-n",
        NS,
        "-l",
        "kubernetes.io/service-name=mysql-headless",
        "-o",
        "jsonpath={.items[*].metadata.labels}",
    ).stdout
    assert '"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io"' in out
    assert "kubernetes" in kubectl.run("get", "endpointslices", "-n", "default").stdout


def test_v1_endpoints_carry_the_deprecation_warning(kubectl: Kubectl, applied: list[str]) -> None:
    done = kubectl.run("get", "endpoints", "-n", NS)
    assert (
        "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
        in done.stderr
    )


def test_describe_service(kubectl: Kubectl, applied: list[str]) -> None:
    out = kubectl.run("describe", "svc", "backend", "-n", NS).stdout
    ip = kubectl.run("get", "svc", "backend", "-n", NS, "-o", "jsonpath={.spec.clusterIP}").stdout
    assert "Selector:                 app.kubernetes.io/name=backend" in out
    assert f"IP:                       {ip}" in out
    assert "Port:                     http  8000/TCP" in out


def test_scale_makes_the_replicaset_and_pods_follow(kubectl: Kubectl, applied: list[str]) -> None:
    assert (
        "deployment.apps/backend scaled"
        in kubectl.run("scale", "deploy/backend", "--replicas=5", "-n", NS).stdout
    )

    def five_pods() -> bool:
        out = kubectl.run(
            "get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=backend", "-o", "name"
        ).stdout
        return len(out.split()) == 5

    _wait_for(five_pods)
    scale = kubectl.run(
        "get", "deploy/backend", "-n", NS, "-o", "jsonpath={.spec.replicas}/{.status.replicas}"
    ).stdout
    assert scale == "5/5"


def test_get_watch_sees_a_new_pod(kubectl: Kubectl, applied: list[str]) -> None:
    selector = "app.kubernetes.io/name=redis"
    existing = kubectl.run("get", "pods", "-n", NS, "-l", selector, "-o", "name").stdout.split()
    watcher = kubectl.popen("get", "pods", "-n", NS, "-l", selector, "-w", "--output-watch-events")
    stopper = threading.Timer(60, watcher.kill)  # a watch that never sees it fails, not hangs
    stopper.start()
    try:
        assert watcher.stdout is not None
        seen = [watcher.stdout.readline() for _ in range(len(existing) + 1)]  # header, pods
        assert seen[0].split()[:3] == ["EVENT", "NAME", "READY"], seen
        kubectl.run("scale", "deploy/redis", f"--replicas={len(existing) + 1}", "-n", NS)
        old = {name.removeprefix("pod/") for name in existing}
        for line in watcher.stdout:
            words = line.split()
            if words[:1] == ["ADDED"] and words[1].startswith("redis-") and words[1] not in old:
                break
        else:
            raise AssertionError("the watch ended without showing the new pod")
    finally:
        stopper.cancel()
        watcher.kill()
        watcher.communicate(timeout=10)


def test_wait_and_rollout_status(kubectl: Kubectl, applied: list[str]) -> None:
    done = kubectl.run(
        "wait",
        "--for=jsonpath={.status.observedGeneration}=1",
        "deploy/frontend",
        "-n",
        NS,
        "--timeout=20s",
    )
    assert "condition met" in done.stdout
    # Pods stay Pending without a kubelet: rollout status watches and reports that.
    status = kubectl.run(
        "rollout", "status", "deploy/frontend", "-n", NS, "--timeout=2s", check=False
    )
    assert (
        'Waiting for deployment "frontend" rollout to finish: 0 of 2 updated replicas are available'
        in status.stdout
    )


def test_rollout_history_and_undo(kubectl: Kubectl, applied: list[str]) -> None:
    kubectl.run("set", "env", "deploy/frontend", "LAB_TEST=1", "-n", NS)
    _wait_for(lambda: "2 " in kubectl.run("rollout", "history", "deploy/frontend", "-n", NS).stdout)
    assert "rolled back" in kubectl.run("rollout", "undo", "deploy/frontend", "-n", NS).stdout
    history = kubectl.run("rollout", "history", "deploy/frontend", "-n", NS).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]
    sets = kubectl.run(
        "get", "rs", "-n", NS, "-l", "app.kubernetes.io/name=frontend", "-o", "name"
    ).stdout.split()
    assert len(sets) == 2  # the undo went back to the first ReplicaSet, not a third


def test_delete_cascades_from_deployment_to_pods(kubectl: Kubectl, applied: list[str]) -> None:
    kubectl.run("delete", "deploy", "redis", "-n", NS)
    assert (
        kubectl.run(
            "get", "rs,pods", "-n", NS, "-l", "app.kubernetes.io/name=redis", "-o", "name"
        ).stdout
        == ""
    )
    kubectl.run("apply", "-k", str(K8S_DIR))  # put it back for the tests after


def test_the_statefulset_has_its_pod(kubectl: Kubectl, applied: list[str]) -> None:
    _wait_for(lambda: "mysql-0" in kubectl.run("get", "pods", "-n", NS, "-o", "name").stdout)
    labels = kubectl.run(
        "get", "pod", "mysql-0", "-n", NS, "-o", "jsonpath={.metadata.labels}"
    ).stdout
    assert '"statefulset.kubernetes.io/pod-name":"mysql-0"' in labels


def test_api_resources_lists_the_short_names(kubectl: Kubectl) -> None:
    rows = {
        line.split()[0]: line.split()
        for line in kubectl.run("api-resources").stdout.splitlines()[1:]
    }
    for name, short in (
        ("services", "svc"),
        ("deployments", "deploy"),
        ("endpoints", "ep"),
        ("poddisruptionbudgets", "pdb"),
        ("networkpolicies", "netpol"),
        ("horizontalpodautoscalers", "hpa"),
    ):
        assert rows[name][1] == short, rows[name]


def test_rollout_restart_makes_a_new_revision(kubectl: Kubectl, applied: list[str]) -> None:
    before = kubectl.run(
        "get", "rs", "-n", NS, "-l", "app.kubernetes.io/name=backend", "-o", "name"
    ).stdout.split()
    assert "restarted" in kubectl.run("rollout", "restart", "deploy/backend", "-n", NS).stdout

    def one_more() -> bool:
        now = kubectl.run(
            "get", "rs", "-n", NS, "-l", "app.kubernetes.io/name=backend", "-o", "name"
        )
        return len(now.stdout.split()) == len(before) + 1

    _wait_for(one_more)


def test_the_scheduler_binds_every_pod_to_the_labs_node(
    kubectl: Kubectl, applied: list[str]
) -> None:
    def bound() -> bool:
        pods = json.loads(kubectl.run("get", "pods", "-n", NS, "-o", "json").stdout)["items"]
        return bool(pods) and all(p["spec"].get("nodeName") == NODE_NAME for p in pods)

    _wait_for(bound)
    wide = kubectl.run("get", "pods", "-n", NS, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[6] == "NODE"
    assert {line.split()[6] for line in wide[1:]} == {NODE_NAME}
    pod = json.loads(kubectl.run("get", "pods", "-n", NS, "-o", "json").stdout)["items"][0]
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert [c["status"] for c in scheduled] == ["True"]
    name = pod["metadata"]["name"]
    events = kubectl.run(
        "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={name}"
    ).stdout
    assert f"Successfully assigned {NS}/{name} to {NODE_NAME}" in events, events


def test_logs_and_exec_say_the_kubelet_does_not_serve_them_yet(
    kubectl: Kubectl, applied: list[str]
) -> None:
    # The pods are bound to the node, but no kubelet on this store runs them yet.
    for command in (["logs", "deploy/backend"], ["exec", "deploy/backend", "--", "true"]):
        done = kubectl.run("-n", NS, *command, check=False)
        assert done.returncode != 0
        assert "does not serve pods/" in done.stderr, done.stderr


def test_a_kind_the_lab_cannot_run_is_refused_with_the_reason(kubectl: Kubectl) -> None:
    daemonset = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: agent}]}
"""
    done = kubectl.run("apply", "-f", "-", stdin=daemonset, check=False)
    assert done.returncode != 0
    assert (
        'Error from server (Forbidden): error when creating "STDIN": '
        'daemonsets.apps "agent" is forbidden: ' in done.stderr
    )
    assert "the ClusterIP lab cannot run a DaemonSet" in done.stderr


def test_an_unknown_field_is_refused_by_strict_validation(kubectl: Kubectl) -> None:
    typo = (
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: typo, namespace: default}\ndatta: {a: b}\n"
    )
    done = kubectl.run("apply", "-f", "-", stdin=typo, check=False)
    assert done.returncode != 0 and 'unknown field "datta"' in done.stderr


def test_a_request_without_the_token_is_refused(kubectl: Kubectl, server: Running) -> None:
    done = kubectl.run("--token=wrong", "get", "pods", check=False)
    assert done.returncode != 0
    assert "You must be logged in to the server" in done.stderr


@pytest.mark.parametrize("rendering", RENDERINGS[1:], ids=lambda r: r.name)
def test_every_rendering_applies(
    kubectl: Kubectl, applied: list[str], rendering: Rendering, tmp_path: Path
) -> None:
    docs = render_rendering(rendering, tmp_path)
    served = set(groups()) | {""}
    custom = {d["kind"] for d in docs if d["apiVersion"].rpartition("/")[0] not in served}
    done = kubectl.run("apply", "-f", "-", stdin=yaml.safe_dump_all(docs), check=not custom)
    written = [line for line in done.stdout.splitlines() if not line.endswith(" unchanged")]
    # A custom resource (a ServiceMonitor, a Gateway) needs its CRD: the lab serves none,
    # and kubectl says so as on a cluster without it; everything else is applied.
    for kind in custom:
        assert f'no matches for kind "{kind}"' in done.stderr
        assert "ensure CRDs are installed first" in done.stderr
    assert len(done.stdout.splitlines()) == sum(1 for d in docs if d["kind"] not in custom)
    for kind in ("HorizontalPodAutoscaler", "CronJob", "PersistentVolumeClaim"):
        if any(
            line.startswith(f"{kind.lower()}.") or line.startswith(f"{kind.lower()}/")
            for line in written
        ):
            assert f"{kind} is stored but not acted on in the lab" in done.stderr, kind
    if any(d["kind"] == "HorizontalPodAutoscaler" for d in docs):
        assert "backend" in kubectl.run("get", "hpa", "-n", NS).stdout


def test_the_cli_serves_and_prints_a_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path(KUBECTL).exists():
        missing("kubectl is not installed at /usr/bin/kubectl")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    env = dict(os.environ)
    port = str(free_port())
    server = subprocess.Popen(
        [sys.executable, "-m", "lab", "apiserver", "--port", port],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        state = state_dir() / "apiserver.json"
        _wait_for(state.exists, timeout=30)
        printed = subprocess.run(
            [sys.executable, "-m", "lab", "kubeconfig"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert f"server: https://127.0.0.1:{port}" in printed
        config = tmp_path / "kubeconfig"
        config.write_text(printed)
        kubectl = Kubectl(tmp_path, config)
        assert "kube-system" in kubectl.run("get", "ns").stdout
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        server.communicate(timeout=30)
    assert not state.exists(), "the state file outlived the server"


def test_delete_k_removes_every_object_then_the_namespace(
    kubectl: Kubectl, applied: list[str]
) -> None:
    done = kubectl.run("delete", "-k", str(K8S_DIR), "--timeout=60s")
    lines = done.stdout.splitlines()
    assert lines and all(line.endswith(" deleted") for line in lines), done.stdout + done.stderr
    assert NS not in kubectl.run("get", "ns").stdout
    assert kubectl.run("get", "all", "-n", NS, "-o", "name").stdout == ""
