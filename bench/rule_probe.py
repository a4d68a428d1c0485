"""What the rule-scaling bench runs in its netns (`ip netns exec NS python -m bench.rule_probe`).

    serve   --port P                   the server pod: accept and close, until SIGTERM
    sync    --mode M --services N …    the node: kube-proxy's full syncs, timed; JSON on stdout
    connect --service IP:P --pod IP:P  the client pod: fresh TCP connects, timed; JSON on stdout

The rules come from the lab's own renderers and proxy modes (lab/kubeproxy/
iptables.py, nftables.py, proxier.py): the bench measures what the lab writes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from lab.iptables import Iptables
from lab.kubeproxy import nftables
from lab.kubeproxy.iptables import SERVICES as SERVICES_CHAIN
from lab.kubeproxy.model import (
    Apply,
    Endpoint,
    ProxyMode,
    ProxyState,
    ServicePortRules,
    sep_chain,
)
from lab.kubeproxy.proxier import make_mode

NAMESPACE = "rulebench"
# The measured Service sorts after every filler ("measured" > "filler-…"): the lab
# renders CIP-SERVICES in name order, so its rule is the last one a SYN is matched against.
MEASURED = f"{NAMESPACE}/measured:http"
MEASURED_IP = "10.96.0.100"
SERVICE_PORT = 80
SERVER_PORT = 8080
# Filler Services: ClusterIPs from 10.100.0.0 (inside the 10.96.0.0/12 Service
# range), endpoints from 10.244.128.0 (the pod range; nothing answers there,
# nothing is sent there).
FILLER_IP_BASE = int(ipaddress.ip_address("10.100.0.0"))
FILLER_POD_BASE = int(ipaddress.ip_address("10.244.128.0"))
ENDPOINTS_PER_SERVICE = 2


def _endpoint(ip: str, port: int, pod: str) -> Endpoint:
    return Endpoint(ip=ip, port=port, pod=pod, ready=True, serving=True, terminating=False)


def filler(i: int, generation: int = 0) -> ServicePortRules:
    """Filler Service i; a new `generation` moves its first endpoint (a pod replaced)."""
    pods = []
    for k in range(ENDPOINTS_PER_SERVICE):
        offset = i * ENDPOINTS_PER_SERVICE + k
        if k == 0 and generation:
            # Past every filler's first endpoints (5,000 Services use 10,000 addresses),
            # still inside 10.244.128.0/17: a fresh address per generation.
            offset = 20_000 + generation % 10_000
        ip = str(ipaddress.ip_address(FILLER_POD_BASE + offset))
        pods.append(_endpoint(ip, 8080, f"filler-{i}-{k}"))
    return ServicePortRules(
        port_name=f"{NAMESPACE}/filler-{i:05d}:http",
        cluster_ip=str(ipaddress.ip_address(FILLER_IP_BASE + i)),
        port=SERVICE_PORT,
        protocol="TCP",
        endpoints=tuple(pods),
    )


def measured(server_ip: str) -> ServicePortRules:
    return ServicePortRules(
        port_name=MEASURED,
        cluster_ip=MEASURED_IP,
        port=SERVICE_PORT,
        protocol="TCP",
        endpoints=(_endpoint(server_ip, SERVER_PORT, "server"),),
    )


def kube_proxy_part(mode: str, applies: Sequence[Apply]) -> tuple[list[Apply], list[Apply]]:
    """(what kube-proxy itself runs for a full sync, the rest).

    iptables mode: one `iptables-restore --noflush` with the nat and filter
    tables together, as kube-proxy's syncProxyRules writes them (the lab runs
    two). nftables mode: the `nft -f` transaction, the mode's only command.
    """
    if mode == "iptables":
        return [Apply(applies[0].argv, "".join(a.text for a in applies))], []
    return [applies[0]], list(applies[1:])


def _run(apply: Apply) -> float:
    """Run one command of a sync; its wall time in ms (process start included, as kube-proxy's)."""
    started = time.perf_counter()
    done = subprocess.run(
        list(apply.argv), input=apply.text, capture_output=True, text=True, timeout=600, check=False
    )
    took = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(apply.argv)} failed: {done.stderr.strip()[:2000]}")
    return took


def _sync(mode: ProxyMode, state: ProxyState) -> tuple[float, float, int]:
    """One full sync: (render ms, apply ms, lines of kube-proxy's input)."""
    started = time.perf_counter()
    now = time.monotonic()
    applies = mode.render(state, now)
    render_ms = (time.perf_counter() - started) * 1000
    timed, rest = kube_proxy_part(mode.name, applies)
    apply_ms = sum(_run(a) for a in timed)
    for apply in rest:
        _run(apply)
    mode.applied(applies, now)
    return render_ms, apply_ms, sum(a.text.count("\n") for a in timed)


def _line_chain(line: str) -> str | None:
    """The chain an iptables-restore or nft line writes to, if any."""
    words = line.split()
    if line.startswith(":"):
        return words[0][1:]
    if line.startswith(("-A ", "-X ")):
        return words[1]
    if line.startswith((f"add chain {nftables.T} ", f"add rule {nftables.T} ")):
        return words[4]
    return None


