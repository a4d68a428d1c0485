"""The app in the ClusterIP lab: real processes in network namespaces behind kube-proxy's rules.

One lab for the whole module (started in the `lab` fixture, ~20 s), in the
order a person would explore it: what runs, how names resolve, the route
panel, the spread, the rules, the safety fences; then faults under steady
traffic (a backend pod killed, Redis stopped, MySQL stopped; Redis slowed by 300 ms,
Redis, MySQL and one backend pod partitioned); then every
write the traffic saw acknowledged is checked in MySQL; last, the lab is
stopped as Ctrl-C stops it and nothing of it may be left.

All traffic goes to 127.0.0.1 (the lab's port-forward) or to the lab's own
addresses, in loops bounded in time.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.config import BackendSettings
from frontend.config import FrontendSettings
from lab.engine import detect
from lab.manifests import load
from lab.naming import LAB_ROUTE_PROTO, NODE_GATEWAY, NODE_NAME, POD_CIDR, SERVICE_CIDR
from lab.network import IP_FORWARD, leftovers
from lab.state import lock_is_held
from tests.lab.labctl import (
    PROXY_MODES,
    REPO,
    Load,
    Outcome,
    overlay,
    pid_alive,
    report,
    rows_by_the_test,
    summary,
)
from tests.lab.test_api_kubectl import Kubectl

pytestmark = pytest.mark.lab

# What the load saw acknowledged with 201, across the fault tests.
CREATED: list[Outcome] = []

LEFTOVER_NS = "cip-leftover-test"
LEFTOVER_CHAIN = "CIP-LEFTOVER-TEST"


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=60, check=check, cwd=REPO
    )


@pytest.fixture(scope="module")
def before(lab_host: None, proxy_mode: str) -> dict[str, Any]:
    """The host as it was before the lab, with a crashed lab's leftovers planted on it."""
    # Another lab on this machine (another test session?) must finish first:
    # what is planted here would otherwise land on a live lab.
    deadline = time.monotonic() + 120
    while lock_is_held() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not lock_is_held(), "another lab is running on this machine"
    forward = IP_FORWARD.read_text().strip()
    etc_netns_existed = Path("/etc/netns").exists()
    _run("ip", "netns", "add", LEFTOVER_NS)
    _run(
        "ip",
        "link",
        "add",
        "cipleftover",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        LEFTOVER_NS,
    )
    _run("ip", "link", "set", "cipleftover", "up")
    _run(
        "ip", "route", "add", "10.244.200.0/24", "dev", "cipleftover", "proto", str(LAB_ROUTE_PROTO)
    )
    # A process left running in the namespace; orphaned so init reaps it.
    _run("ip", "netns", "exec", LEFTOVER_NS, "sh", "-c", "sleep 300 >/dev/null 2>&1 &")
    _run("iptables", "-t", "nat", "-N", LEFTOVER_CHAIN)
    _run("iptables", "-t", "nat", "-A", "OUTPUT", "-d", "10.96.0.0/12", "-j", LEFTOVER_CHAIN)
    etc = Path("/etc/netns") / LEFTOVER_NS
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    workdir = Path(tempfile.mkdtemp(prefix="cip-lab-"))
    (workdir / "pods").mkdir()
    # The crashed lab's state file: whether it created /etc/netns, and its work dir.
    state = Path("/run/cip-lab")
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "state.json").write_text(
        json.dumps(
            {"pid": 2**22 + 1, "workdir": str(workdir), "etc_netns_created": not etc_netns_existed}
        )
    )
    pids = _run("ip", "netns", "pids", LEFTOVER_NS).stdout.split()
    return {
        "ip_forward": forward,
        "planted_pids": [int(p) for p in pids],
        "planted_workdir": workdir,
        "etc_netns_existed": etc_netns_existed,
    }


@pytest.fixture(scope="module")
def app(before: dict[str, Any], lab: Any) -> Iterator[Any]:
    CREATED.clear()  # one list of writes per lab (per proxy mode)
    yield lab


def _pod_netns(pod: dict[str, Any]) -> str:
    return str(pod["netns"])


# --- what runs ------------------------------------------------------------------------


def test_start_up_removed_a_previous_labs_leftovers(before: dict[str, Any], app: Any) -> None:
    assert LEFTOVER_NS not in _run("ip", "netns", "list").stdout
    assert "cipleftover" not in _run("ip", "link", "show").stdout
    assert "10.244.200.0/24" not in _run("ip", "route", "show").stdout
    assert LEFTOVER_CHAIN not in _run("iptables", "-t", "nat", "-S").stdout
    assert not (Path("/etc/netns") / LEFTOVER_NS).exists()
    assert not any(pid_alive(pid) for pid in before["planted_pids"])
    assert not before["planted_workdir"].exists()
    assert "leftovers of a previous lab" in app.log_tail(200_000)
    report("lab start-up", {"seconds until every pod was ready": round(app.startup_seconds, 1)})


def test_pods_are_what_the_manifests_say(app: Any) -> None:
    manifests = load()
    status = app.status()
    for key, workload in manifests.workloads.items():
        pods = [p for p in status["pods"] if p["workload"] == key]
        assert len(pods) == workload.replicas, key
        assert all(p["ready"] for p in pods), pods
    for pod in status["pods"]:
        assert ipaddress.ip_address(pod["ip"]) in POD_CIDR
    # What every cluster has beside the app: the API server's Service and the DNS's.
    system = {
        (s["namespace"], s["name"], s["cluster_ip"])
        for s in status["services"]
        if s["namespace"] != manifests.namespace
    }
    assert system == {
        ("default", "kubernetes", "10.96.0.1"),
        ("kube-system", "kube-dns", "10.96.0.10"),
    }
    for svc in status["services"]:
        if svc["namespace"] != manifests.namespace:
            continue
        if manifests.services[svc["name"]].headless:
            # The StatefulSet's governing Service: no virtual IP, no NAT rules.
            assert svc["cluster_ip"] == "None"
            continue
        assert ipaddress.ip_address(svc["cluster_ip"]) in SERVICE_CIDR
    secret = next(iter(manifests.secrets.values()))

    backend = app.pods("backend", status)[0]
    pid = backend["containers"][0]["pid"]
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
        if "=" in item
    )
    # Downward API, the ConfigMap (envFrom) and the Secret (a read-only volume), as the
    # kubelet does: the password is a file, never a variable.
    assert environ["POD_NAME"] == backend["name"]
    assert environ["POD_IP"] == backend["ip"]
    assert environ["NODE_NAME"] == backend["node"]
    assert environ["DATABASE_URL"] == "mysql+pymysql://app@mysql:3306/app"
    assert "DATABASE_PASSWORD" not in environ
    # The container's own filesystem, as root sees it from the host.
    root = Path(f"/proc/{pid}/root")
    password_file = root / environ["DATABASE_PASSWORD_FILE"].lstrip("/")
    assert password_file.read_text() == secret["MYSQL_PASSWORD"]
    assert password_file.stat().st_mode & 0o777 == 0o440
    assert (password_file.stat().st_uid, password_file.stat().st_gid) == (0, 10001)
    assert environ["ENVIRONMENT"] == "development"
    assert environ["HOST"] == "0.0.0.0"
    # The process lives in its pod's network namespace, as the manifests' user.
    assert (
        os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{_pod_netns(backend)}").st_ino
    )
    assert os.stat(f"/proc/{pid}").st_uid == 10001
    if detect(REPO) is not None:
        # From the image, not this checkout: its venv and code, and the securityContext.
        assert (root / "opt/venv/pyvenv.cfg").exists()
        assert (root / "app/backend/__init__.py").exists()
        assert not (root / str(REPO).lstrip("/")).exists()
        # Started from a clone in a 0700 directory (a Debian home), which uid 10001 cannot
        # read: the pods do not need it.
        assert app.checkout.parent.stat().st_mode & 0o777 == 0o700
        proc_status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(r"^CapEff:\s+0+$", proc_status, re.M), proc_status
        assert re.search(r"^NoNewPrivs:\s+1$", proc_status, re.M)
        assert re.search(r"^Seccomp:\s+2$", proc_status, re.M)
        with pytest.raises(OSError, match="Read-only file system"):
            (root / "app" / "probe").write_text("x")
    mysql = app.pods("mysql", status)[0]
    assert os.stat(f"/proc/{mysql['containers'][0]['pid']}").st_uid == 999


