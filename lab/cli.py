"""`python -m lab` up, down, get, rules, kill, delete, scale, rollout-restart, logs, check,
the network faults netem, partition, heal, faults (lab/faultcli.py), and the Kubernetes
API server for the real kubectl: apiserver, kubeconfig (lab/api/cli.py).

`rules` prints kube-proxy's rules of the running lab's proxy mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lab import faultcli, tables
from lab.api import cli as api_cli
from lab.api.kubeconfig import CONTEXT
from lab.checkout import (
    APP_PARTS,
    AppSource,
    blocking_directory,
    interpreter_blocker,
    place_copy,
)
from lab.cluster import Lab, Options
from lab.control import ControlError, ControlServer, request
from lab.controlplane import ControlPlane
from lab.controlplane import remove as remove_control_plane
from lab.engine import detect, project_images
from lab.images import ImageRuntime
from lab.iptables import IptablesError, ServicePortRules
from lab.manifests import DEFAULT_KUSTOMIZE_DIR, REPO, ManifestError, load, parse_text, render
from lab.naming import WORKDIR_PREFIX, svc_chain
from lab.network import IP_FORWARD, NetworkError, cleanup, leftovers
from lab.nftables import FAMILY as NFT_FAMILY
from lab.nftables import TABLE as NFT_TABLE
from lab.nftables import service_chain
from lab.proxier import MODES, ProxyError, make_mode
from lab.state import LabBusy, Lock, read_state, stop_running_lab, write_state


def _python() -> str:
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return str(exe.relative_to(REPO)) if Path.cwd() == REPO else str(exe)
    return str(exe)


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


def _instructions(lab: Lab, status: dict[str, Any]) -> str:
    py = _python()
    lines = []
    if lab.forward is not None:
        svc = lab.options.forward_service
        port = lab.manifests.services[svc].ports[0]
        lines += [
            f"Open http://{lab.forward.listen_host}:{lab.forward.listen_port}/",
            f"  ({lab.forward.listen_host}:{lab.forward.listen_port} → Service {svc} "
            f"{lab.cluster_ips[svc]}:{port.port} → a {svc} pod picked per connection by the"
            " kernel; kubectl port-forward would tunnel to one pod instead)",
            "",
        ]
    backends = [p for p in status["pods"] if p["labels"].get("app.kubernetes.io/name") == "backend"]
    lines.append("Try:")
    if lab.forward is not None:
        base = f"http://{lab.forward.listen_host}:{lab.forward.listen_port}"
        lines.append(f"  the spread view:         {base}/spread")
    if backends and backends[0]["containers"] and backends[0]["containers"][0]["pid"]:
        victim = backends[0]
        lines.append(
            f"  kill a backend pod:      sudo kill -9 {victim['containers'][0]['pid']}"
            f"    # {victim['name']}"
        )
    lines.append(f"  watch pods and Services: sudo {py} -m lab get all")
    lines.append(f"  kube-proxy's rules:      sudo {py} -m lab rules")
    backend_svc = lab.manifests.services.get("backend")
    if backend_svc is not None and backend_svc.ports and lab.proxier.mode.name == "iptables":
        chain = svc_chain(backend_svc.port_name(backend_svc.ports[0]), "TCP")
        lines.append(
            "                           sudo iptables -t nat -S CIP-SERVICES   # iptables mode"
        )
        lines.append(f"                           sudo iptables -t nat -S {chain}   # backend")
    elif backend_svc is not None and backend_svc.ports:
        port = backend_svc.ports[0]
        rules = ServicePortRules(backend_svc.port_name(port), "", port.port, port.protocol)
        lines.append(
            f"                           sudo nft list map {NFT_FAMILY} {NFT_TABLE} service-ips"
        )
        lines.append(
            f"                           sudo nft list chain {NFT_FAMILY} {NFT_TABLE} "
            f"'{service_chain(rules)}'   # backend"
        )
    frontends = [
        p for p in status["pods"] if p["labels"].get("app.kubernetes.io/name") == "frontend"
    ]
    if frontends:
        lines.append(
            f"  resolve like a pod:      sudo ip netns exec {frontends[0]['netns']} "
            "getent hosts backend"
        )
    if lab.policies:
        lines.append("  the NetworkPolicies:     sudo iptables -S CIP-NETPOL")
    lines.append(f"  a rolling restart:       sudo {py} -m lab rollout-restart deployment/backend")
    lines.append(f"  stop Redis:              sudo {py} -m lab scale deployment/redis --replicas 0")
    lines.append(
        f"  stop MySQL:              sudo {py} -m lab scale statefulset/mysql --replicas 0"
    )
    lines.append(f"  slow Redis's link:       sudo {py} -m lab netem redis --delay 300ms")
    lines.append(f"  partition MySQL:         sudo {py} -m lab partition mysql-0   # then: heal")
    lines.append(f"  a pod's log:             sudo {py} -m lab logs <pod>")
    lines.append("")
    lines.append("Ctrl-C stops the lab and removes everything it added (or: sudo make lab-down).")
    return "\n".join(lines)


async def _serve(lab: Lab, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hits = 0

    def on_signal() -> None:
        nonlocal hits
        hits += 1
        if hits == 1:
            print("\nlab: stopping (Ctrl-C again to hurry)…", flush=True)
        else:
            lab.hurry()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal)
    control = ControlServer(lab)
    forward = None
    try:
        await lab.start()
        await control.start()
        if args.port:
            from lab.portforward import PortForward

            svc = lab.manifests.services.get(args.forward_service)
            if svc is None or not svc.ports:
                raise SystemExit(f"no Service {args.forward_service!r} to forward to")
            forward = PortForward(
                args.address, args.port, lab.cluster_ips[svc.name], svc.ports[0].port
            )
            await forward.start()
            lab.forward = forward
        waiter = asyncio.create_task(lab.wait_ready(args.ready_timeout))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            status = lab.status()
            print("", flush=True)
            print(tables.everything(status), flush=True)
            print("", flush=True)
            if waiter.result():
                print(_instructions(lab, status), flush=True)
            else:
                print(
                    f"lab: not every pod is ready after {args.ready_timeout:g}s; the logs are in "
                    f"{lab.workdir}/pods/<pod>/. Still running: Ctrl-C stops it.",
                    flush=True,
                )
            write_state({**read_state(), "ready": waiter.result()})
        waiter.cancel()
        await stop.wait()
        stopper.cancel()
    finally:
        if forward is not None:
            await forward.stop()
        await control.stop()
        await lab.stop(grace=0.5 if hits > 1 else 3.0)
    return 0


def _image_runtime(choice: str) -> ImageRuntime | None:
    """The engine for the project's images (built when missing), or None: process pods.

    `auto` takes the images where a container engine answers; `images` insists.
    """
    if choice == "process":
        print("lab: frontend and backend run as processes (--runtime process)", flush=True)
        return None
    engine = detect(REPO)
    if engine is None:
        if choice == "images":
            raise SystemExit(
                "lab: --runtime images needs a container engine: start Docker, or "
                "`sudo scripts/docker-engine.sh start` and export DOCKER_HOST"
            )
        print(
            "lab: no container engine answers: frontend and backend run as processes with "
            "this checkout's code and venv, not from their images",
            flush=True,
        )
        return None
    refs = project_images(REPO)
    if not all(engine.has_image(ref) for ref in refs):
        print(f"lab: building {' and '.join(refs)} (make images)", flush=True)
        subprocess.run([str(REPO / "scripts" / "build-images.sh")], check=True)
    print(
        f"lab: frontend and backend run from {', '.join(refs)} through "
        f"`{' '.join(engine.command)}`; mysql and redis run Debian's mariadbd and "
        "redis-server in their pods (the official images cannot be pulled here)",
        flush=True,
    )
    return ImageRuntime(engine)


def _app_source(workdir: Path) -> AppSource | None:
    """For process pods: None when their uid can read this checkout, else a copy it can.

    Why a copy and not the project's engine (scripts/docker-engine.sh), on a machine
    where none runs: the copy takes a second and needs nothing more, where a first
    engine start must build stand-in bases and the app images from the network
    (minutes) and leaves a daemon to stop; docs/lab.md has the measurements.
    """
    blocked = blocking_directory(REPO)
    if blocked is None:
        return None
    interpreter = Path(sys.executable)
    if (hidden := interpreter_blocker(interpreter)) is not None:
        raise SystemExit(
            f"lab: the pods' uid 10001 cannot enter {blocked}, and the copy of the venv "
            f"would still need its interpreter {interpreter.resolve()}, under {hidden} "
            "which that uid cannot enter either: make the venv with the system's python3 "
            "(`rm -rf .venv && make venv PYTHON=/usr/bin/python3`), or start a container "
            "engine (`sudo scripts/docker-engine.sh start`)"
        )
    started = time.monotonic()
    source = place_copy(REPO, workdir)
    print(
        f"lab: the pods' uid 10001 cannot enter {blocked}, so they run from a copy of "
        f"{', '.join(APP_PARTS)} and the venv in {source.root} (hard links where possible, "
        f"{time.monotonic() - started:.1f} s; removed with the lab), rather than starting "
        "the project's container engine, which on a new machine must first build a base "
        "image and both app images (a minute or more; see docs/lab.md)",
        flush=True,
    )
    return source


def _start_control_plane(control_plane: ControlPlane) -> None:
    # Into the state before the file is written: a crash in between leaves nothing behind.
    write_state(
        {
            **read_state(),
            "kubeconfig": str(control_plane.config_path),
            "api_dir": str(control_plane.workdir),
        }
    )
    running = control_plane.start()
    print(
        f"lab: Kubernetes API on {running.url}; context {CONTEXT} in "
        f"{control_plane.config_path} (kubectl --context {CONTEXT} get nodes)",
        flush=True,
    )


def cmd_up(args: argparse.Namespace) -> int:
    preflight(args.proxy_mode)
    try:
        manifests = load(
            Path(args.kustomize) if args.kustomize else None,
            Path(args.filename) if args.filename else None,
        )
    except ManifestError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    if args.port:
        _check_port(args.address, args.port)
    lock = Lock()
    try:
        lock.acquire(wait=args.wait)
    except LabBusy as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 3
    workdir: Path | None = None
    lab: Lab | None = None
    control_plane = ControlPlane()
    forward_before = IP_FORWARD.read_text().strip()
    try:
        _cleanup_previous()
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        # Containers run as their own users and must reach their pod's files.
        workdir.chmod(0o755)
        write_state(
            {
                "pid": os.getpid(),
                "workdir": str(workdir),
                "started_at": time.time(),
                "ip_forward": forward_before,
                "ready": False,
            }
        )
        options = Options(
            forward_host=args.address,
            forward_port=args.port or None,
            forward_service=args.forward_service,
            min_sync_period=args.min_sync_period,
            proxy_mode=args.proxy_mode,
            print_events=not args.quiet,
            network_policies=not args.no_network_policies,
        )
        lab = Lab(manifests, options, workdir)
        lab.images = _image_runtime(args.runtime)
        if lab.images is None:
            lab.app_source = _app_source(workdir)
        print(
            f"lab: namespace {manifests.namespace}, {len(manifests.services)} Services, "
            f"{len(manifests.workloads)} workloads, work dir {workdir}",
            flush=True,
        )
        _start_control_plane(control_plane)
        try:
            lab.setup_network()
        finally:
            write_state({**read_state(), "etc_netns_created": lab.network.etc_netns_created})
        return asyncio.run(_serve(lab, args))
    except (NetworkError, ManifestError, RuntimeError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    finally:
        control_plane.stop()
        created = lab.network.etc_netns_created if lab is not None else False
        cleanup(
            created or bool(read_state().get("etc_netns_created")), [workdir] if workdir else []
        )
        if IP_FORWARD.read_text().strip() != forward_before:
            print("lab: warning: net.ipv4.ip_forward changed while the lab ran", file=sys.stderr)
        lock.release(remove_state_dir=True)
        print("lab: stopped; everything it added is removed.", flush=True)


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


def cmd_get(args: argparse.Namespace) -> int:
    status = _ask("status")
    if args.output == "json":
        print(json.dumps(status, indent=2))
        return 0
    what = {
        "pods": tables.pods,
        "po": tables.pods,
        "svc": tables.services,
        "services": tables.services,
        "endpointslices": tables.endpointslices,
        "eps": tables.endpointslices,
        "all": tables.everything,
    }
    if args.what not in what:
        raise SystemExit(f"lab: get {args.what}? (pods, svc, endpointslices, all)")
    print(what[args.what](status))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    """The running lab's kube-proxy rules, as `iptables -t nat -S` / `nft list table` print them."""
    mode_name = args.proxy_mode or _ask("status").get("proxy_mode", "iptables")
    try:
        mode = make_mode(mode_name)
    except (ProxyError, IptablesError) as exc:
        raise SystemExit(f"lab: {exc}") from None
    for argv in mode.rules_commands():
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"lab: {' '.join(argv)}: {done.stderr.strip()}")
        lines = done.stdout.splitlines()
        if argv[0] != getattr(mode, "nft_bin", None):
            lines = [line for line in lines if "CIP-" in line]  # the host's own rules stay out
        print(f"# {' '.join(argv)}")
        print("\n".join(lines))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    result = _ask("kill", pod=args.pod, container=args.container, signal=args.signal)
    print(f"lab: sent {result['signal']} to pid {result['pid']}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    result = _ask("delete", pod=args.pod, grace=args.grace)
    print(f"pod/{result['deleted']} deleted")
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    result = _ask("scale", workload=args.workload, replicas=args.replicas)
    print(f"{result['scaled'].lower()} scaled to {args.replicas}")
    return 0


def cmd_rollout_restart(args: argparse.Namespace) -> int:
    result = _ask("rollout_restart", workload=args.workload)
    print(f"{result['restarted'].lower()} restarted")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """Render here (kubectl is on this side), parse to catch errors early, send to the lab."""
    try:
        text = render(
            Path(args.kustomize) if args.kustomize else None,
            Path(args.filename) if args.filename else None,
        )
        parse_text(text)
    except ManifestError as exc:
        raise SystemExit(f"lab: {exc}") from None
    result = _ask("apply", manifests=text)
    for change in result["changes"] or ["(no change)"]:
        print(change)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    status = _ask("status")
    pods = [p for p in status["pods"] if p["name"] == args.pod or p["name"].startswith(args.pod)]
    if len(pods) != 1:
        raise SystemExit(f"lab: no single pod matches {args.pod!r}")
    pod = pods[0]
    container = args.container or pod["containers"][0]["name"]
    path = Path(status["workdir"]) / "pods" / pod["name"] / f"{container}.log"
    sys.stdout.write(path.read_text(errors="replace") if path.exists() else "")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

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

    down = sub.add_parser("down", help="stop a running lab and remove every trace of one")
    down.add_argument("--timeout", type=float, default=60.0)
    down.set_defaults(func=cmd_down)

    check = sub.add_parser("check", help="list what of the lab exists now (exit 1 if anything)")
    check.set_defaults(func=cmd_check)

    get = sub.add_parser("get", help="kubectl get: pods, svc, endpointslices, all")
    get.add_argument("what", nargs="?", default="all")
    get.add_argument("-o", "--output", choices=["table", "json"], default="table")
    get.set_defaults(func=cmd_get)

    rules = sub.add_parser("rules", help="kube-proxy's rules as the kernel holds them now")
    rules.add_argument("--proxy-mode", choices=MODES, help="default: the running lab's mode")
    rules.set_defaults(func=cmd_rules)

    kill = sub.add_parser("kill", help="signal a pod's container process (default SIGKILL)")
    kill.add_argument("pod")
    kill.add_argument("-c", "--container")
    kill.add_argument("-s", "--signal", default="KILL")
    kill.set_defaults(func=cmd_kill)

    delete = sub.add_parser("delete", help="delete a pod (graceful); its controller replaces it")
    delete.add_argument("pod")
    delete.add_argument("--grace", type=float)
    delete.set_defaults(func=cmd_delete)

    scale = sub.add_parser("scale", help="kubectl scale deployment/redis --replicas 0")
    scale.add_argument("workload")
    scale.add_argument("--replicas", type=int, required=True)
    scale.set_defaults(func=cmd_scale)

    restart = sub.add_parser("rollout-restart", help="kubectl rollout restart deployment/backend")
    restart.add_argument("workload")
    restart.set_defaults(func=cmd_rollout_restart)

    apply = sub.add_parser(
        "apply", help="kubectl apply -k: config, policies, templates, selectors, affinity"
    )
    apply.add_argument(
        "-k", "--kustomize", help=f"kustomize directory (default {DEFAULT_KUSTOMIZE_DIR})"
    )
    apply.add_argument("-f", "--filename", help="already rendered manifests instead of -k")
    apply.set_defaults(func=cmd_apply)

    logs = sub.add_parser("logs", help="a pod's container log")
    logs.add_argument("pod")
    logs.add_argument("-c", "--container")
    logs.set_defaults(func=cmd_logs)

    faultcli.add_parsers(sub)
    api_cli.add_parsers(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)
