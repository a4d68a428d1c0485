"""`python -m lab up`: an empty one-node cluster, its DNS, and the app through kubectl.

In order: the API server (lab/controlplane.py) with the `clusterip-lab` context; the
node's network and kube-proxy's safety rules; the node's components on their informers
(lab/cluster.py); the kubelet registered; the DNS add-on; then `kubectl apply` of the
manifests, printed as kubectl prints it; the port-forward; and, once every workload is
ready, what to try. Ctrl-C removes all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lab.api.kubeconfig import CONTEXT
from lab.checkout import (
    APP_PARTS,
    AppSource,
    blocking_directory,
    interpreter_blocker,
    place_copy,
)
from lab.cluster import Lab, Options
from lab.control import ControlServer
from lab.controlplane import ControlPlane
from lab.engine import detect, project_images
from lab.images import ImageRuntime
from lab.kubeproxy.model import ServicePortRules, svc_chain
from lab.kubeproxy.nftables import FAMILY as NFT_FAMILY
from lab.kubeproxy.nftables import TABLE as NFT_TABLE
from lab.kubeproxy.nftables import service_chain
from lab.manifests import REPO, ManifestError, Manifests, load
from lab.naming import WORKDIR_PREFIX
from lab.network import IP_FORWARD, NetworkError, cleanup
from lab.node import deploy
from lab.node.client import ApiError, ApiUnavailable, Client
from lab.node.streams import KubeletExec
from lab.state import LabBusy, Lock, read_state, write_state


def _python() -> str:
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return str(exe.relative_to(REPO)) if Path.cwd() == REPO else str(exe)
    return str(exe)


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


def _instructions(lab: Lab, status: dict[str, Any]) -> str:
    py = _python()
    ns = lab.namespace
    lines = []
    if lab.forward is not None:
        svc = lab.options.forward_service
        address = f"{lab.forward.listen_host}:{lab.forward.listen_port}"
        lines += [
            f"Open http://{address}/",
            f"  ({address} → Service {svc} {lab.forward.target_ip}:{lab.forward.target_port}"
            " → a pod picked per connection by the kernel; `kubectl port-forward` would"
            " tunnel to one pod instead)",
            "",
        ]
    backends = [p for p in status["pods"] if p["labels"].get("app.kubernetes.io/name") == "backend"]
    # Of several nodes, node 1's rules are in its namespace; the one node's are the host's.
    node1 = lab.places[0].netns
    on = f"ip netns exec {node1} " if node1 else ""
    pad = " " * 27
    lines.append(f"Try (kubectl's context is {CONTEXT}):")
    if lab.forward is not None:
        base = f"http://{lab.forward.listen_host}:{lab.forward.listen_port}"
        lines.append(f"  the spread view:         {base}/spread")
    lines.append(f"  pods and Services:       kubectl -n {ns} get pods,svc,endpointslices -o wide")
    if backends and backends[0]["containers"] and backends[0]["containers"][0]["pid"]:
        victim = backends[0]
        lines.append(
            f"  kill a backend pod:      sudo kill -9 {victim['containers'][0]['pid']}"
            f"    # {victim['name']}"
        )
    lines.append(f"  kube-proxy's rules:      sudo {py} -m lab rules")
    backend = next(
        (s for s in status["services"] if s["name"] == "backend" and s["namespace"] == ns), None
    )
    if backend is not None and backend["ports"]:
        port = backend["ports"][0]
        port_name = f"{ns}/backend:{port['name']}" if port["name"] else f"{ns}/backend"
        if lab.proxier.mode.name == "iptables":
            chain = svc_chain(port_name, "TCP")
            lines.append(f"{pad}sudo {on}iptables -t nat -S CIP-SERVICES   # iptables mode")
            lines.append(f"{pad}sudo {on}iptables -t nat -S {chain}   # backend")
        else:
            rules = ServicePortRules(port_name, "", port["port"], port["protocol"])
            lines.append(f"{pad}sudo {on}nft list map {NFT_FAMILY} {NFT_TABLE} service-ips")
            lines.append(
                f"{pad}sudo {on}nft list chain {NFT_FAMILY} {NFT_TABLE} "
                f"'{service_chain(rules)}'   # backend"
            )
    if len(lab.places) > 1:
        last = lab.places[-1].name
        lines.append(f"  another node's rules:    sudo {py} -m lab rules --node {last}")
        lines.append("  the nodes:               kubectl get nodes -o wide")
        lines.append(
            f"  a node fails:            sudo {py} -m lab node stop {last}   # then: start"
        )
    frontends = [
        p for p in status["pods"] if p["labels"].get("app.kubernetes.io/name") == "frontend"
    ]
    if frontends:
        lines.append(
            f"  resolve like a pod:      sudo ip netns exec {frontends[0]['netns']} "
            "getent hosts backend"
        )
    if status["network_policies"]:
        lines.append(f"  the NetworkPolicies:     sudo {on}iptables -S CIP-NETPOL")
    lines.append(f"  a rolling restart:       kubectl -n {ns} rollout restart deployment/backend")
    lines.append(f"  stop Redis:              kubectl -n {ns} scale deployment/redis --replicas 0")
    lines.append(f"  stop MySQL:              kubectl -n {ns} scale statefulset/mysql --replicas 0")
    lines.append(f"  slow Redis's link:       sudo {py} -m lab netem redis --delay 300ms")
    lines.append(f"  partition MySQL:         sudo {py} -m lab partition mysql-0   # then: heal")
    lines.append(f"  a pod's log:             kubectl -n {ns} logs <pod>")
    lines.append("")
    lines.append("Ctrl-C stops the lab and removes everything it added (or: sudo make lab-down).")
    return "\n".join(lines)


async def _deploy(lab: Lab, apply_argv: list[str]) -> None:
    """The kubelet registered, the DNS add-on, then the user's own command."""
    for place in lab.places:
        await deploy.register_kubelet(lab.client, place.name)
    await deploy.create_addon(lab.client, lab.dns.addon())
    print(f"lab: kubectl {' '.join(apply_argv[3:])}", flush=True)
    code, out = await deploy.kubectl_apply(apply_argv)
    print(out.rstrip(), flush=True)
    if code != 0:
        raise RuntimeError(f"kubectl apply failed ({code}); the lab stops")
    lab.deployed = True