def partial(mode: str, timed: Apply, chains: set[str]) -> Apply:
    """kube-proxy's usual sync: only what changed, cut from the full sync's text.

    iptables mode (MinimizeIPTablesRestore): the whole CIP-SERVICES chain, the
    changed Service's chains, the deletion of its stale endpoint chain, and
    the filter table (small) as it is. nftables mode: the changed Service's
    chains, flushed and written again; the stale endpoint chain is only
    flushed (kube-proxy deletes it a sync later). Nothing else is sent: the
    map entry still points at the same Service chain.
    """
    if mode == "iptables":
        keep, table = [], ""
        for line in timed.text.splitlines():
            if line.startswith("*"):
                table = line
            chain = _line_chain(line)
            # The filter table is small: kube-proxy writes it whole. The stale endpoint
            # chain is among `chains`: declared (emptied), then deleted by its `-X` line.
            if table == "*filter" or chain is None or chain in chains or chain == SERVICES_CHAIN:
                keep.append(line)
        return Apply(timed.argv, "\n".join(keep) + "\n")
    lines = [f"flush chain {nftables.T} {c}" for c in sorted(chains)]
    lines += [
        line
        for line in timed.text.splitlines()
        if (chain := _line_chain(line)) in chains and not line.startswith("flush ")
    ]
    # The flushes must come after the chains exist (a new endpoint's chain is new).
    adds = [line for line in lines if line.startswith("add chain ")]
    rules = [line for line in lines if not line.startswith("add chain ")]
    return Apply(timed.argv, "\n".join(adds + rules) + "\n")


def _chains_of(mode: str, spr: ServicePortRules) -> set[str]:
    """The Service and endpoint chains of one Service port, as this mode names them."""
    if mode == "iptables":
        eps = {sep_chain(spr.port_name, spr.protocol, f"{e.ip}:{e.port}") for e in spr.endpoints}
        return {spr.svc_chain, *eps}
    eps = {nftables.endpoint_chain(spr, e.ip, e.port) for e in spr.endpoints}
    return {nftables.service_chain(spr), *eps}


def _check_moved(mode: str, old: ServicePortRules, new: ServicePortRules) -> None:
    """The kernel sends the changed Service to its new endpoint, no longer to the old one:
    a partial sync that left something out fails the bench instead of timing less work."""
    if mode == "iptables":
        listing = Iptables().run("-t", "nat", "-S").stdout
        to = "--to-destination {}:{}"
    else:
        listing = subprocess.run(
            ["nft", "list", "table", nftables.FAMILY, nftables.TABLE],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        to = "dnat to {}:{}"
    gone, came = old.endpoints[0], new.endpoints[0]
    if to.format(came.ip, came.port) not in listing or to.format(gone.ip, gone.port) in listing:
        raise SystemExit(f"{mode}: the partial sync did not move {new.port_name}'s endpoint")


def sync(mode_name: str, services: int, resyncs: int, server_ip: str) -> dict[str, object]:
    mode = make_mode(mode_name)
    fillers = [filler(i) for i in range(services)]
    state = ProxyState(ports=(*fillers, measured(server_ip)))
    initial_render, initial_apply, lines = _sync(mode, state)
    # Hooks after the first sync: a jump needs its target chain to exist.
    Iptables().install_hooks(mode.hooks)
    render_ms, apply_ms, partial_ms = [], [], []
    for generation in range(1, resyncs + 1):
        # One endpoint changes (a pod of one filler Service replaced), then a full sync.
        i = generation % services
        fillers[i] = filler(i, generation)
        state = ProxyState(ports=(*fillers, measured(server_ip)))
        r, a, _ = _sync(mode, state)
        render_ms.append(r)
        apply_ms.append(a)
    for generation in range(resyncs + 1, 2 * resyncs + 1):
        # The same change, applied as kube-proxy applies most changes: only what changed.
        i = generation % services
        old = fillers[i]
        fillers[i] = filler(i, generation)
        state = ProxyState(ports=(*fillers, measured(server_ip)))
        now = time.monotonic()
        applies = mode.render(state, now)
        timed, _ = kube_proxy_part(mode.name, applies)
        changed = _chains_of(mode_name, old) | _chains_of(mode_name, fillers[i])
        partial_ms.append(_run(partial(mode_name, timed[0], changed)))
        mode.applied(applies, now)
    if resyncs:
        _check_moved(mode_name, old=old, new=fillers[i])
    return {
        "lines": lines,
        "initial_render_ms": initial_render,
        "initial_apply_ms": initial_apply,
        "render_ms": render_ms,
        "apply_ms": apply_ms,
        "partial_ms": partial_ms,
    }


def _connect_us(target: tuple[str, int]) -> float:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Close with a reset: no TIME_WAIT, so thousands of connects never run out of ports.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        started = time.perf_counter_ns()
        sock.connect(target)  # returns once the SYN-ACK is back: the set-up time
        return (time.perf_counter_ns() - started) / 1000
    finally:
        sock.close()


def connect(
    service: tuple[str, int], pod: tuple[str, int], count: int, warmup: int
) -> dict[str, list[float]]:
    """Fresh connections to the ClusterIP and, interleaved, straight to the pod's address."""
    for _ in range(warmup):
        _connect_us(service)
        _connect_us(pod)
    via_service, direct = [], []
    for _ in range(count):
        via_service.append(_connect_us(service))
        direct.append(_connect_us(pod))
    return {"service_us": via_service, "pod_us": direct}


def serve(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(4096)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening", flush=True)
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            continue  # reset before it was accepted
        conn.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rule_probe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--port", type=int, default=SERVER_PORT)
    p_sync = sub.add_parser("sync")
    p_sync.add_argument("--mode", required=True)
    p_sync.add_argument("--services", type=int, required=True)
    p_sync.add_argument("--resyncs", type=int, required=True)
    p_sync.add_argument("--server-ip", required=True)
    p_connect = sub.add_parser("connect")
    p_connect.add_argument("--service", type=_address, required=True)
    p_connect.add_argument("--pod", type=_address, required=True)
    p_connect.add_argument("--count", type=int, required=True)
    p_connect.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port)
        return 0
    result: Mapping[str, object]
    if args.command == "sync":
        result = sync(args.mode, args.services, args.resyncs, args.server_ip)
    else:
        result = connect(args.service, args.pod, args.count, args.warmup)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
