"""The cluster DNS: what kube-dns answers, as dnsmasq's records and command line.

kube-dns was dnsmasq in front of a small server that watched the API; here
the lab's DNS controller (lab/controllers/dns.py) plays the watcher and
writes dnsmasq's files, and a pod in `kube-system` labelled `k8s-app:
kube-dns` runs Debian's dnsmasq behind the Service `kube-dns`, ClusterIP
10.96.0.10, ports 53/UDP and 53/TCP, reached through kube-proxy's rules like
every other Service. Pods find it through the resolv.conf the kubelet writes.

What it answers, as the Kubernetes DNS specification says:
- `<svc>.<ns>.svc.cluster.local` A → the ClusterIP;
- a headless Service: A → every ready endpoint's IP; a StatefulSet pod (hostname
  = its name, subdomain = the governing Service) also as
  `<pod>.<svc>.<ns>.svc.cluster.local`, other endpoints as `<a-b-c-d>.<svc>…`;
- SRV `_<port>._<proto>.<svc>.<ns>.svc.cluster.local` for each named port →
  `<svc>.<ns>.svc.cluster.local:<port>` (headless: each ready endpoint's name);
- nothing else: any other name is NXDOMAIN, and dnsmasq has no upstream
  server at all, so no query ever leaves the machine.

How dnsmasq learns of changes: A records are in a file of the `--hostsdir`
directory, which dnsmasq watches with inotify and re-reads on its own (no
restart, no signal). SRV records can only come from its configuration
(`srv-host=`), which it reads once: they are in their own conf file, and the
DNS pod's nanny (lab/dnsnanny.py, as kube-dns's dnsmasq-nanny did) restarts
dnsmasq when that file changes. For Services with a ClusterIP the SRV records
never change while the lab runs (Services cannot change); only a headless
Service's ready endpoints move them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLUSTER_DOMAIN = "cluster.local"
DNS_NAMESPACE = "kube-system"
DNS_SERVICE = "kube-dns"
DNS_CLUSTER_IP = "10.96.0.10"
# The label a kubeadm cluster's DNS pods carry (CoreDNS's too), which
# NetworkPolicies such as k8s/'s allow-dns-egress select.
DNS_LABELS = {"k8s-app": "kube-dns"}
# What the lab's stand-in for kube-dns's dnsmasq container is called: the runtime
# runs Debian's dnsmasq under lab/dnsnanny.py for it.
DNS_IMAGE = "registry.k8s.io/dns/k8s-dns-dnsmasq-nanny:1.23.1"
# kube-dns's and CoreDNS's (kubeadm's Corefile) TTL for cluster names.
TTL = 30
HOSTS_FILE = "cluster.hosts"


def resolv_conf(namespace: str, nameserver: str = DNS_CLUSTER_IP) -> str:
    """A pod's /etc/resolv.conf, as the kubelet writes it for dnsPolicy: ClusterFirst."""
    return (
        f"search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
        f"nameserver {nameserver}\n"
        "options ndots:5\n"
    )


@dataclass(frozen=True)
class DnsPort:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class DnsEndpoint:
    """One ready endpoint of a Service; hostname only when the pod's subdomain is the Service."""

    ip: str
    hostname: str | None
    ports: tuple[DnsPort, ...]  # the endpoint's own (target) ports, by the Service port's name


@dataclass(frozen=True)
class DnsService:
    name: str
    namespace: str
    cluster_ip: str | None  # None: headless
    ports: tuple[DnsPort, ...]
    endpoints: tuple[DnsEndpoint, ...] = ()


@dataclass(frozen=True)
class Srv:
    name: str
    target: str
    port: int
    priority: int = 0
    weight: int = 100


@dataclass(frozen=True)
class Records:
    hosts: tuple[tuple[str, str], ...]  # (ip, name), sorted
    srv: tuple[Srv, ...]

    def names(self) -> dict[str, list[str]]:
        """name → its addresses, for tests and for the lab's status."""
        found: dict[str, list[str]] = {}
        for ip, name in self.hosts:
            found.setdefault(name, []).append(ip)
        return found


def service_fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def _srv_name(port: DnsPort, fqdn: str) -> str:
    return f"_{port.name}._{port.protocol.lower()}.{fqdn}"


def _endpoint_name(ep: DnsEndpoint, fqdn: str) -> str:
    # CoreDNS names an endpoint without a hostname by its dashed address.
    return f"{ep.hostname or ep.ip.replace('.', '-')}.{fqdn}"


