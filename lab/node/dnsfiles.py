"""The cluster DNS's records as files: what kube-dns's watcher did for its dnsmasq.

On every pass the records (lab/dns.py) are computed from the Services and their
EndpointSlices; the files the DNS pod's dnsmasq reads are rewritten only when they
changed. A file is written beside its directory and renamed in, so dnsmasq's inotify
never sees half of one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lab import dns


def _write(path: Path, text: str) -> None:
    # Outside the watched directory, then renamed in: one event, the whole file.
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    tmp.chmod(0o644)  # dnsmasq re-reads it as nobody
    os.replace(tmp, path)


class DnsFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hosts_dir = directory / "hosts"
        self.srv_file = directory / "srv" / "srv.conf"
        self.records: dns.Records | None = None

    def prepare(self) -> None:
        """The directories and empty files, before the DNS pod starts and reads them."""
        for path in (self.directory, self.hosts_dir, self.srv_file.parent):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o755)
        self.sync([])

    def sync(self, services: Sequence[dns.DnsService]) -> bool:
        """Rewrite what changed; True when the SRV records did (dnsmasq restarts for them)."""
        recs = dns.records(list(services))
        old = self.records
        if old == recs:
            return False
        self.records = recs
        if old is None or old.hosts != recs.hosts:
            _write(self.hosts_dir / dns.HOSTS_FILE, dns.hosts_text(recs))
        srv_changed = old is None or old.srv != recs.srv
        if srv_changed:
            _write(self.srv_file, dns.srv_conf(recs))
        return srv_changed and old is not None

    def addon(self) -> list[dict[str, object]]:
        """The kube-dns Deployment, created in kube-system as kubeadm's DNS add-on is."""
        docs = dns.system_documents(self.hosts_dir, self.srv_file)
        return [d for d in docs if d["kind"] == "Deployment"]