def _dns(pod: dict[str, Any], name: str, qtype: str = "A") -> dict[str, Any]:
    """Ask the cluster DNS (10.96.0.10, through kube-proxy's rules) from inside a pod."""
    out = _run(
        "ip",
        "netns",
        "exec",
        _pod_netns(pod),
        sys.executable,
        "-m",
        "tests.lab.dnsquery",
        "10.96.0.10",
        name,
        qtype,
    )
    return dict(json.loads(out.stdout))


def _kubectl(app: Any, tmp_path: Path) -> Kubectl:
    home = tmp_path / "kubectl-home"
    home.mkdir(exist_ok=True)
    return Kubectl(home, app.kubeconfig)


def test_kubectl_reaches_the_labs_api_server(app: Any, tmp_path: Path) -> None:
    """`lab up` wrote the clusterip-lab context; the real kubectl finds the lab's node."""
    assert stat.S_IMODE(app.kubeconfig.stat().st_mode) == 0o600
    config = app.kubeconfig.read_text()
    assert "current-context: clusterip-lab" in config
    server = re.search(r"server: (https://[^\s]+)", config)
    assert server and server.group(1).startswith("https://127.0.0.1:"), config
    kubectl = _kubectl(app, tmp_path)
    nodes = json.loads(kubectl.run("get", "nodes", "-o", "json").stdout)
    [node] = nodes["items"]
    assert node["metadata"]["name"] == NODE_NAME
    assert {"type": "InternalIP", "address": str(NODE_GATEWAY)} in node["status"]["addresses"]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    services = kubectl.run("get", "svc", "-A").stdout
    dns = next(line.split() for line in services.splitlines() if " kube-dns " in line)
    assert dns[:4] == ["kube-system", "kube-dns", "ClusterIP", app.service_ip("kube-dns")]
    assert dns[5] == "53/UDP,53/TCP,9153/TCP"
    assert re.search(r"^default +kubernetes +ClusterIP +10\.96\.0\.1 ", services, re.M), services
    # As `kind get kubeconfig`: a standalone kubeconfig for the same server.
    standalone = _run(sys.executable, "-m", "lab", "kubeconfig").stdout
    assert f"server: {server.group(1)}" in standalone, standalone


def test_service_names_resolve_through_the_cluster_dns(app: Any) -> None:
    status = app.status()
    frontend = app.pods("frontend", status)[0]
    mysql0 = next(p for p in status["pods"] if p["name"] == "mysql-0")
    dns_pod = next(p for p in status["pods"] if p["namespace"] == "kube-system")
    assert dns_pod["labels"]["k8s-app"] == "kube-dns" and dns_pod["ready"]
    # The kubelet's resolv.conf, and a hosts file without any Service in it.
    resolv = _run("ip", "netns", "exec", _pod_netns(frontend), "cat", "/etc/resolv.conf").stdout
    assert resolv == (
        "search clusterip-demo.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n"
    )
    hosts = _run("ip", "netns", "exec", _pod_netns(frontend), "cat", "/etc/hosts").stdout
    assert "10.96." not in hosts
    for service in ("backend", "redis", "mysql"):
        ip = app.service_ip(service, status)
        for name in (service, f"{service}.clusterip-demo.svc.cluster.local"):
            out = _run("ip", "netns", "exec", _pod_netns(frontend), "getent", "hosts", name)
            assert out.stdout.split()[0] == ip, (name, out.stdout)
    # The StatefulSet's pod by its name under the headless governing Service.
    out = _run(
        "ip", "netns", "exec", _pod_netns(frontend), "getent", "hosts", "mysql-0.mysql-headless"
    )
    assert out.stdout.split()[0] == mysql0["ip"]
    # SRV for a named port, asked of 10.96.0.10 itself.
    srv = _dns(frontend, "_http._tcp.backend.clusterip-demo.svc.cluster.local", "SRV")
    assert srv == {
        "rcode": 0,
        "answers": ["0 100 8000 backend.clusterip-demo.svc.cluster.local"],
    }
    # Anything else is NXDOMAIN, and nothing is forwarded off the machine.
    assert _dns(frontend, "nope.clusterip-demo.svc.cluster.local")["rcode"] == 3
    assert _dns(frontend, "example.com")["rcode"] == 3
    # And as the frontend's Python resolves it.
    code = "import socket; print(socket.gethostbyname('backend'))"
    out = _run("ip", "netns", "exec", _pod_netns(frontend), sys.executable, "-c", code)
    assert out.stdout.strip() == app.service_ip("backend", status)
    # The host itself knows no such name.
    assert (
        _run("getent", "hosts", "backend.clusterip-demo.svc.cluster.local", check=False).stdout
        == ""
    )


def test_route_panel_shows_the_cluster_ip_and_a_lab_pod(app: Any) -> None:
    status = app.status()
    vip = app.service_ip("backend", status)
    backend_pods = {p["name"] for p in app.pods("backend", status)}
    frontend_pods = {p["name"] for p in app.pods("frontend", status)}
    route = httpx.get(f"{app.base_url}/api/route", timeout=10).json()
    hops = {hop["key"]: hop for hop in route["hops"]}
    assert route["ok"], route
    assert route["frontend"]["pod_name"] in frontend_pods
    assert ipaddress.ip_address(route["frontend"]["pod_ip"]) in POD_CIDR
    assert vip in hops["name"]["detail"]
    assert hops["address"]["value"] == f"{vip}:8000"
    assert hops["pod"]["value"] in backend_pods
    # The frontend tells it runs on "Kubernetes" from the kubelet-style search
    # path the lab writes into each pod's resolv.conf.
    assert route["runs_on"]["place"] == "kubernetes", route["runs_on"]
    assert hops["address"]["title"] == "Address (ClusterIP)"
    page = httpx.get(f"{app.base_url}/", timeout=10).text
    assert vip in page
    assert any(name in page for name in backend_pods)