def records(services: Iterable[DnsService]) -> Records:
    hosts: set[tuple[str, str]] = set()
    srv: list[Srv] = []
    for svc in services:
        fqdn = service_fqdn(svc.name, svc.namespace)
        named = [p for p in svc.ports if p.name]
        if svc.cluster_ip is not None:
            hosts.add((svc.cluster_ip, fqdn))
            srv += [Srv(_srv_name(p, fqdn), fqdn, p.port) for p in named]
            continue
        for ep in svc.endpoints:
            hosts.add((ep.ip, fqdn))
            hosts.add((ep.ip, _endpoint_name(ep, fqdn)))
        for port in named:
            targets = [
                (_endpoint_name(ep, fqdn), p.port)
                for ep in svc.endpoints
                for p in ep.ports
                if (p.name, p.protocol) == (port.name, port.protocol)
            ]
            # CoreDNS shares a weight of 100 among the records of one priority.
            weight = max(1, 100 // len(targets)) if targets else 100
            srv += [Srv(_srv_name(port, fqdn), t, n, 0, weight) for t, n in targets]
    return Records(
        tuple(sorted(hosts, key=lambda h: (h[1], h[0]))),
        tuple(sorted(srv, key=lambda s: (s.name, s.target, s.port))),
    )


def hosts_text(recs: Records) -> str:
    """The --hostsdir file: one `address name` line per A record."""
    lines = ["# The cluster's A records, written by the lab's DNS controller."]
    lines += [f"{ip} {name}" for ip, name in recs.hosts]
    return "\n".join(lines) + "\n"


def srv_conf(recs: Records) -> str:
    """The conf file dnsmasq reads at start: one srv-host line per SRV record."""
    lines = ["# The cluster's SRV records, written by the lab's DNS controller."]
    lines += [f"srv-host={s.name},{s.target},{s.port},{s.priority},{s.weight}" for s in recs.srv]
    return "\n".join(lines) + "\n"


def dnsmasq_args(hosts_dir: Path, srv_file: Path, listen: str = "$(POD_IP)") -> list[str]:
    """dnsmasq's command line in the DNS pod (`$(POD_IP)` is expanded by the kubelet)."""
    return [
        "--keep-in-foreground",  # the kubelet (and the nanny) supervise it
        "--log-facility=-",  # to stderr: the pod's log
        "--log-queries",  # each lookup in `kubectl logs`: the lesson is in them
        f"--listen-address={listen}",
        "--bind-interfaces",  # that address only, not every interface of the pod
        "--port=53",
        "--no-hosts",  # not the node's /etc/hosts
        "--no-resolv",  # not the node's resolv.conf: no upstream server at all
        "--no-poll",
        "--pid-file=",  # none: it is the container's main process
        "--user=nobody",  # binds port 53 as root, then drops to nobody
        "--group=nogroup",
        f"--hostsdir={hosts_dir}",  # A records; re-read by inotify on every change
        f"--conf-file={srv_file}",  # SRV records; read at start (the nanny restarts it)
        f"--local=/{CLUSTER_DOMAIN}/",  # cluster.local: what is not in the records is NXDOMAIN
        "--address=/#/",  # every other domain too: nothing is forwarded anywhere
        "--bogus-priv",  # and no reverse lookups of private ranges beyond the records
        f"--local-ttl={TTL}",
        "--no-negcache",  # a Service that gets its first endpoint resolves at once
    ]


def system_documents(hosts_dir: Path, srv_file: Path) -> list[dict[str, object]]:
    """The kube-dns Service and Deployment, as a cluster has them in kube-system."""
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
    ]
    container = {
        "name": "dnsmasq",
        "image": DNS_IMAGE,
        "args": ["--watch", str(srv_file), "--", *dnsmasq_args(hosts_dir, srv_file)],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
        ],
        "readinessProbe": {"tcpSocket": {"port": 53}, "periodSeconds": 2},
        # kube-dns's numbers for its dnsmasq container.
        "resources": {
            "requests": {"cpu": "150m", "memory": "20Mi"},
            "limits": {"memory": "170Mi"},
        },
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE, "labels": DNS_LABELS},
            "spec": {"clusterIP": DNS_CLUSTER_IP, "selector": DNS_LABELS, "ports": ports},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": DNS_SERVICE, "namespace": DNS_NAMESPACE, "labels": DNS_LABELS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": DNS_LABELS},
                "template": {
                    "metadata": {"labels": DNS_LABELS},
                    "spec": {"containers": [container], "terminationGracePeriodSeconds": 5},
                },
            },
        },
    ]
