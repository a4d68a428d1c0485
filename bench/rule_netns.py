"""Three private network namespaces for the rule-scaling bench: a client pod, a node, a server pod.

    client (10.244.1.2) ── veth ── node (rules, 10.244.1.1) ── veth ── server (10.244.1.3)

The node namespace holds kube-proxy's rules, as a cluster node does: the
client's connection to a ClusterIP is routed to the node, translated in
PREROUTING and forwarded to the server pod, the path a pod-to-Service
connection takes. Everything lives in namespaces this module creates, and
deleting them takes the rules, the nft table, the veths and the forwarding
sysctl with them: the host's own tables and interfaces are never written.

The names are `rulebench-<pid>-…`, deliberately not the lab's `cip-`: a lab
running meanwhile neither counts them as its leftovers nor removes them
(`python -m lab down` deletes every `cip-` namespace), and the bench never
touches the lab's. A run that was killed leaves namespaces whose pid is
gone; the next run deletes those (`remove_orphans`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "rulebench-"
NODE_IP = "10.244.1.1"
CLIENT_IP = "10.244.1.2"
SERVER_IP = "10.244.1.3"
# The node's ends of the veths: `cip…`, so the lab's rules (`-i cip+`, `iifname "cip*"`)
# treat them as pod interfaces. They exist only inside the node namespace.
NODE_TO_CLIENT = "cipclient"
NODE_TO_SERVER = "cipserver"


class TopologyError(RuntimeError):
    pass


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise TopologyError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def bench_netns() -> list[str]:
    """Every rule-bench namespace that exists now, this run's or a killed run's."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    return [name for name in names if name.startswith(PREFIX)]


def remove_orphans() -> list[str]:
    """Delete the namespaces of runs whose process is gone; returns their names."""
    gone = []
    for name in bench_netns():
        pid = name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            Topology(name, name, name).delete()
            gone.append(name)
    return gone


@dataclass(frozen=True)
class Topology:
    node: str
    client: str
    server: str

    @classmethod
    def named(cls, tag: str) -> Topology:
        base = f"{PREFIX}{os.getpid()}-{tag}"
        return cls(node=f"{base}-node", client=f"{base}-client", server=f"{base}-server")

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.node, self.client, self.server)

    def create(self) -> None:
        """Make the three namespaces and wire them; on any failure, remove what was made."""
        try:
            for name in self.names:
                _ip("netns", "add", name)
            for pod, iface, pod_ip in (
                (self.client, NODE_TO_CLIENT, CLIENT_IP),
                (self.server, NODE_TO_SERVER, SERVER_IP),
            ):
                veth = ("type", "veth", "peer", "eth0", "netns", pod)
                _ip("-n", self.node, "link", "add", iface, *veth)
                # The node's end holds the gateway address, as the CNI ptp plugin sets it up.
                _ip("-n", self.node, "addr", "add", f"{NODE_IP}/32", "dev", iface)
                _ip("-n", self.node, "link", "set", iface, "up")
                _ip("-n", self.node, "route", "add", f"{pod_ip}/32", "dev", iface)
                _ip("-n", pod, "addr", "add", f"{pod_ip}/32", "dev", "eth0")
                _ip("-n", pod, "link", "set", "lo", "up")
                _ip("-n", pod, "link", "set", "eth0", "up")
                _ip("-n", pod, "route", "add", f"{NODE_IP}/32", "dev", "eth0")
                _ip("-n", pod, "route", "add", "default", "via", NODE_IP, "dev", "eth0")
            _ip("-n", self.node, "link", "set", "lo", "up")
            # Per namespace: the host's own ip_forward is not touched.
            self.exec_run(self.node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        except BaseException:
            self.delete()
            raise

    def exec_argv(self, name: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", name, *argv]

    def exec_run(
        self, name: str, argv: Sequence[str], timeout: float = 600, cwd: Path | None = None
    ) -> str:
        done = subprocess.run(
            self.exec_argv(name, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
        if done.returncode != 0:
            raise TopologyError(
                f"in {name}: {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done.stdout

    def delete(self) -> None:
        """Stop what still runs in the namespaces (by pid) and delete them; idempotent."""
        existing = set(bench_netns())
        for name in dict.fromkeys(self.names):
            if name not in existing:
                continue
            pids = subprocess.run(
                ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                done = subprocess.run(
                    ["ip", "netns", "del", name], capture_output=True, text=True, check=False
                )
                if done.returncode == 0:
                    break
                time.sleep(0.1)
