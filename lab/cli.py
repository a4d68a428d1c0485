"""`python -m lab` up, down, check, rules, kill, the network faults netem, partition,
heal, faults (lab/faultcli.py), and the Kubernetes API server for the real kubectl on its
own: apiserver, kubeconfig (lab/api/cli.py). Everything kubectl can do, kubectl does:
the lab's context is `clusterip-lab`.

`rules` prints kube-proxy's rules of the running lab's proxy mode.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lab import faultcli, up
from lab.api import cli as api_cli
from lab.control import ControlError, request
from lab.controlplane import remove as remove_control_plane
from lab.iptables import IptablesError, in_netns
from lab.kubeproxy.proxier import MODES, ProxyError, make_mode
from lab.manifests import DEFAULT_KUSTOMIZE_DIR
from lab.naming import MAX_NODES, WORKDIR_PREFIX
from lab.network import cleanup, leftovers
from lab.node.place import find_place, places
from lab.state import LabBusy, Lock, read_state, stop_running_lab


def preflight(proxy_mode: str = "iptables") -> None:
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (network namespaces, iptables): run `sudo make lab`")
    tools = [("ip", "iproute2"), ("iptables", "iptables"), ("kubectl", "kubectl")]
    if proxy_mode == "nftables":
        tools.append(("nft", "nftables"))
    for tool, package in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (it comes with {package})")


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"{host}:{port} is taken ({exc.strerror}): choose another with --port"
            ) from None


def _cleanup_previous() -> None:
    state = read_state()
    workdirs = [Path(p) for p in [state.get("workdir")] if p]
    workdirs += list(Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"))
    removed = cleanup(bool(state.get("etc_netns_created")), workdirs)
    if state.get("kubeconfig") and state.get("api_dir"):
        removed += remove_control_plane(Path(state["kubeconfig"]), Path(state["api_dir"]))
    if removed:
        print(f"lab: removed {len(removed)} leftovers of a previous lab:", flush=True)
        for item in removed[:40]:
            print(f"  {item}", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    preflight(args.proxy_mode)
    return up.cmd_up(args, _cleanup_previous, _check_port)


def cmd_down(args: argparse.Namespace) -> int:
    preflight()
    pid = stop_running_lab(timeout=args.timeout)
    if pid:
        print(f"lab: stopped the running lab (pid {pid})")
    lock = Lock()
    try:
        lock.acquire(wait=10)
    except LabBusy as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 3
    try:
        _cleanup_previous()
    finally:
        lock.release(remove_state_dir=True)
    left = {k: v for k, v in leftovers().items() if v}
    if left:
        print(f"lab: still left: {json.dumps(left, indent=2)}", file=sys.stderr)
        return 1
    print("lab: nothing of the lab is left.")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    left = leftovers()
    print(json.dumps(left, indent=2))
    return 1 if any(left.values()) else 0


def _ask(cmd: str, **fields: Any) -> Any:
    try:
        return request(cmd, **fields)
    except ControlError as exc:
        raise SystemExit(f"lab: {exc}") from None


def cmd_rules(args: argparse.Namespace) -> int:
    """The running lab's kube-proxy rules, as `iptables -t nat -S` / `nft list table` print them."""
    status = _ask("status")
    try:
        mode = make_mode(args.proxy_mode or status.get("proxy_mode", "iptables"))
    except (ProxyError, IptablesError) as exc:
        raise SystemExit(f"lab: {exc}") from None
    netns = _node_netns(status, args.node)
    for argv in mode.rules_commands():
        done = subprocess.run(
            [*in_netns(netns), *argv], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"lab: {' '.join(argv)}: {done.stderr.strip()}")
        lines = done.stdout.splitlines()
        if argv[0] != getattr(mode, "nft_bin", None):
            lines = [line for line in lines if "CIP-" in line]  # the host's own rules stay out
        try:
            print(f"# {' '.join(argv)}", flush=True)
            print("\n".join(lines), flush=True)
        except BrokenPipeError:
            # `lab rules | head`: the reader has what it wanted; no traceback on exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    return 0