def test_spread_over_fresh_connections_and_one_kept_alive(app: Any) -> None:
    backend_pods = {p["name"] for p in app.pods("backend")}
    spread = httpx.get(f"{app.base_url}/api/spread", params={"n": 60}, timeout=60).json()
    fresh = spread["fresh_connections"]
    kept = spread["one_kept_alive_connection"]
    report(
        "spread, 60 requests",
        {"fresh connections, per pod": fresh["pods"], "one kept-alive connection": kept["pods"]},
    )
    assert fresh["failed"] == 0 and kept["failed"] == 0, spread
    assert set(fresh["pods"]) == backend_pods
    assert len(kept["pods"]) == 1 and set(kept["pods"]) <= backend_pods


def test_traffic_flows_under_dockers_default_firewall(app: Any) -> None:
    """A desktop with Docker: FORWARD policy DROP and DOCKER-USER first in FORWARD.

    The lab's pod-to-pod traffic is forwarded by the host, so it must still flow."""
    policy = _run("iptables", "-S", "FORWARD").stdout.splitlines()[0].split()[-1]
    had_chain = _run("iptables", "-nL", "DOCKER-USER", check=False).returncode == 0
    if not had_chain:
        _run("iptables", "-N", "DOCKER-USER")
        _run("iptables", "-A", "DOCKER-USER", "-j", "RETURN")
    _run("iptables", "-I", "FORWARD", "1", "-j", "DOCKER-USER")
    _run("iptables", "-P", "FORWARD", "DROP")
    try:
        spread = httpx.get(
            f"{app.base_url}/api/spread", params={"n": 12}, timeout=30, trust_env=False
        ).json()
        assert spread["fresh_connections"]["failed"] == 0, spread["fresh_connections"]
        assert spread["fresh_connections"]["answered"] == 12
    finally:
        _run("iptables", "-P", "FORWARD", policy)
        _run("iptables", "-D", "FORWARD", "-j", "DOCKER-USER")
        if not had_chain:
            _run("iptables", "-F", "DOCKER-USER")
            _run("iptables", "-X", "DOCKER-USER")


def test_kube_proxy_rules_for_the_backend(app: Any) -> None:
    status = app.status()
    vip = app.service_ip("backend", status)
    targets = sorted(f"{p['ip']}:8000" for p in app.pods("backend", status))
    assert status["proxy_mode"] == app.proxy_mode
    if app.proxy_mode == "nftables":
        # The verdict map from ClusterIP . protocol . port to the Service's chain, then
        # one random pick among the endpoint chains, each a DNAT.
        services = _run("nft", "list", "map", "ip", "cip-kube-proxy", "service-ips").stdout
        jump = re.search(rf"{re.escape(vip)} \. tcp \. 8000 : goto ([^\s,}}]+)", services)
        assert jump, services
        chain = _run("nft", "list", "chain", "ip", "cip-kube-proxy", jump.group(1)).stdout
        assert "numgen random mod 3 vmap" in chain, chain
        dnat = []
        for endpoint in re.findall(r"goto (endpoint-[^\s,}]+)", chain):
            rules = _run("nft", "list", "chain", "ip", "cip-kube-proxy", endpoint).stdout
            dnat += re.findall(r"dnat to (\S+)", rules)
        assert sorted(dnat) == targets
        return
    services = _run("iptables", "-t", "nat", "-S", "CIP-SERVICES").stdout
    jump = re.search(rf"-d {re.escape(vip)}/32 .*--dport 8000 -j (CIP-SVC-\w+)", services)
    assert jump, services
    chain = _run("iptables", "-t", "nat", "-S", jump.group(1)).stdout
    probabilities = re.findall(r"--probability ([0-9.]+)", chain)
    assert [round(float(p), 3) for p in probabilities] == [0.333, 0.5], chain
    seps = re.findall(r"-j (CIP-SEP-\w+)", chain)
    dnat = []
    for sep in seps:
        rules = _run("iptables", "-t", "nat", "-S", sep).stdout
        dnat += re.findall(r"--to-destination (\S+)", rules)
    assert sorted(dnat) == targets


def test_safety_fences_while_running(before: dict[str, Any], app: Any) -> None:
    status = app.status()
    # Forwarding is on for the lab's interfaces only; the global switch is untouched.
    assert IP_FORWARD.read_text().strip() == before["ip_forward"]
    # Only the lab's own interfaces hold addresses in its ranges.
    for link in json.loads(_run("ip", "-json", "addr", "show").stdout):
        for addr in link.get("addr_info", []):
            ip = ipaddress.ip_address(addr["local"])
            if ip in POD_CIDR or ip in SERVICE_CIDR:
                assert link["ifname"].startswith("cip"), link["ifname"]
    # Unknown lab addresses are unreachable on the host, never routed out.
    for probe in ("10.244.77.77", "10.100.0.1"):
        out = _run("ip", "route", "get", probe, check=False)
        # EHOSTUNREACH: the `unreachable` route answered, nothing was sent.
        assert out.returncode != 0 and "no route to host" in out.stderr.lower(), out
    routes = _run("ip", "route", "show").stdout
    assert f"unreachable {POD_CIDR}" in routes and f"unreachable {SERVICE_CIDR}" in routes
    # A pod has no route out of the lab's ranges (a route lookup: nothing is sent).
    pod = app.pods("frontend", status)[0]
    pod_routes = _run("ip", "-n", _pod_netns(pod), "route", "show").stdout
    assert "default" not in pod_routes
    out = _run("ip", "-n", _pod_netns(pod), "route", "get", "192.0.2.1", check=False)
    assert out.returncode != 0 and "network is unreachable" in out.stderr.lower(), out
    if app.proxy_mode == "nftables":
        forward = _run("nft", "list", "chain", "ip", "cip-kube-proxy", "lab-forward").stdout
        assert 'oifname != "cip*"' in forward and "ip saddr 10.244.0.0/16" in forward, forward
    else:
        forward = _run("iptables", "-S", "CIP-FORWARD").stdout
        assert "-i cip+ ! -o cip+" in forward and "-s 10.244.0.0/16 ! -o cip+" in forward
    # The CNI accepts pod-to-pod traffic (after its NetworkPolicies) whatever kube-proxy's
    # mode; in iptables mode only after kube-proxy's fences in FORWARD have had their say.
    hooks = [
        line.split()[-1]
        for line in _run("iptables", "-S", "FORWARD").stdout.splitlines()
        if "-j CIP-" in line and "CIP-FAULT-" not in line
    ]
    kube_proxy = ["CIP-FORWARD"] if app.proxy_mode == "iptables" else []
    assert hooks == [*kube_proxy, "CIP-CNI-FORWARD"], hooks
    # A pod cannot open a connection to the host, even on the node's lab address.
    with socket.socket() as listener:
        listener.bind((str(NODE_GATEWAY), 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('{NODE_GATEWAY}', {port}), timeout=3)\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print(type(e).__name__)\n"
        )
        out = _run("ip", "netns", "exec", _pod_netns(pod), sys.executable, "-c", code)
    assert out.stdout.strip() == "ConnectionRefusedError", out.stdout