async def _forward(lab: Lab, args: argparse.Namespace) -> Any:
    """The host's port to the Service's ClusterIP, once kubectl has created the Service."""
    from lab.portforward import PortForward

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        svc = lab.informers["services"].get(lab.namespace, args.forward_service)
        if svc is not None and svc["spec"].get("ports"):
            ip, port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"]
            forward = PortForward(args.address, args.port, ip, port)
            await forward.start()
            return forward
        await asyncio.sleep(0.1)
    raise SystemExit(f"no Service {args.forward_service!r} to forward to")


def _print_kubectl_get(config: Path, namespace: str, nodes: int) -> None:
    shown = [["-n", namespace, "get", "pods,svc", "-o", "wide"]]
    if nodes > 1:
        shown.insert(0, ["get", "nodes", "-o", "wide"])
    for argv in shown:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(config), *argv],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"$ kubectl {' '.join(argv)}", flush=True)
        print((done.stdout or done.stderr).rstrip(), flush=True)


async def _serve(lab: Lab, args: argparse.Namespace, apply_argv: list[str], config: Path) -> int:
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
        await _deploy(lab, apply_argv)
        if args.port:
            forward = lab.forward = await _forward(lab, args)
        waiter = asyncio.create_task(lab.wait_ready(args.ready_timeout))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            status = lab.status()
            print("", flush=True)
            await asyncio.to_thread(_print_kubectl_get, config, lab.namespace, len(lab.places))
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


def _start_control_plane(
    control_plane: ControlPlane, workdir: Path, kubelet: KubeletExec, nodes: int
) -> Client:
    # Into the state before the file is written: a crash in between leaves nothing behind.
    write_state(
        {
            **read_state(),
            "kubeconfig": str(control_plane.config_path),
            "api_dir": str(control_plane.workdir),
        }
    )
    running = control_plane.start(pods_dir=workdir / "pods", kubelet=kubelet, nodes=nodes)
    print(
        f"lab: Kubernetes API on {running.url}; context {CONTEXT} in "
        f"{control_plane.config_path} (kubectl --context {CONTEXT} get nodes)",
        flush=True,
    )
    creds = running.credentials
    return Client(running.url, creds.ca_pem, creds.token)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        forward_host=args.address,
        forward_port=args.port or None,
        forward_service=args.forward_service,
        min_sync_period=args.min_sync_period,
        proxy_mode=args.proxy_mode,
        print_events=not args.quiet,
        network_policies=not args.no_network_policies,
        nodes=args.nodes,
    )


def run(args: argparse.Namespace, manifests: Manifests, cleanup_previous: Any) -> int:
    """Everything between the lock and Ctrl-C; leaves the machine as it found it."""
    workdir: Path | None = None
    lab: Lab | None = None
    control_plane = ControlPlane()
    forward_before = IP_FORWARD.read_text().strip()
    try:
        cleanup_previous()
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
        kubelet = KubeletExec()
        client = _start_control_plane(control_plane, workdir, kubelet, args.nodes)
        running = control_plane.running
        assert running is not None
        config = deploy.write_kubeconfig(
            control_plane.workdir / "kubeconfig",
            running.url,
            running.credentials.ca_pem,
            running.credentials.token,
        )
        kustomize = Path(args.kustomize) if args.kustomize else REPO / "k8s"
        filename = Path(args.filename) if args.filename else None
        apply_argv = deploy.apply_command(config, kustomize, filename)
        lab = Lab(_options(args), workdir, manifests.namespace, client)
        kubelet.workers = lambda: lab.workers
        lab.images = _image_runtime(args.runtime)
        if lab.images is None:
            lab.app_source = _app_source(workdir)
        try:
            lab.setup_network()
        finally:
            write_state({**read_state(), "etc_netns_created": lab.etc_netns_created})
        return asyncio.run(_serve(lab, args, apply_argv, config))
    except (NetworkError, ManifestError, RuntimeError, ApiError, ApiUnavailable) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    finally:
        control_plane.stop()
        created = lab.etc_netns_created if lab is not None else False
        cleanup(
            created or bool(read_state().get("etc_netns_created")), [workdir] if workdir else []
        )
        if IP_FORWARD.read_text().strip() != forward_before:
            print("lab: warning: net.ipv4.ip_forward changed while the lab ran", file=sys.stderr)
        print("lab: stopped; everything it added is removed.", flush=True)


def cmd_up(args: argparse.Namespace, cleanup_previous: Any, check_port: Any) -> int:
    try:
        # Read here first: a field the lab cannot honour stops it before anything starts.
        manifests = load(
            Path(args.kustomize) if args.kustomize else None,
            Path(args.filename) if args.filename else None,
        )
    except ManifestError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    if args.port:
        check_port(args.address, args.port)
    lock = Lock()
    try:
        lock.acquire(wait=args.wait)
    except LabBusy as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 3
    try:
        return run(args, manifests, cleanup_previous)
    finally:
        lock.release(remove_state_dir=True)
