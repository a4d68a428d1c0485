"""The cluster DNS without root: records, dnsmasq's files and command line, resolv.conf,
its files following the EndpointSlices, its nanny, UDP Services in both proxy modes,
and the NetworkPolicy that lets pods reach it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab import dns
from lab.api.controllers import endpointslice, scheduler
from lab.api.graceful import delete_pod
from lab.api.storage import Store
from lab.cni.policy import NETPOL, compile_policies
from lab.kubeproxy import nftables
from lab.kubeproxy.iptables import render_filter, render_nat
from lab.kubeproxy.model import Endpoint, ServicePortRules
from lab.manifests import REPO, ManifestError, parse_documents
from lab.naming import host_iface
from lab.node.dnsfiles import DnsFiles
from lab.sources.cni import policy_inputs
from lab.sources.dns import dns_services
from lab.sources.envvars import service_env
from lab.sources.kubeproxy import service_port_rules
from tests.conftest import missing
from tests.lab import apicluster as api
from tests.lab.fakes import FakeKubelet

NS = "clusterip-demo"
SVC = f"{NS}.svc.cluster.local"


@pytest.fixture(scope="module")
def rendered() -> str:
    if shutil.which("kubectl") is None:
        missing("kubectl is not installed: the lab renders k8s/ with `kubectl kustomize`")
    return subprocess.run(
        ["kubectl", "kustomize", str(REPO / "k8s")], capture_output=True, text=True, check=True
    ).stdout


def _running_cluster(rendered: str, tmp_path: Path) -> tuple[Store, FakeKubelet]:
    """The real manifests plus kube-dns, every pod created and ready, as after `lab up`."""
    return api.running_app(rendered, tmp_path / "dns")


def _dns_view(store: Store) -> list[dns.DnsService]:
    return dns_services(*api.services_and_slices(store))


def _gracefully_deleted(store: Store, name: str, namespace: str = NS) -> None:
    """`kubectl delete pod`: marked for the kubelet, and the EndpointSlices follow."""
    delete_pod(store, namespace, name)
    api.settle(store)


def test_resolv_conf_as_the_kubelet_writes_it() -> None:
    assert dns.resolv_conf("clusterip-demo") == (
        "search clusterip-demo.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )


def test_records_of_the_real_manifests(rendered: str, tmp_path: Path) -> None:
    store, _ = _running_cluster(rendered, tmp_path)
    recs = dns.records(_dns_view(store))
    ip = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in api.listed(store, "services")}
    mysql0 = api.pod_ip(store, "mysql-0", NS)
    assert recs.names() == {
        f"backend.{SVC}": [ip["backend"]],
        f"frontend.{SVC}": [ip["frontend"]],
        f"mysql.{SVC}": [ip["mysql"]],
        f"redis.{SVC}": [ip["redis"]],
        # The headless governing Service: the pod itself, by its address and by its name.
        f"mysql-headless.{SVC}": [mysql0],
        f"mysql-0.mysql-headless.{SVC}": [mysql0],
        "kube-dns.kube-system.svc.cluster.local": ["10.96.0.10"],
        # The API server's own Service, as on every cluster.
        "kubernetes.default.svc.cluster.local": ["10.96.0.1"],
    }
    assert ip["kube-dns"] == "10.96.0.10"
    kube_dns = "kube-dns.kube-system.svc.cluster.local"
    kubernetes = "kubernetes.default.svc.cluster.local"
    assert [(s.name, s.target, s.port) for s in recs.srv] == [
        (f"_dns-tcp._tcp.{kube_dns}", kube_dns, 53),
        (f"_dns._udp.{kube_dns}", kube_dns, 53),
        (f"_http._tcp.backend.{SVC}", f"backend.{SVC}", 8000),
        (f"_http._tcp.frontend.{SVC}", f"frontend.{SVC}", 80),
        (f"_https._tcp.{kubernetes}", kubernetes, 443),
        # The scrape ports are named too, so each has its SRV record.
        (f"_metrics._tcp.backend.{SVC}", f"backend.{SVC}", 9000),
        (f"_metrics._tcp.frontend.{SVC}", f"frontend.{SVC}", 9080),
        (f"_metrics._tcp.{kube_dns}", kube_dns, 9153),
        (f"_mysql._tcp.mysql-headless.{SVC}", f"mysql-0.mysql-headless.{SVC}", 3306),
        (f"_mysql._tcp.mysql.{SVC}", f"mysql.{SVC}", 3306),
        (f"_redis._tcp.redis.{SVC}", f"redis.{SVC}", 6379),
    ]
    srv = dns.srv_conf(recs).splitlines()
    assert f"srv-host=_http._tcp.backend.{SVC},backend.{SVC},8000,0,100" in srv
    assert f"{ip['backend']} backend.{SVC}" in dns.hosts_text(recs).splitlines()


def test_headless_services_answer_ready_endpoints_only() -> None:
    port = dns.DnsPort("db", "TCP", 5432)
    svc = dns.DnsService(
        "db",
        "ns",
        None,
        (port, dns.DnsPort("", "TCP", 9)),
        (
            dns.DnsEndpoint("10.244.1.7", "db-0", (dns.DnsPort("db", "TCP", 15432),)),
            dns.DnsEndpoint("10.244.1.8", None, (dns.DnsPort("db", "TCP", 15432),)),
        ),
    )
    recs = dns.records([svc])
    assert recs.names() == {
        "db.ns.svc.cluster.local": ["10.244.1.7", "10.244.1.8"],
        "db-0.db.ns.svc.cluster.local": ["10.244.1.7"],
        # No hostname: CoreDNS's dashed-address name.
        "10-244-1-8.db.ns.svc.cluster.local": ["10.244.1.8"],
    }
    # SRV per ready endpoint at its own port, the weight shared; the unnamed port has none.
    assert [(s.target, s.port, s.weight) for s in recs.srv] == [
        ("10-244-1-8.db.ns.svc.cluster.local", 15432, 50),
        ("db-0.db.ns.svc.cluster.local", 15432, 50),
    ]
    assert dns.records([dns.DnsService("db", "ns", None, (port,), ())]) == dns.Records((), ())


def test_not_ready_pods_leave_a_headless_service_but_not_a_cluster_ip(
    rendered: str, tmp_path: Path
) -> None:
    store, kubelet = _running_cluster(rendered, tmp_path)
    assert f"mysql-0.mysql-headless.{SVC}" in dns.records(_dns_view(store)).names()
    kubelet.set_ready("mysql-0", False)  # its readiness probe fails
    endpointslice.reconcile(store)
    names = dns.records(_dns_view(store)).names()
    assert f"mysql-0.mysql-headless.{SVC}" not in names
    assert f"mysql-headless.{SVC}" not in names
    assert f"mysql.{SVC}" in names


def test_the_dns_files_follow_endpoints(rendered: str, tmp_path: Path) -> None:
    store, _ = _running_cluster(rendered, tmp_path)
    files = DnsFiles(tmp_path / "dns")
    files.prepare()
    hosts = files.hosts_dir / dns.HOSTS_FILE
    srv = files.srv_file
    assert f"mysql-0.mysql-headless.{SVC}" not in hosts.read_text()  # empty before the first pass
    assert files.sync(_dns_view(store)) is True  # the SRV records came: dnsmasq restarts
    assert f"mysql-0.mysql-headless.{SVC}" in hosts.read_text()
    assert oct(hosts.stat().st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(files.hosts_dir)) == [dns.HOSTS_FILE]  # no temporary file
    srv_inode, hosts_inode = srv.stat().st_ino, hosts.stat().st_ino
    assert files.sync(_dns_view(store)) is False  # nothing changed, nothing written
    assert (srv.stat().st_ino, hosts.stat().st_ino) == (srv_inode, hosts_inode)
    # mysql-0 goes: its names go, and the headless SRV record with them (dnsmasq restarts).
    _gracefully_deleted(store, "mysql-0")
    assert files.sync(_dns_view(store)) is True
    assert "mysql-0" not in hosts.read_text()
    assert "mysql-0" not in srv.read_text() and srv.stat().st_ino != srv_inode
    # A backend pod going away changes nothing the DNS says: the ClusterIP stays.
    srv_inode, hosts_inode = srv.stat().st_ino, hosts.stat().st_ino
    backend = api.pods_of(store, NS, **{"app.kubernetes.io/name": "backend"})[0]
    _gracefully_deleted(store, backend["metadata"]["name"])
    assert files.sync(_dns_view(store)) is False
    assert (srv.stat().st_ino, hosts.stat().st_ino) == (srv_inode, hosts_inode)


def test_dnsmasq_accepts_the_generated_configuration(rendered: str, tmp_path: Path) -> None:
    binary = shutil.which("dnsmasq")
    if binary is None:
        missing("dnsmasq is not installed (apt-get install dnsmasq-base)")
    store, _ = _running_cluster(rendered, tmp_path)
    files = DnsFiles(tmp_path / "dns")
    files.prepare()
    files.sync(_dns_view(store))
    assert "srv-host=_mysql._tcp.mysql-headless" in files.srv_file.read_text()
    args = dns.dnsmasq_args(files.hosts_dir, files.srv_file, listen="10.244.1.2")
    # --test checks the syntax of the command line and the conf file, and starts nothing.
    done = subprocess.run([binary, "--test", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "syntax check OK" in done.stderr
    bad = files.srv_file.read_text() + "srv-hots=oops\n"
    files.srv_file.write_text(bad)
    done = subprocess.run([binary, "--test", *args], capture_output=True, text=True, check=False)
    assert done.returncode != 0


def test_dnsmasq_never_forwards_and_reads_no_host_file() -> None:
    args = dns.dnsmasq_args(Path("/h"), Path("/s.conf"))
    for flag in ("--no-resolv", "--no-hosts", "--local=/cluster.local/", "--address=/#/"):
        assert flag in args
    assert not any(a.startswith("--server") for a in args)
    assert "--listen-address=$(POD_IP)" in args and "--port=53" in args


def test_the_nanny_restarts_its_program_when_the_file_changes(tmp_path: Path) -> None:
    watched = tmp_path / "srv.conf"
    watched.write_text("one\n")
    nanny = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.dnsnanny",
            "--watch",
            str(watched),
            "--program",
            "sleep",
            "--",
            "300",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert nanny.stderr is not None
        first = nanny.stderr.readline()
        assert "started" in first
        replacement = tmp_path / "new"
        replacement.write_text("two\n")
        os.replace(replacement, watched)
        assert "changed: restarting" in nanny.stderr.readline()
        second = nanny.stderr.readline()
        assert "started" in second and second != first
        nanny.send_signal(signal.SIGTERM)
        # sleep dies of the SIGTERM passed on to it; the nanny says so, as a shell would.
        assert nanny.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if nanny.poll() is None:
            nanny.kill()
            nanny.wait()


# --- kube-dns as lab objects ---------------------------------------------------------------------


def test_kube_dns_is_a_service_and_a_deployment_in_kube_system(tmp_path: Path) -> None:
    store = api.cluster()
    svc = api.service_object(store, "kube-system", "kube-dns")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert [(p["name"], p["protocol"], p["port"]) for p in svc["spec"]["ports"]] == [
        ("dns", "UDP", 53),
        ("dns-tcp", "TCP", 53),
        ("metrics", "TCP", 9153),
    ]
    (addon,) = DnsFiles(tmp_path).addon()
    meta, spec = addon["metadata"], addon["spec"]
    assert (addon["kind"], meta["namespace"], meta["name"]) == (
        "Deployment",
        "kube-system",
        "kube-dns",
    )
    assert spec["template"]["metadata"]["labels"] == {"k8s-app": "kube-dns"}  # type: ignore[index]
    (container,) = spec["template"]["spec"]["containers"]  # type: ignore[index]
    assert container["args"][:2] == ["--watch", str(tmp_path / "srv" / "srv.conf")]
    assert "--" in container["args"]
    # The API server admits it, and its pod is what the Service's slice lists.
    api.apply(store, [addon])
    api.settle(store)
    (dns_pod,) = api.pods_of(store, "kube-system", **{"k8s-app": "kube-dns"})
    api.start(store, dns_pod["metadata"]["name"], "10.244.1.9", namespace="kube-system")
    api.settle(store)
    (slice_,) = [
        s
        for s in api.listed(store, "endpointslices", "discovery.k8s.io")
        if s["metadata"]["labels"].get("kubernetes.io/service-name") == "kube-dns"
    ]
    (endpoint,) = slice_["endpoints"]
    assert endpoint["targetRef"]["name"] == dns_pod["metadata"]["name"]


def test_kube_dns_beside_the_app_listed_by_namespace(rendered: str, tmp_path: Path) -> None:
    store, _ = _running_cluster(rendered, tmp_path)
    services = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s["spec"]["clusterIP"]
        for s in api.listed(store, "services")
    }
    assert services[("kube-system", "kube-dns")] == "10.96.0.10"
    assert services[(NS, "mysql-headless")] == "None"
    # The app's own view is unchanged: its namespace's Services by name.
    env = service_env(api.listed(store, "services"), NS)
    assert "BACKEND_SERVICE_HOST" in env
    assert not any(name.startswith("KUBE_DNS_") for name in env)
    protocols = {
        (r.port_name, r.protocol) for r in service_port_rules(*api.services_and_slices(store))
    }
    assert {
        ("kube-system/kube-dns:dns", "UDP"),
        ("kube-system/kube-dns:dns-tcp", "TCP"),
    } <= protocols


# --- UDP ------------------------------------------------------------------------------------------


def _udp_dns(*endpoints: Endpoint) -> ServicePortRules:
    return ServicePortRules("kube-system/kube-dns:dns", "10.96.0.10", 53, "UDP", endpoints)


def test_udp_service_ports_in_iptables_mode() -> None:
    ep = Endpoint("10.244.1.9", 53, "kube-dns-x", True, True, False)
    nat = render_nat([_udp_dns(ep)])
    assert (
        "-A CIP-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "
        '"kube-system/kube-dns:dns cluster IP" -m udp --dport 53' in nat
    )
    assert "-p udp" in nat and "-m udp -j DNAT --to-destination 10.244.1.9:53" in nat
    assert "-p tcp" not in nat
    # No endpoint: the filter table rejects UDP to it, as kube-proxy does.
    filt = render_filter([_udp_dns()])
    assert any("-d 10.96.0.10/32 -p udp" in line and "REJECT" in line for line in filt.splitlines())


def test_udp_service_ports_in_nftables_mode() -> None:
    ep = Endpoint("10.244.1.9", 53, "kube-dns-x", True, True, False)
    script = nftables.render([_udp_dns(ep)])
    assert "10.96.0.10 . udp . 53 : goto service-" in script
    assert "meta l4proto udp dnat to 10.244.1.9:53" in script
    assert "10.96.0.10 . udp . 53 comment" in nftables.render([_udp_dns()])


def test_udp_ports_are_read_and_sctp_refused() -> None:
    def svc(protocol: str) -> list[dict[str, object]]:
        return [
            {
                "kind": "Service",
                "metadata": {"name": "d", "namespace": "ns"},
                "spec": {"selector": {"a": "b"}, "ports": [{"port": 53, "protocol": protocol}]},
            }
        ]

    assert parse_documents(svc("UDP")).services["d"].ports[0].protocol == "UDP"
    with pytest.raises(ManifestError, match="TCP and UDP"):
        parse_documents(svc("SCTP"))


# --- the NetworkPolicy that lets pods reach it ----------------------------------------------------


def test_allow_dns_egress_lets_frontend_and_backend_reach_the_dns_pod(
    rendered: str, tmp_path: Path
) -> None:
    store, kubelet = _running_cluster(rendered, tmp_path)
    (dns_pod,) = api.pods_of(store, "kube-system", **{"k8s-app": "kube-dns"})
    dns_ip = dns_pod["status"]["podIP"]

    def compiled() -> list[list[str]]:
        inputs = policy_inputs(
            api.listed(store, "networkpolicies", "networking.k8s.io"),
            api.listed(store, "pods"),
            api.listed(store, "namespaces"),
        )
        return compile_policies(*inputs)[1]

    rules = compiled()

    def egress(pod_name: str) -> list[str]:
        iface = host_iface(pod_name)
        jump = next(r for r in rules if r[1] == NETPOL and "-i" in r and iface in r)
        return [" ".join(r[2:]) for r in rules if r[1] == jump[-1]]

    to_dns = [
        f"-d {dns_ip}/32 -p udp -m udp --dport 53",
        f"-d {dns_ip}/32 -p tcp -m tcp --dport 53",
    ]
    for app in ("frontend", "backend"):
        pod = api.pods_of(store, NS, **{"app.kubernetes.io/name": app})[0]
        got = [r.split(" -m comment")[0] for r in egress(pod["metadata"]["name"])]
        assert all(rule in got for rule in to_dns), got
    # MySQL may send nothing, not even a DNS query.
    assert not any(dns_ip in r for r in egress("mysql-0"))
    # The DNS pod's namespace is what the namespaceSelector matches: a pod with its
    # labels and port in another namespace is not let in.
    impostor = {
        "metadata": {"name": "impostor", "labels": dns_pod["metadata"]["labels"]},
        "spec": {"containers": dns_pod["spec"]["containers"]},
    }
    api.create(store, "pods", impostor)
    api.settle(store, scheduler)
    assert kubelet.run_pods() == ["impostor"]
    impostor_ip = api.pod_ip(store, "impostor", "default")
    rules = compiled()
    assert any(dns_ip in " ".join(r) for r in rules)
    assert not any(impostor_ip in " ".join(r) for r in rules)


def test_endpoints_of_kube_dns_are_its_pod_on_both_protocols(rendered: str, tmp_path: Path) -> None:
    store, _ = _running_cluster(rendered, tmp_path)
    (dns_pod,) = api.pods_of(store, "kube-system", **{"k8s-app": "kube-dns"})
    ip = dns_pod["status"]["podIP"]
    rules = service_port_rules(*api.services_and_slices(store))
    dns_rules = [r for r in rules if r.port_name.startswith("kube-system/")]
    assert {
        (r.port_name, r.protocol, tuple(f"{e.ip}:{e.port}" for e in r.usable())) for r in dns_rules
    } == {
        ("kube-system/kube-dns:dns", "UDP", (f"{ip}:53",)),
        ("kube-system/kube-dns:dns-tcp", "TCP", (f"{ip}:53",)),
        # The metrics port of the Service a cluster's DNS add-on has: the same pod.
        ("kube-system/kube-dns:metrics", "TCP", (f"{ip}:9153",)),
    }


def test_the_tests_dns_client_reads_srv_and_compressed_names() -> None:
    from tests.lab.dnsquery import build_query, parse_answer

    query = build_query("_http._tcp.backend.ns.svc.cluster.local", "SRV", 0x1234)
    assert query[:2] == b"\x12\x34" and query.endswith(b"\x00\x00\x21\x00\x01")
    # The answer repeats the question; the record's owner is a pointer to it (offset 12).
    answer = bytearray(query)
    answer[2:4] = b"\x85\x80"  # a response, authoritative, no error
    answer[6:8] = b"\x00\x01"
    target = b"\x07backend\x02ns\x03svc\x07cluster\x05local\x00"
    rdata = b"\x00\x00\x00\x64\x1f\x40" + target
    answer += b"\xc0\x0c\x00\x21\x00\x01\x00\x00\x00\x1e" + len(rdata).to_bytes(2, "big") + rdata
    assert parse_answer(bytes(answer)) == (0, ["0 100 8000 backend.ns.svc.cluster.local"])
    nx = bytearray(query)
    nx[2:4] = b"\x85\x83"
    assert parse_answer(bytes(nx)) == (3, [])