# --- NetworkPolicies ---------------------------------------------------------------------

POLICIES = (
    "allow-dns-egress",
    "allow-metrics-scrape",
    "backend",
    "default-deny-all",
    "frontend",
    "mysql",
    "redis",
)


def _connects(pod: dict[str, Any], targets: list[tuple[str, int]], limit: float = 1.0) -> list[str]:
    """From inside a pod: for each (ip, port), `connected`, `timeout` (dropped) or the error."""
    code = (
        "import concurrent.futures as cf, json, socket\n"
        f"targets = {targets!r}\n"
        "def probe(t):\n"
        "    try:\n"
        f"        socket.create_connection(tuple(t), timeout={limit}).close()\n"
        "        return 'connected'\n"
        "    except TimeoutError:\n"
        "        return 'timeout'\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
        "with cf.ThreadPoolExecutor(len(targets)) as pool:\n"
        "    print(json.dumps(list(pool.map(probe, targets))))\n"
    )
    out = _run("ip", "netns", "exec", _pod_netns(pod), sys.executable, "-c", code)
    return list(json.loads(out.stdout))


def _lab_apply(app: Any, directory: Path | None = None) -> None:
    """`kubectl apply -k DIR` (k8s/ when None), as the user types it."""
    app.kubectl("apply", "-k", str(directory or REPO / "k8s"))


def _apply(app: Any, deleted: list[str]) -> None:
    """The manifests applied, then the NetworkPolicies in `deleted` deleted with kubectl."""
    _lab_apply(app)
    if deleted:
        app.kubectl("delete", "networkpolicy", *deleted)
    policies = set(POLICIES) - set(deleted)
    app.wait_for(
        lambda s: set(s["network_policies"]) == policies and s["cni"]["synced"],
        10,
        "the policies are in iptables",
    )


def test_network_policies_are_enforced(app: Any, tmp_path: Path) -> None:
    status = app.status()
    frontend, backend = app.pods("frontend", status)[0], app.pods("backend", status)[0]
    redis, mysql = app.pods("redis", status)[0], app.pods("mysql", status)[0]
    to_mysql = [(app.service_ip("mysql", status), 3306), (mysql["ip"], 3306)]
    to_redis = [(app.service_ip("redis", status), 6379), (redis["ip"], 6379)]
    assert set(status["network_policies"]) == set(POLICIES)

    # Neither by ClusterIP nor by pod IP can the frontend reach the data tiers.
    assert _connects(frontend, to_mysql + to_redis) == ["timeout"] * 4
    assert _connects(backend, to_mysql + to_redis) == ["connected"] * 4
    # Nothing but the backend reaches MySQL.
    assert _connects(redis, to_mysql) == ["timeout"] * 2

    # Without allow-dns-egress the frontend's DNS queries to 10.96.0.10 are dropped.
    assert _dns(frontend, "backend.clusterip-demo.svc.cluster.local")["rcode"] == 0
    _apply(app, ["allow-dns-egress"])
    assert _dns(frontend, "backend.clusterip-demo.svc.cluster.local") == {"error": "timeout"}
    _apply(app, [])
    assert _dns(frontend, "backend.clusterip-demo.svc.cluster.local")["rcode"] == 0

    # Two fences stand between the frontend and MySQL: without the MySQL-side
    # policies the frontend's own egress policy still stops it.
    _apply(app, ["mysql", "default-deny-all"])
    assert _connects(frontend, to_mysql) == ["timeout"] * 2
    assert _connects(backend, to_mysql) == ["connected"] * 2
    # Without any policy, every path is open: a missing policy would show here.
    _apply(app, list(POLICIES))
    assert _connects(frontend, to_mysql) == ["connected"] * 2
    assert _connects(redis, to_mysql) == ["connected"] * 2
    _hairpin(app, backend)
    # And the manifests as they are close it again.
    _apply(app, [])
    assert _connects(frontend, to_mysql) == ["timeout"] * 2
    report(
        "NetworkPolicies",
        {
            "frontend → mysql/redis (ClusterIP and pod IP)": "dropped",
            "backend → mysql/redis": "connected",
            "redis → mysql": "dropped",
            "without allow-dns-egress, frontend → 10.96.0.10:53": "dropped",
            "without the mysql and default-deny policies, frontend → mysql": "still dropped",
            "without any policy, frontend → mysql": "connected",
        },
    )


def test_metrics_only_on_the_metrics_port(app: Any) -> None:
    """The page's and the API's ports serve no /metrics; the `metrics` ports do, and only
    the scrape policy admits anyone to them (no Prometheus runs here: nobody)."""
    status = app.status()
    frontend, backend = app.pods("frontend", status)[0], app.pods("backend", status)[0]
    for pod, port, metrics_port, series in (
        (frontend, 8080, 9080, "backend_calls_total"),
        (backend, 8000, 9000, "cache_requests_total"),
    ):
        # From the node, which the policies let in (as kubelet probes and port-forward).
        assert httpx.get(f"http://{pod['ip']}:{port}/metrics", timeout=5).status_code == 404
        scrape = httpx.get(f"http://{pod['ip']}:{metrics_port}/metrics", timeout=5)
        assert scrape.status_code == 200 and series in scrape.text
    # The frontend may call the backend's API, not read its metrics.
    assert _connects(frontend, [(backend["ip"], 8000), (backend["ip"], 9000)]) == [
        "connected",
        "timeout",
    ]


def _hairpin(app: Any, pod: dict[str, Any]) -> None:
    """A pod reaches itself through its own Service: the node masquerades the hairpin."""
    vip = app.service_ip("backend")
    code = (
        "import http.client, collections, json\n"
        "seen = collections.Counter()\n"
        "for _ in range(30):\n"
        f"    c = http.client.HTTPConnection('{vip}', 8000, timeout=5)\n"
        "    c.request('GET', '/healthz')\n"
        "    r = c.getresponse(); r.read()\n"
        "    seen[r.getheader('x-served-by')] += 1\n"
        "    c.close()\n"
        "print(json.dumps(dict(seen)))\n"
    )
    out = _run("ip", "netns", "exec", _pod_netns(pod), sys.executable, "-c", code)
    seen = json.loads(out.stdout)
    assert sum(seen.values()) == 30
    assert seen.get(pod["name"], 0) > 0, seen


# --- faults under steady traffic --------------------------------------------------------


def _seen(load: Load, after: float, check: Any) -> bool:
    return any(check(o) for o in load.between(after))