def _node_netns(status: dict[str, object], node: str | None) -> str | None:
    """The namespace of the node asked for (node 1 by default); None: the host, the
    one-node lab's node."""
    nodes = status.get("nodes") or []
    assert isinstance(nodes, list)
    try:
        return find_place(places(max(len(nodes), 1)), node or "1").netns
    except KeyError as exc:
        raise SystemExit(f"lab: {exc.args[0]}") from None


def cmd_node(args: argparse.Namespace) -> int:
    result = _ask("node", action=args.action, node=args.node)
    print(f"lab: {result['message']}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    result = _ask("kill", pod=args.pod, container=args.container, signal=args.signal)
    print(f"lab: sent {result['signal']} to pid {result['pid']}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    _add_up(sub)
    _add_others(sub)
    faultcli.add_parsers(sub)
    api_cli.add_parsers(sub)
    return top


def _add_up(sub: Any) -> None:
    up = sub.add_parser("up", help="bring the app up in network namespaces; Ctrl-C stops it")
    up.add_argument(
        "-k", "--kustomize", help=f"kustomize directory (default {DEFAULT_KUSTOMIZE_DIR})"
    )
    up.add_argument("-f", "--filename", help="already rendered manifests instead of -k")
    up.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("LAB_PORT", "8080")),
        help="forward this local port to the frontend Service (0: none)",
    )
    up.add_argument("--address", default="127.0.0.1")
    up.add_argument("--forward-service", default="frontend")
    up.add_argument(
        "--min-sync-period",
        type=float,
        default=1.0,
        help="kube-proxy's --iptables-min-sync-period (seconds)",
    )
    up.add_argument(
        "--proxy-mode",
        choices=MODES,
        default=os.environ.get("PROXY_MODE") or "iptables",
        help="kube-proxy's --proxy-mode: iptables (default) or nftables",
    )
    up.add_argument(
        "--nodes",
        type=int,
        choices=range(1, MAX_NODES + 1),
        default=int(os.environ.get("NODES") or 3),
        metavar=f"1..{MAX_NODES}",
        help="how many nodes (default 3), each a network namespace; 1: the host is the node",
    )
    up.add_argument("--ready-timeout", type=float, default=180.0)
    up.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="wait this long for another lab on this machine to stop",
    )
    up.add_argument(
        "--runtime",
        choices=["auto", "images", "process"],
        default=os.environ.get("LAB_RUNTIME", "auto"),
        help="frontend/backend from their images through a container engine (auto: when one "
        "answers), or as processes from this checkout",
    )
    up.add_argument("-q", "--quiet", action="store_true", help="do not print events")
    up.add_argument(
        "--no-network-policies",
        action="store_true",
        help="accept NetworkPolicies but do not enforce them (a CNI without policy)",
    )
    up.set_defaults(func=cmd_up)


def _add_others(sub: Any) -> None:
    down = sub.add_parser("down", help="stop a running lab and remove every trace of one")
    down.add_argument("--timeout", type=float, default=60.0)
    down.set_defaults(func=cmd_down)

    check = sub.add_parser("check", help="list what of the lab exists now (exit 1 if anything)")
    check.set_defaults(func=cmd_check)

    rules = sub.add_parser("rules", help="kube-proxy's rules as the kernel holds them now")
    rules.add_argument("--proxy-mode", choices=MODES, help="default: the running lab's mode")
    rules.add_argument("--node", help="which node's rules, of a lab with several (name or number)")
    rules.set_defaults(func=cmd_rules)

    node = sub.add_parser("node", help="stop or start a node of a lab with several")
    node.add_argument("action", choices=["stop", "start"])
    node.add_argument("node", help="its name (lab-node-2) or number (2)")
    node.set_defaults(func=cmd_node)

    kill = sub.add_parser("kill", help="signal a pod's container process (default SIGKILL)")
    kill.add_argument("pod")
    kill.add_argument("-c", "--container")
    kill.add_argument("-s", "--signal", default="KILL")
    kill.set_defaults(func=cmd_kill)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)
