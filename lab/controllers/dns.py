"""The DNS controller: the API server's Services and endpoints → dnsmasq's files.

What kube-dns's watcher did: on every pass it computes the records
(lab/dns.py) and, when they changed, rewrites the files the DNS pod's
dnsmasq reads. A file is written beside its directory and renamed in, so
dnsmasq's inotify never sees half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

from lab import dns
from lab.apiserver import ApiServer
from lab.controllers.endpointslice import selected_pods, target_port
from lab.kubelet import Pod
from lab.manifests import Service


def _hostname(pod: Pod, svc: Service) -> str | None:
    """A pod's hostname counts for a Service whose name is the pod's subdomain."""
    wl = pod.workload
    if wl.kind == "StatefulSet" and wl.service_name == svc.name:
        return pod.name
    return None


def view(api: ApiServer) -> list[dns.DnsService]:
    """The Services as the DNS sees them: ClusterIPs, and ready endpoints of headless ones."""
    found = []
    for svc in api.services():
        ports = tuple(dns.DnsPort(p.name, p.protocol, p.port) for p in svc.ports)
        cluster_ip = api.cluster_ip(svc)
        endpoints: list[dns.DnsEndpoint] = []
        if cluster_ip is None:
            for pod in selected_pods(svc, api.pods.values()):
                if not pod.ready:
                    continue  # publishNotReadyAddresses is false
                own = []
                for p in svc.ports:
                    number = target_port(p.target_port, pod.template)
                    if number is not None:
                        own.append(dns.DnsPort(p.name, p.protocol, number))
                endpoints.append(dns.DnsEndpoint(pod.ip, _hostname(pod, svc), tuple(own)))
        found.append(dns.DnsService(svc.name, svc.namespace, cluster_ip, ports, tuple(endpoints)))
    return found


def _write(path: Path, text: str) -> None:
    # Outside the watched directory, then renamed in: one event, the whole file.
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    tmp.chmod(0o644)  # dnsmasq re-reads it as nobody
    os.replace(tmp, path)


class DnsController:
    def __init__(self, api: ApiServer, directory: Path) -> None:
        self.api = api
        self.directory = directory
        self.hosts_dir = directory / "hosts"
        self.srv_file = directory / "srv" / "srv.conf"
        self.records: dns.Records | None = None

    def prepare(self) -> None:
        """The directories and empty files, before the DNS pod starts and reads them."""
        for path in (self.directory, self.hosts_dir, self.srv_file.parent):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o755)
        self.sync()

    def sync(self) -> bool:
        """Rewrite what changed; True when the SRV records did (dnsmasq restarts for them)."""
        recs = dns.records(view(self.api))
        old = self.records
        if old == recs:
            return False
        self.records = recs
        if old is None or old.hosts != recs.hosts:
            _write(self.hosts_dir / dns.HOSTS_FILE, dns.hosts_text(recs))
        srv_changed = old is None or old.srv != recs.srv
        if srv_changed:
            _write(self.srv_file, dns.srv_conf(recs))
        self.api.event(
            f"deployment/{dns.DNS_SERVICE}",
            "Records",
            f"{len(recs.names())} names, {len(recs.srv)} SRV records"
            + (" (SRV changed: dnsmasq restarts)" if srv_changed and old is not None else ""),
        )
        return srv_changed and old is not None
