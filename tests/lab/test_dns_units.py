"""The cluster DNS without root: records, dnsmasq's files and command line, resolv.conf,
the DNS controller following endpoints, its nanny, UDP Services in both proxy modes,
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

from lab import dns, nftables
from lab.apiserver import ApiServer
from lab.cluster import Lab, Options, dns_objects
from lab.controllers import deployment, endpointslice, networkpolicy, statefulset
from lab.controllers.dns import DnsController, view
from lab.iptables import Endpoint, ServicePortRules, render_filter, render_nat
from lab.manifests import REPO, ManifestError, load, parse_documents
from lab.naming import host_iface
from lab.netpol import NETPOL
from tests.conftest import missing
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


def _running_cluster(tmp_path: Path) -> tuple[ApiServer, FakeKubelet]:
    """The real manifests plus kube-dns, every pod created and ready, as after `lab up`."""
    api = ApiServer(load(), dns_objects(tmp_path / "dns"), print_events=False, seed=7)
    api.allocate_service_ips()
    kubelet = FakeKubelet(api)
    for _ in range(5):  # StatefulSets come one pod per pass
        for key, wl in api.workloads.items():
            module = deployment if wl.kind == "Deployment" else statefulset
            module.reconcile(api, key, kubelet)
        kubelet.ready(*api.pods.values())
    return api, kubelet


def test_resolv_conf_as_the_kubelet_writes_it() -> None:
    assert dns.resolv_conf("clusterip-demo") == (
        "search clusterip-demo.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )


def test_records_of_the_real_manifests(rendered: str, tmp_path: Path) -> None:
    api, _ = _running_cluster(tmp_path)
    recs = dns.records(view(api))
    ip = {svc.name: api.cluster_ip(svc) for svc in api.services()}
    mysql0 = api.pods["mysql-0"].ip
    assert recs.names() == {
        f"backend.{SVC}": [ip["backend"]],
        f"frontend.{SVC}": [ip["frontend"]],
        f"mysql.{SVC}": [ip["mysql"]],
        f"redis.{SVC}": [ip["redis"]],
        # The headless governing Service: the pod itself, by its address and by its name.
        f"mysql-headless.{SVC}": [mysql0],
        f"mysql-0.mysql-headless.{SVC}": [mysql0],
        "kube-dns.kube-system.svc.cluster.local": ["10.96.0.10"],
    }
    assert ip["kube-dns"] == "10.96.0.10"
    kube_dns = "kube-dns.kube-system.svc.cluster.local"
    assert [(s.name, s.target, s.port) for s in recs.srv] == [
        (f"_dns-tcp._tcp.{kube_dns}", kube_dns, 53),
        (f"_dns._udp.{kube_dns}", kube_dns, 53),
        (f"_http._tcp.backend.{SVC}", f"backend.{SVC}", 8000),
        (f"_http._tcp.frontend.{SVC}", f"frontend.{SVC}", 80),
        # The scrape ports are named too, so each has its SRV record.
        (f"_metrics._tcp.backend.{SVC}", f"backend.{SVC}", 9000),
        (f"_metrics._tcp.frontend.{SVC}", f"frontend.{SVC}", 9080),
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


def test_not_ready_pods_leave_a_headless_service_but_not_a_cluster_ip(tmp_path: Path) -> None:
    api, _ = _running_cluster(tmp_path)
    api.pods["mysql-0"].deleting = True
    names = dns.records(view(api)).names()
    assert f"mysql-0.mysql-headless.{SVC}" not in names
    assert f"mysql-headless.{SVC}" not in names
    assert f"mysql.{SVC}" in names


def test_the_dns_controller_follows_endpoints(tmp_path: Path) -> None:
    api, kubelet = _running_cluster(tmp_path)
    controller = DnsController(api, tmp_path / "dns")
    controller.prepare()
    hosts = controller.hosts_dir / dns.HOSTS_FILE
    srv = controller.srv_file
    assert f"mysql-0.mysql-headless.{SVC}" in hosts.read_text()
    assert oct(hosts.stat().st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(controller.hosts_dir)) == [dns.HOSTS_FILE]  # no temporary file
    srv_inode = srv.stat().st_ino
    assert controller.sync() is False  # nothing changed, nothing written
    # mysql-0 goes: its names go, and the headless SRV record with them (dnsmasq restarts).
    api.pods["mysql-0"].deleting = True
    assert controller.sync() is True
    assert "mysql-0" not in hosts.read_text()
    assert "mysql-0" not in srv.read_text() and srv.stat().st_ino != srv_inode
    # A backend pod going away changes nothing the DNS says: the ClusterIP stays.
    srv_inode = srv.stat().st_ino
    kubelet.delete_pod(next(iter(api.pods_of("Deployment/backend"))))
    assert controller.sync() is False and srv.stat().st_ino == srv_inode


def test_dnsmasq_accepts_the_generated_configuration(tmp_path: Path) -> None:
    binary = shutil.which("dnsmasq")
    if binary is None:
        missing("dnsmasq is not installed (apt-get install dnsmasq-base)")
    api, _ = _running_cluster(tmp_path)
    controller = DnsController(api, tmp_path / "dns")
    controller.prepare()
    args = dns.dnsmasq_args(controller.hosts_dir, controller.srv_file, listen="10.244.1.2")
    # --test checks the syntax of the command line and the conf file, and starts nothing.
    done = subprocess.run([binary, "--test", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "syntax check OK" in done.stderr
    bad = controller.srv_file.read_text() + "srv-hots=oops\n"
    controller.srv_file.write_text(bad)
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
    objects = dns_objects(tmp_path)
    (svc,) = objects.services
    assert (svc.namespace, svc.name, svc.cluster_ip) == ("kube-system", "kube-dns", "10.96.0.10")
    assert [(p.name, p.protocol, p.port) for p in svc.ports] == [
        ("dns", "UDP", 53),
        ("dns-tcp", "TCP", 53),
    ]
    wl = objects.workloads["Deployment/kube-dns"]
    assert wl.namespace == "kube-system" and wl.template.labels == {"k8s-app": "kube-dns"}
    (container,) = wl.template.containers
    assert container.args[:2] == ("--watch", str(tmp_path / "srv" / "srv.conf"))
    assert "--" in container.args


def test_the_lab_adds_kube_dns_and_lists_it_by_namespace(rendered: str, tmp_path: Path) -> None:
    lab = Lab(load(), Options(print_events=False), tmp_path)
    lab.allocate_service_ips()
    services = {(s["namespace"], s["name"]): s for s in lab.status()["services"]}
    assert services[("kube-system", "kube-dns")]["cluster_ip"] == "10.96.0.10"
    assert services[(NS, "mysql-headless")]["cluster_ip"] == "None"
    # The app's own view is unchanged: its Services by name.
    assert "kube-dns" not in lab.cluster_ips and "backend" in lab.cluster_ips
    protocols = {(r.port_name, r.protocol) for r in lab.endpointslices.sync()}
    assert {
        ("kube-system/kube-dns:dns", "UDP"),
        ("kube-system/kube-dns:dns-tcp", "TCP"),
    } <= protocols
    assert Lab(load(), Options(print_events=False, cluster_dns=False), tmp_path).dns is None


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
    api, _ = _running_cluster(tmp_path)
    dns_pod = api.pods_of("Deployment/kube-dns")[0]
    assert dns_pod.namespace == "kube-system"
    _, rules = networkpolicy.compute(api)

    def egress(pod_name: str) -> list[str]:
        iface = host_iface(pod_name)
        jump = next(r for r in rules if r[1] == NETPOL and "-i" in r and iface in r)
        return [" ".join(r[2:]) for r in rules if r[1] == jump[-1]]

    to_dns = [
        f"-d {dns_pod.ip}/32 -p udp -m udp --dport 53",
        f"-d {dns_pod.ip}/32 -p tcp -m tcp --dport 53",
    ]
    for app in ("frontend", "backend"):
        pod = next(p for p in api.pods.values() if p.labels.get("app.kubernetes.io/name") == app)
        got = [r.split(" -m comment")[0] for r in egress(pod.name)]
        assert all(rule in got for rule in to_dns), got
    # MySQL may send nothing, not even a DNS query.
    assert not any(dns_pod.ip in r for r in egress("mysql-0"))
    # The DNS pod's namespace is what the namespaceSelector matches: another one is not let in.
    api.manifests.namespace_labels["kube-system"] = {"kubernetes.io/metadata.name": "other"}
    _, rules = networkpolicy.compute(api)
    assert not any(dns_pod.ip in " ".join(r) for r in rules)


def test_endpoints_of_kube_dns_are_its_pod_on_both_protocols(tmp_path: Path) -> None:
    api, _ = _running_cluster(tmp_path)
    ip = api.pods_of("Deployment/kube-dns")[0].ip
    dns_rules = [r for r in endpointslice.compute(api) if r.port_name.startswith("kube-system/")]
    assert {(r.protocol, tuple(f"{e.ip}:{e.port}" for e in r.usable())) for r in dns_rules} == {
        ("UDP", (f"{ip}:53",)),
        ("TCP", (f"{ip}:53",)),
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