def _wait_seen(load: Load, after: float, check: Any, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [o for o in load.between(after) if check(o)]
        if found:
            return found[0].at
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s; {summary(load.between(after))}")


@contextlib.contextmanager
def _restore(app: Any, workload: str, replicas: int) -> Iterator[None]:
    """Put the replicas back if the test fails half-way, so later tests see a whole app."""
    try:
        yield
    except BaseException:
        app.kubectl("scale", workload, f"--replicas={replicas}")
        raise


def _backend_cache(pod: dict[str, Any]) -> str | None:
    """The cache state one backend pod reports, asked directly at its pod IP."""
    try:
        return httpx.get(f"http://{pod['ip']}:8000/api/info", timeout=2).json().get("cache")
    except (httpx.HTTPError, ValueError):
        return None


def test_kill_a_backend_pod_process(app: Any) -> None:
    """`kill -9` one backend pod's process: it leaves the Service, is restarted, comes back."""
    status = app.status()
    victim = app.pods("backend", status)[0]
    pid, ip, name = victim["containers"][0]["pid"], victim["ip"], victim["name"]
    endpoint = f"{ip}:8000"
    with Load(app.base_url, max_seconds=90) as load:
        time.sleep(2)
        t_kill = time.monotonic()
        os.kill(pid, signal.SIGKILL)  # what the lab prints: sudo kill -9 <pid>
        t_left = app.wait_for(
            lambda s: (eps := app.in_iptables("backend", s)) is not None and endpoint not in eps,
            10,
            "the killed pod leaves the Service",
        )
        t_back = app.wait_for(
            lambda s: endpoint in (app.in_iptables("backend", s) or []),
            60,
            "the restarted pod is back in the Service",
        )
        time.sleep(2)
        t_end = time.monotonic()
    CREATED.extend(load.created())
    during = summary(load.between(t_kill, t_end))
    after = summary(load.between(t_left, t_end))
    pod = next(p for p in app.status()["pods"] if p["name"] == name)
    report(
        "fault: kill -9 one backend pod's process (load: 3 readers + 1 writer)",
        {
            "requests from kill to end": during["requests"],
            "failed (no answer or 5xx)": during["failed"],
            "statuses": during["statuses"],
            "errors": during["errors"],
            "pod out of the Service after (s)": round(t_left - t_kill, 3),
            "pod back in the Service after (s)": round(t_back - t_kill, 2),
        },
    )
    assert pod["restarts"] == 1 and pod["ip"] == ip, pod  # same pod, container restarted
    assert after["failed"] == 0, after
    # Requests in flight on the killed pod, and retries that raced the rule
    # update, are the only ones that can fail: the frontend retries once on a
    # new connection, and the rules drop the pod within milliseconds.
    assert during["failed"] <= 2, during


def test_stop_redis(app: Any) -> None:
    """Redis scaled to 0: pages still served, marked degraded; cached again when it is back."""
    before = {p["name"]: p["restarts"] for p in app.status()["pods"] if "redis" not in p["name"]}
    with _restore(app, "deployment/redis", 1), Load(app.base_url, max_seconds=120) as load:
        _wait_seen(load, load.started_at, lambda o: o.cache == "hit", 15, "a cache hit")
        t_stop = time.monotonic()
        app.kubectl("scale", "deployment/redis", "--replicas=0")
        t_gone = app.wait_for(
            lambda s: not app.pods("redis", s) and app.in_iptables("redis", s) == [],
            30,
            "redis gone",
        )
        time.sleep(3)
        route = httpx.get(f"{app.base_url}/api/route", timeout=10).json()
        t_start = time.monotonic()
        app.kubectl("scale", "deployment/redis", "--replicas=1")
        t_ready = app.wait_for(
            lambda s: len(app.in_iptables("redis", s) or []) == 1, 60, "redis back"
        )
        t_hit = _wait_seen(load, t_ready, lambda o: o.cache == "hit", 30, "cached again")
        # Each backend pod notices on its own (and flushes the page cache once,
        # in case a write happened while Redis was away): wait for all of them.
        t_all = app.wait_for(
            lambda s: all(_backend_cache(p) == "up" for p in app.pods("backend", s)),
            30,
            "every backend pod uses Redis again",
        )
        time.sleep(1)
        t_end = time.monotonic()
    CREATED.extend(load.created())
    outage = load.between(t_gone, t_start)
    reads = [o for o in outage if o.kind == "read"]
    whole = summary(load.between(t_stop, t_end))
    report(
        "fault: Redis scaled to 0 and back to 1",
        {
            "requests from stop to end": whole["requests"],
            "failed (no answer or 5xx)": whole["failed"],
            "reads while Redis was gone": len(reads),
            "statuses": whole["statuses"],
            "Redis gone after (s)": round(t_gone - t_stop, 2),
            "Redis ready after scale-up (s)": round(t_ready - t_start, 2),
            "first cache hit after Redis was ready (s)": round(t_hit - t_ready, 2),
            "every backend pod on Redis again after it was ready (s)": round(t_all - t_ready, 2),
        },
    )
    assert reads and all(o.status == 200 for o in reads), summary(reads)
    assert all(o.cache != "hit" for o in reads)
    assert any(o.cache_state == "down" for o in reads), summary(reads)
    data_hop = next(h for h in route["hops"] if h["key"] == "data")
    assert "Redis is down" in data_hop["detail"], route
    assert whole["failed"] == 0, (whole, app.warnings())
    after = {p["name"]: p["restarts"] for p in app.status()["pods"] if "redis" not in p["name"]}
    assert after == before, "no other pod was restarted or replaced"


def test_stop_mysql(app: Any) -> None:
    """MySQL scaled to 0: writes 503, cached reads keep working; all recovers when it is back."""
    with _restore(app, "statefulset/mysql", 1), Load(app.base_url, max_seconds=150) as load:
        t_first = _wait_seen(load, load.started_at, lambda o: o.status == 201, 15, "a write")
        load.writes_enabled = False
        time.sleep(0.5)
        _wait_seen(load, time.monotonic(), lambda o: o.cache == "hit", 15, "page 1 in Redis")
        t_stop = time.monotonic()
        app.kubectl("scale", "statefulset/mysql", "--replicas=0")
        t_gone = app.wait_for(
            lambda s: not app.pods("mysql", s) and app.in_iptables("mysql", s) == [],
            60,
            "mysql gone",
        )
        load.writes_enabled = True
        _wait_seen(load, t_gone, lambda o: o.kind == "write", 10, "a write during the outage")
        time.sleep(1)
        t_start = time.monotonic()
        app.kubectl("scale", "statefulset/mysql", "--replicas=1")
        t_ready = app.wait_for(
            lambda s: len(app.in_iptables("mysql", s) or []) == 1, 90, "mysql back"
        )
        t_write = _wait_seen(
            load, t_ready, lambda o: o.status == 201, 60, "a write after MySQL returned"
        )
        time.sleep(1)
        t_end = time.monotonic()
    CREATED.extend(load.created())
    outage = load.between(t_gone, t_start)
    reads = [o for o in outage if o.kind == "read"]
    writes = [o for o in outage if o.kind == "write"]
    whole = load.between(t_first, t_end)
    unexpected = [o for o in whole if o.failed and not (o.kind == "write" and o.status == 503)]
    report(
        "fault: MySQL scaled to 0 and back to 1",
        {
            "requests from first write to end": len(whole),
            "failed reads": sum(o.failed for o in whole if o.kind == "read"),
            "writes answered 503 (expected while MySQL is gone)": sum(
                o.status == 503 for o in whole if o.kind == "write"
            ),
            "other failures": len(unexpected),
            "reads while MySQL was gone (all from Redis)": len(reads),
            "MySQL gone after (s)": round(t_gone - t_stop, 2),
            "MySQL ready after scale-up (s)": round(t_ready - t_start, 2),
            "first 201 after MySQL was ready (s)": round(t_write - t_ready, 2),
        },
    )
    assert reads and all(o.status == 200 and o.cache == "hit" for o in reads), (
        summary(reads),
        round(t_gone, 2),
        [(round(o.at, 2), o.kind, o.status, o.cache) for o in load.between(t_stop - 2, t_start)],
        app.warnings(),
    )
    assert writes and all(o.status == 503 for o in writes), summary(writes)
    assert not unexpected, (summary(unexpected), app.warnings())


# --- network faults: a slow link, partitions (lab netem / partition / heal) -----------------

# The bounds the design promises, from the settings' defaults (the manifests keep them):
# correctness bounds with a margin for a loaded 2-core machine, not speed measurements.
_BACKEND = BackendSettings.model_fields
_FRONTEND = FrontendSettings.model_fields
REDIS_TIMEOUT = float(_BACKEND["redis_timeout_seconds"].default)
FRONTEND_READ_TIMEOUT = float(_FRONTEND["backend_read_timeout_seconds"].default)
FRONTEND_CONNECT_TIMEOUT = float(_FRONTEND["backend_connect_timeout_seconds"].default)
MARGIN = 2.0
# A request meets at most a few Redis timeouts before the breaker opens (the page lookup,
# the write's rate limit and invalidation): far below what a hung Redis would cost.
REDIS_FAULT_BOUND = 4 * REDIS_TIMEOUT + MARGIN
# A write the backend cannot finish is answered by the frontend when its read timeout ends
# (504, outcome unknown), if the backend's own database timeouts have not answered first (503).
WRITE_BOUND = FRONTEND_READ_TIMEOUT + MARGIN
# A request to a partitioned backend pod: a new connection times out connecting and is
# retried once on another; a kept-alive one waits the read timeout and a read is then
# retried once on a new connection within what is left of the call's deadline (connect +
# read timeouts), so no request waits longer than that deadline.
BACKEND_FAULT_BOUND = FRONTEND_CONNECT_TIMEOUT + FRONTEND_READ_TIMEOUT + MARGIN
FAULT_SECONDS = 6.0


def _fault(*args: str) -> None:
    """`python -m lab netem|partition|heal …`, as a person types it."""
    done = _run(sys.executable, "-m", "lab", *args)
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def _healed(pod: str) -> Iterator[None]:
    """The fault comes off even when the test fails half-way: later tests need the link."""
    try:
        yield
    finally:
        _run(sys.executable, "-m", "lab", "heal", pod, check=False)


def _tiers(status: dict[str, Any]) -> dict[str, tuple[int, tuple[int | None, ...]]]:
    """Every pod's restarts and container pids: a restart or a replacement changes them."""
    return {
        p["name"]: (p["restarts"], tuple(c["pid"] for c in p["containers"])) for p in status["pods"]
    }


def _slowest(outcomes: list[Outcome], kind: str | None = None) -> float:
    return max((o.took for o in outcomes if kind in (None, o.kind)), default=0.0)


def _fault_report(
    app: Any,
    measured: list[str],
    title: str,
    outcomes: list[Outcome],
    recovery: float,
    bound: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    whole = summary(outcomes)
    figures = {
        "requests from fault to end": whole["requests"],
        "failed (no answer or 5xx)": whole["failed"],
        "statuses": whole["statuses"],
        "slowest request (s)": round(_slowest(outcomes), 2),
        "bound on the slowest (s)": round(bound, 2),
        "recovery after heal (s)": round(recovery, 2),
        **extra,
    }
    report(f"network fault: {title}", figures)
    measured.append(
        f"lab [{app.proxy_mode}] {title}: {whole['failed']}/{whole['requests']} failed, "
        f"slowest {_slowest(outcomes):.2f} s (bound {bound:.1f} s), "
        f"recovered {recovery:.2f} s after heal"
    )
    return whole


def _redis_fault(app: Any, measured: list[str], title: str, *fault: str) -> None:
    """Redis slow or gone: reads come from MySQL, no request waits much past the Redis
    timeout (the breaker), and pages are cached again once the link is back."""
    status = app.status()
    tiers = _tiers(status)
    redis = app.pods("redis", status)[0]
    backend = app.pods("backend", status)[0]
    with Load(app.base_url, max_seconds=90) as load, _healed(redis["name"]):
        _wait_seen(load, load.started_at, lambda o: o.cache == "hit", 15, "a cache hit")
        t_fault = time.monotonic()
        _fault(fault[0], redis["name"], *fault[1:])
        t_down = _wait_seen(
            load, t_fault, lambda o: o.cache_state == "down", 15, "a read served without Redis"
        )
        # What the backend pods meet: a Redis round trip slower than their timeout, or
        # none at all (a SYN that nothing answers: the connection hangs, not refused).
        link = _redis_round_trip(backend, redis["ip"])
        time.sleep(FAULT_SECONDS)
        t_heal = time.monotonic()
        _fault("heal", redis["name"])
        t_hit = _wait_seen(load, t_heal, lambda o: o.cache == "hit", 30, "cached again")
        t_all = app.wait_for(
            lambda s: all(_backend_cache(p) == "up" for p in app.pods("backend", s)),
            30,
            "every backend pod uses Redis again",
        )
        time.sleep(1)
        t_end = time.monotonic()
    CREATED.extend(load.created())
    outcomes = load.between(t_fault, t_end)
    whole = _fault_report(
        app,
        measured,
        title,
        outcomes,
        t_hit - t_heal,
        REDIS_FAULT_BOUND,
        {
            "first read without Redis after (s)": round(t_down - t_fault, 2),
            "Redis round trip from a backend pod during the fault": link,
            "every backend pod on Redis again after heal (s)": round(t_all - t_heal, 2),
        },
    )
    assert whole["failed"] == 0, (whole, app.warnings())
    assert _slowest(outcomes) <= REDIS_FAULT_BOUND, summary(outcomes)
    if fault[0] == "partition":
        assert link == "timeout", link
    else:
        assert isinstance(link, float) and link >= 0.29, link  # the delay is really there
    assert _tiers(app.status()) == tiers, "no pod was restarted or replaced"


def _redis_round_trip(pod: dict[str, Any], redis_ip: str) -> float | str:
    """From inside a backend pod: seconds for a connect and PING to Redis, or `timeout`."""
    code = (
        "import socket, time\n"
        "t = time.monotonic()\n"
        "try:\n"
        f"    s = socket.create_connection(('{redis_ip}', 6379), timeout=3)\n"
        "    s.sendall(b'PING\\r\\n'); s.recv(16)\n"
        "    print(round(time.monotonic() - t, 3))\n"
        "except TimeoutError:\n"
        "    print('timeout')\n"
    )
    out = _run("ip", "netns", "exec", _pod_netns(pod), sys.executable, "-c", code).stdout.strip()
    return out if out == "timeout" else float(out) / 2  # two round trips: connect, PING


def test_redis_300ms_slower(app: Any, measured: list[str]) -> None:
    _redis_fault(app, measured, "Redis +300 ms round trip", "netem", "--delay", "300ms")


def test_redis_partitioned(app: Any, measured: list[str]) -> None:
    _redis_fault(app, measured, "Redis partitioned", "partition")


def test_mysql_partitioned(app: Any, measured: list[str]) -> None:
    """MySQL unreachable (packets dropped): cached reads keep working, writes answer 503
    within a bounded time, and writes work again once the link is back."""
    status = app.status()
    tiers = _tiers(status)
    mysql = app.pods("mysql", status)[0]
    backend = app.pods("backend", status)[0]
    with Load(app.base_url, max_seconds=120) as load, _healed(mysql["name"]):
        _wait_seen(load, load.started_at, lambda o: o.status == 201, 15, "a write")
        load.writes_enabled = False  # so page 1 stays in Redis
        time.sleep(0.5)
        _wait_seen(load, time.monotonic(), lambda o: o.cache == "hit", 15, "page 1 in Redis")
        t_fault = time.monotonic()
        _fault("partition", mysql["name"])
        load.writes_enabled = True
        hang = _connects(backend, [(mysql["ip"], 3306)])
        _wait_seen(load, t_fault, lambda o: o.kind == "write", 20, "a write during the partition")
        time.sleep(FAULT_SECONDS)
        t_heal = time.monotonic()
        _fault("heal", mysql["name"])
        t_write = _wait_seen(load, t_heal, lambda o: o.status == 201, 60, "a 201 after heal")
        time.sleep(1)
        t_end = time.monotonic()
    CREATED.extend(load.created())
    outage = load.between(t_fault, t_heal)
    reads = [o for o in outage if o.kind == "read"]
    writes = [o for o in outage if o.kind == "write"]
    outcomes = load.between(t_fault, t_end)
    _fault_report(
        app,
        measured,
        "MySQL partitioned",
        outcomes,
        t_write - t_heal,
        WRITE_BOUND,
        {
            "reads during the partition (all from Redis)": len(reads),
            "writes during the partition (all 503 or 504)": len(writes),
            "slowest read (s)": round(_slowest(outcomes, "read"), 2),
            "slowest write (s)": round(_slowest(outcomes, "write"), 2),
        },
    )
    assert hang == ["timeout"], hang  # dropped, not refused: the connection hangs
    assert reads and all(o.status == 200 and o.cache == "hit" for o in reads), summary(reads)
    assert writes and all(o.status in (503, 504) for o in writes), summary(writes)
    assert _slowest(outcomes, "write") <= WRITE_BOUND, summary(writes)
    # During the partition every read is Redis's; once healed, the first write empties the
    # cache and a read goes to MySQL, over a pooled connection the partition may have left
    # dead: that read is bounded like a write (a CI run saw one take 5.0 s).
    assert _slowest(outage, "read") <= REDIS_FAULT_BOUND, summary(reads)
    assert _slowest(outcomes, "read") <= WRITE_BOUND, summary(outcomes)
    # Writes in flight when the link came back may still fail; none after the first 201.
    assert summary(load.between(t_write, t_end))["failed"] == 0
    assert _tiers(app.status()) == tiers, "no pod was restarted or replaced"


def test_one_backend_pod_partitioned(app: Any, measured: list[str]) -> None:
    """A backend pod cut off from the other pods, while the kubelet (on the node) still
    sees it healthy: it stays in the Service, and only the frontend's timeouts and its
    retry on a new connection bound what the requests that meet it wait."""
    status = app.status()
    tiers = _tiers(status)
    victim = app.pods("backend", status)[0]
    frontend = app.pods("frontend", status)[0]
    endpoint = f"{victim['ip']}:8000"
    with Load(app.base_url, max_seconds=90) as load, _healed(victim["name"]):
        time.sleep(2)
        t_fault = time.monotonic()
        _fault("partition", victim["name"])
        hang = _connects(frontend, [(victim["ip"], 8000)])
        time.sleep(FAULT_SECONDS)
        still_in = endpoint in (app.in_iptables("backend") or [])
        t_heal = time.monotonic()
        _fault("heal", victim["name"])
        # Requests that met the pod before the heal finish by the frontend's read timeout.
        time.sleep(FRONTEND_READ_TIMEOUT + 1)
        back = _connects(frontend, [(victim["ip"], 8000)])
        t_end = time.monotonic()
    CREATED.extend(load.created())
    outcomes = load.between(t_fault, t_end)
    failed = [o for o in outcomes if o.failed]
    last_failure = max((o.at for o in failed), default=t_heal)
    _fault_report(
        app,
        measured,
        "one backend pod partitioned",
        outcomes,
        max(last_failure - t_heal, 0.0),
        BACKEND_FAULT_BOUND,
        {
            "pod still in the Service during the partition": still_in,
            "slowest failed request (s)": round(_slowest(failed), 2),
        },
    )
    assert hang == ["timeout"] and back == ["connected"], (hang, back)
    assert still_in, "the kubelet still sees the pod ready: it stays in the Service"
    # Every request is answered (a 503 naming the backend at worst, or a write's 504
    # when it may have reached the pod) within the bound.
    assert all(o.status is not None for o in outcomes), summary(failed)
    expected = [o for o in failed if o.status == 503 or (o.status == 504 and o.kind == "write")]
    assert expected == failed, summary(failed)
    assert _slowest(outcomes) <= BACKEND_FAULT_BOUND, summary(outcomes)
    assert summary(load.between(t_heal + FRONTEND_READ_TIMEOUT, t_end))["failed"] == 0
    assert _tiers(app.status()) == tiers, "no pod was restarted or replaced"


# --- rollouts and connection max-age -----------------------------------------------------


def _rolled_out(status: dict[str, Any], key: str, drained: bool = True) -> bool:
    wl = next(w for w in status["workloads"] if w["key"] == key)
    done = wl["updated_ready"] == wl["replicas"] and wl["old"] == 0
    return done and (wl["terminating"] == 0 or not drained)


def test_rolling_restarts_lose_no_request(app: Any) -> None:
    """Backend, then frontend, replaced one pod at a time under reads and writes."""
    figures: dict[str, Any] = {}
    with Load(app.base_url, max_seconds=150) as load:
        time.sleep(2)
        for key in ("Deployment/backend", "Deployment/frontend"):
            before = {p["name"] for p in app.status()["pods"] if p["workload"] == key}
            started = time.monotonic()
            app.kubectl("rollout", "restart", key.lower())
            # kubectl's own wait: the new ReplicaSet's pods all available, the old scaled down.
            app.kubectl("rollout", "status", key.lower(), "--timeout=120s")
            done = app.wait_for(lambda s, k=key: _rolled_out(s, k), 60, f"{key} drained")
            time.sleep(1)
            window = summary(load.between(started, time.monotonic()))
            after = {p["name"] for p in app.status()["pods"] if p["workload"] == key}
            assert not before & after, "every pod was replaced"
            figures[f"{key}: requests / failed"] = f"{window['requests']} / {window['failed']}"
            figures[f"{key}: seconds until the old pods were gone"] = round(done - started, 1)
            figures[f"{key}: statuses"] = window["statuses"]
            assert window["failed"] == 0, window
    CREATED.extend(load.created())
    report("rolling restarts under load (maxSurge 1, maxUnavailable 0)", figures)


def _shares(
    frontend_ip: str, seconds: float, until_all: set[str], at_most: float
) -> tuple[dict[str, int], float | None]:
    """Sequential reads from one frontend pod for `seconds` (longer, up to `at_most`, until
    every pod in `until_all` answered): which backend pods answered, and when all had."""
    counts: dict[str, int] = {}
    started = time.monotonic()
    all_seen = None
    with httpx.Client(base_url=f"http://{frontend_ip}:8080", timeout=10) as client:
        while (elapsed := time.monotonic() - started) < seconds or (
            all_seen is None and elapsed < at_most
        ):
            pod = client.get("/api/messages").headers.get("x-backend-pod", "?")
            counts[pod] = counts.get(pod, 0) + 1
            if all_seen is None and until_all <= set(counts):
                all_seen = time.monotonic() - started
            time.sleep(0.02)
    return counts, all_seen


def _connections_opened(frontend_ip: str) -> float:
    """The frontend pod's count of TCP connections it opened to the backend Service."""
    # The metrics port, not the page's: 8080 serves no /metrics.
    text = httpx.get(f"http://{frontend_ip}:9080/metrics", timeout=5).text
    found = re.search(r"^backend_connections_opened_total (\S+)$", text, re.M)
    assert found, "the frontend exports backend_connections_opened_total"
    return float(found.group(1))


def test_connection_max_age_spreads_one_frontend(app: Any, tmp_path: Path) -> None:
    """With max-age, one busy frontend pod keeps reconnecting and reaches every backend pod;
    without, it keeps its pooled connections and the pods they lead to."""
    results: dict[str, Any] = {}
    measured: dict[str, tuple[dict[str, int], float | None, float]] = {}
    for label, age in (("on (1 s)", "1"), ("off (0)", "0")):
        settings = {"MAX_CONNECTION_AGE_SECONDS": age}
        _lab_apply(app, overlay(tmp_path / f"age-{age}", backend_config=settings))
        app.wait_for(
            lambda s: _rolled_out(s, "Deployment/backend", drained=True),
            120,
            "backend rolled out with the new setting",
        )
        status = app.status()
        backends = {p["name"] for p in app.pods("backend", status)}
        frontend = app.pods("frontend", status)[0]
        opened_before = _connections_opened(frontend["ip"])
        # With max-age on, keep going (up to 30 s) until every backend pod has answered.
        counts, all_seen = _shares(frontend["ip"], 10, backends, 30 if age != "0" else 10)
        opened = _connections_opened(frontend["ip"]) - opened_before
        measured[label] = (counts, all_seen, opened)
        total = sum(counts.values())
        results[f"max-age {label}: per-pod share"] = {
            pod: f"{100 * n / total:.0f}%" for pod, n in sorted(counts.items())
        }
        results[f"max-age {label}: new connections to the backend"] = int(opened)
        results[f"max-age {label}: all 3 backend pods reached after (s)"] = (
            round(all_seen, 1) if all_seen is not None else "never"
        )
    report("connection max-age, one frontend pod, sequential reads (10 s or more)", results)
    on_counts, on_all, on_opened = measured["on (1 s)"]
    off_counts, _, off_opened = measured["off (0)"]
    assert on_all is not None and on_opened >= 5, (on_counts, on_opened)
    # Off, the pool keeps its connections and so the pods they lead to: at most
    # one more opens, when the kubelet's probe of the frontend (which asks the
    # backend) overlaps a read.
    assert off_opened <= 2, (off_counts, off_opened)


def test_a_memory_limit_too_small_is_an_oom_kill(app: Any, tmp_path: Path) -> None:
    """From its image under the engine's cgroup, a backend over its limit is OOM-killed,
    as on a node; maxUnavailable 0 keeps the old pods serving meanwhile."""
    if detect(REPO) is None:
        pytest.skip("the pods run from the checkout: no container engine, no memory limit")
    if app.proxy_mode != PROXY_MODES[0]:
        # The kill is the engine's cgroup's, the same whichever rules kube-proxy writes.
        pytest.skip(f"an OOM kill does not depend on the proxy mode: run in {PROXY_MODES[0]}")
    _lab_apply(app, overlay(tmp_path / "oom", backend_memory="24Mi"))
    try:
        app.wait_for(
            lambda s: any("OOMKilled" in e["message"] for e in s["events"]),
            120,
            "a new backend pod OOM-killed",
        )
        assert sum(p["ready"] for p in app.pods("backend")) >= 3
        page = httpx.get(f"{app.base_url}/api/route", timeout=10)
        assert page.status_code == 200
    finally:
        _lab_apply(app)
        app.wait_for(
            lambda s: _rolled_out(s, "Deployment/backend", drained=True),
            180,
            "backend rolled back to the manifests' limit",
        )


def test_every_201_is_a_row_in_mysql(app: Any) -> None:
    assert CREATED, "the fault tests saw no acknowledged write"
    rows = rows_by_the_test(app)
    missing_rows = [o.message_id for o in CREATED if rows.get(o.message_id) != o.text]
    texts = list(rows.values())
    report("writes", {"201s seen": len(CREATED), "rows by the test in MySQL": len(rows)})
    assert not missing_rows, f"acknowledged but not in MySQL: {missing_rows}"
    assert len(texts) == len(set(texts)), "a write was stored twice"


# --- stopping -------------------------------------------------------------------------------


def test_ctrl_c_removes_everything(before: dict[str, Any], app: Any) -> None:
    pids = [c["pid"] for p in app.status()["pods"] for c in p["containers"] if c["pid"]]
    # A network fault left on, delayer and all: the leftovers check sees it, and the
    # lab's clean-up takes it off with the rest.
    _fault("netem", app.pods("redis")[0]["name"], "--delay", "50ms", "--loss", "1%")
    on = leftovers()
    assert any("delayer pid" in line for line in on["faults"]), on["faults"]
    assert any("CIP-FAULT-" in line for line in on["iptables"]), on["iptables"]
    code = app.stop(signal.SIGINT)
    assert code == 0, app.log_tail()
    left = leftovers()
    assert not any(left.values()), left
    assert IP_FORWARD.read_text().strip() == before["ip_forward"]
    assert not Path("/run/cip-lab").exists()
    assert Path("/etc/netns").exists() == before["etc_netns_existed"]
    assert not any(pid_alive(pid) for pid in pids)
    down = _run(sys.executable, "-m", "lab", "down", check=False)
    assert down.returncode == 0 and "nothing of the lab is left" in down.stdout, down
    # kubectl is not left pointing at a server that is gone.
    assert "clusterip-lab" not in app.kubeconfig.read_text()
