"""Capture every lab output the lesson shows (root; `sudo make lesson-capture`).

Brings the lab up once per proxy mode, with three nodes as `sudo make lab`
does (step 8, nodes.py, in the iptables-mode lab after the other steps), runs
each command the lesson shows
exactly as the lesson prints it (a leading `sudo` dropped: this runs as
root; `kubectl` is the machine's real kubectl, pointed at the running lab
by a KUBECONFIG from `python -m lab kubeconfig`), writes
docs/captures/NAME.txt (a header naming this script, the proxy mode, the
commit and the run, then the commands and their output), takes the
screenshots into docs/img/, stops the lab, and pastes the captures into
docs/lesson.md (`blocks`) and draws the rule chains from them
(docs/diagrams/rule_chains.py). Nothing here is edited by hand afterwards:
tests/docs checks that the lesson is these files, byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from docs.lessoncapture import blocks
from lab.control import ControlError, request
from lab.naming import NETNS_PREFIX

REPO = blocks.REPO
KUBECTL = "kubectl -n clusterip-demo"
PORT = 8080
LOCK_WAIT = 600
BASE = f"http://127.0.0.1:{PORT}"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Run:
    """One capture run: its stamp, commit and the captures made so far."""

    def __init__(self, out: Path, img: Path) -> None:
        self.out = out
        self.img = img
        self.env = dict(os.environ)
        self.stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.commit = _git("rev-parse", "--short=12", "HEAD")
        self.mode = "iptables"
        self.written: list[str] = []

    def shell(self, command: str, timeout: float = 60) -> str:
        """`$ command` and what it printed (stdout and stderr, as a terminal shows them)."""
        done = subprocess.run(
            ["bash", "-c", command.removeprefix("sudo ")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
        )
        # A reply without a final newline (curl's JSON) ends its line where the next
        # prompt would begin: the capture ends it, so every block ends with a newline.
        out = done.stdout if done.stdout.endswith("\n") or not done.stdout else done.stdout + "\n"
        return f"$ {command}\n{out}"

    def capture(self, name: str, *steps: str | Callable[[], str | None]) -> str:
        """Run the steps into docs/captures/NAME.txt and return what the lesson shows.

        A step is a command, or a callable: a wait between commands (it returns None),
        or a command that names what an earlier step made (it returns the command).
        """
        body = ""
        for step in steps:
            command = step if isinstance(step, str) else step()
            if command is not None:
                body += self.shell(command)
        capture = blocks.Capture(name, self.mode, self.commit, self.stamp, body)
        blocks.parse(capture.text())  # the same checks the docs tests make
        (self.out / f"{name}.txt").write_text(capture.text(), encoding="utf-8")
        self.written.append(name)
        print(f"lesson-capture: {name} ({self.mode})", flush=True)
        return body

    def screenshot(self, name: str, url: str, height: int) -> None:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [
                    "chromium",
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    f"--window-size=1280,{height}",
                    f"--screenshot={self.img / name}",
                    url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=True,
            )
        print(f"lesson-capture: docs/img/{name}", flush=True)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def status() -> dict[str, Any]:
    return request("status")


def pods(app: str) -> list[dict[str, Any]]:
    return [
        p
        for p in status()["pods"]
        if p["labels"].get("app.kubernetes.io/name") == app and not p["deleting"]
    ]


def on_node(node: str = "lab-node-1") -> str:
    """What runs a host tool on a node: each node is a network namespace of its own, so
    `ip netns exec` into it plays logging in to the node."""
    return f"sudo ip netns exec {NETNS_PREFIX}{node} "


def wait_until(check: Callable[[], bool], what: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(ControlError, OSError, KeyError):
            if check():
                return
        time.sleep(0.5)
    raise SystemExit(f"lesson-capture: {what} did not happen within {within:g}s")


def settled() -> bool:
    """Every workload ready, the rules synced, no pod terminating."""
    now = status()
    return bool(now["ready"]) and not any(p["deleting"] for p in now["pods"])


def pause(seconds: float) -> Callable[[], None]:
    return lambda: time.sleep(seconds)


@contextlib.contextmanager
def lab_up(mode: str, nodes: int = 3) -> Iterator[None]:
    log = (REPO / "var" / f"lesson-capture-{mode}-{nodes}.log").open("w")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "lab", "up", "--quiet", "--proxy-mode", mode),
            *("--nodes", str(nodes), "--port", str(PORT), "--wait", str(LOCK_WAIT)),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Another lab on this machine (a test run) holds the lab lock: wait for it first.
        what = f"the lab ({mode}, {nodes} node{'s' if nodes > 1 else ''}) up"
        wait_until(lambda: _ours(proc) and settled(), what, 240 + LOCK_WAIT)
        time.sleep(2)  # the readiness of the last pod shows in `get pods` as it settles
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # twice: skip the grace periods
            proc.wait(timeout=60)
        log.close()


def use_the_labs_kubeconfig(run: Run) -> None:
    """Point the captures' kubectl at the running lab, whatever the user's kubeconfig holds."""
    path = REPO / "var" / "lesson-capture.kubeconfig"
    text = subprocess.run(
        [sys.executable, "-m", "lab", "kubeconfig"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path.touch(mode=0o600)
    path.write_text(text, encoding="utf-8")
    run.env["KUBECONFIG"] = str(path)


def _ours(proc: subprocess.Popen[bytes]) -> bool:
    """The lab answering is the one this run started (not another that held the lock)."""
    return _alive(proc) and status()["pid"] == proc.pid


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise SystemExit(f"lesson-capture: the lab stopped (exit {proc.returncode}): see var/")
    return True


# --- what the lesson shows ----------------------------------------------------------------------


def iptables_mode(run: Run) -> None:
    run.mode = "iptables"
    service_alone(run)
    run.capture("get-pods", f"{KUBECTL} get pods -o wide")
    run.capture("get-svc", "kubectl get services -A -o wide")
    run.capture("get-endpointslices", f"{KUBECTL} get endpointslices")
    run.capture("describe-svc", f"{KUBECTL} describe service backend")
    victim = pods("backend")[0]["name"]
    frontend = pods("frontend")[0]
    fe = frontend["netns"]
    run.capture(
        "delete-pod",
        f"{KUBECTL} delete pod {victim} --wait=false",
        lambda: wait_until(lambda: _replaced(victim), "a new pod ready in the Service"),
        f"{KUBECTL} get pods -o wide",
        f"{KUBECTL} get endpointslices",
    )
    run.capture(
        "resolve",
        f"sudo ip netns exec {fe} getent hosts backend backend.clusterip-demo.svc.cluster.local"
        " mysql redis",
        f"sudo ip netns exec {fe} curl -sS http://backend:8000/api/info",
        f"{KUBECTL} exec deploy/frontend -- python -c"
        " \"import socket; print(socket.gethostbyname('backend'))\"",
    )
    wait_until(settled, "the deleted pod gone")
    rule_chains(run)
    route_and_spread(run)
    run.capture(
        "netpol",
        f"sudo ip netns exec {fe} timeout 3 bash -c 'echo > /dev/tcp/mysql/3306'"
        " && echo open || echo blocked",
        f"sudo ip netns exec {pods('backend')[0]['netns']} timeout 3 bash -c"
        " 'echo > /dev/tcp/mysql/3306' && echo open || echo blocked",
        f"{on_node(frontend['node'])}iptables -S CIP-NETPOL | grep -F {frontend['name']}",
    )
    run.screenshot("lab-page.png", f"{BASE}/", 1250)
    run.screenshot("lab-spread.png", f"{BASE}/spread?n=60", 900)
    exercises(run, fe)


ALONE = "docs/exercises/backend-service.yaml"


def service_alone(run: Run) -> None:
    """Step 0: the backend Service alone in a namespace of its own, then the app re-applied."""
    run.capture(
        "create-service",
        f"kubectl create -f {ALONE}",
        "kubectl -n step0 get services",
        "kubectl -n step0 get endpoints",
    )
    run.capture(
        "apply-unchanged",
        f"kubectl create -f {ALONE}",
        f"kubectl delete -f {ALONE}",
        "kubectl apply -k k8s/",
    )


def _replaced(victim: str) -> bool:
    """Three backend pods ready besides the deleted one, and the rules synced."""
    others = [p for p in status()["pods"] if p["name"] != victim]
    backends = [p for p in others if p["labels"].get("app.kubernetes.io/name") == "backend"]
    return sum(p["ready"] for p in backends) == 3 and bool(status()["ready"])


def rule_chains(run: Run) -> None:
    if run.mode == "iptables":
        services = run.shell(f"{on_node()}iptables -t nat -S CIP-SERVICES")
        svc = next(
            word
            for line in services.splitlines()
            if "clusterip-demo/backend:http" in line
            for word in line.split()
            if word.startswith("CIP-SVC-")
        )
        chain = run.shell(f"{on_node()}iptables -t nat -S {svc}")
        sep = next(w for w in chain.split() if w.startswith("CIP-SEP-"))
        run.capture("rules-services.iptables", f"{on_node()}iptables -t nat -S CIP-SERVICES")
        run.capture(
            "rules-backend.iptables",
            f"{on_node()}iptables -t nat -S {svc}",
            f"{on_node()}iptables -t nat -S {sep}",
        )
        return
    table = "ip cip-kube-proxy"
    listing = run.shell(f"{on_node()}nft list table {table}")
    service = next(
        line.split()[1]
        for line in listing.splitlines()
        if line.strip().startswith("chain service-") and "clusterip-demo/backend/tcp/http" in line
    )
    run.capture("rules-services.nftables", f"{on_node()}nft list map {table} service-ips")
    chain = run.shell(f"{on_node()}nft list chain {table} {service}")
    endpoint = next(
        word.rstrip(",")
        for word in chain.split()
        if word.startswith("endpoint-") and "backend" in word
    )
    run.capture(
        "rules-backend.nftables",
        f"{on_node()}nft list chain {table} {service}",
        f"{on_node()}nft list chain {table} {endpoint}",
    )


def route_and_spread(run: Run) -> None:
    run.capture(
        "route",
        f"curl -s {BASE}/api/route | jq -r '.hops[] | [.key, .value, .detail] | @tsv'",
    )
    run.capture("spread", SPREAD)


SPREAD = (
    f'curl -s "{BASE}/api/spread?n=60" | jq -c'
    " '.fresh_connections, .one_kept_alive_connection | {answered, connections_opened, pods}'"
)


def backend_chain(run: Run) -> str:
    services = run.shell(f"{on_node()}iptables -t nat -S CIP-SERVICES")
    return next(
        word
        for line in services.splitlines()
        if "clusterip-demo/backend:http" in line
        for word in line.split()
        if word.startswith("CIP-SVC-")
    )


DNS_LOG = "kubectl -n kube-system logs deployment/kube-dns"
# What an apply changed: the lines of the objects that are not `unchanged`.
CHANGED = "grep -v unchanged"


def exercises(run: Run, fe: str) -> None:
    be = pods("backend")[0]["netns"]
    # 1. A selector typo against a NetworkPolicy.
    run.capture(
        "break-selector",
        f"kubectl apply -k docs/exercises/selector-typo | {CHANGED}",
        pause(2),
        f"{KUBECTL} get endpointslices",
        f"sudo ip netns exec {fe} curl -sS -m 5 http://backend:8000/healthz",
        f"{on_node()}iptables -S CIP-SERVICES",
    )
    run.capture(
        "break-netpol",
        f"sudo ip netns exec {fe} curl -sS -m 5 http://mysql:3306/",
    )
    run.capture(
        "mend-selector",
        f"kubectl apply -k k8s/ | {CHANGED}",
        pause(2),
        f"sudo ip netns exec {fe} curl -sS -m 5 http://backend:8000/healthz",
    )
    # 2. A readiness probe that never passes.
    svc = backend_chain(run)
    run.capture(
        "break-readiness",
        f"kubectl apply -k docs/exercises/readiness-typo | {CHANGED}",
        pause(20),
        f"{KUBECTL} get pods -o wide",
        f"{KUBECTL} get endpointslices",
        f"{on_node()}iptables -t nat -S {svc} | grep -c CIP-SEP-",
    )
    run.capture(
        "mend-readiness",
        f"kubectl apply -k k8s/ | {CHANGED}",
        lambda: wait_until(settled, "the rollout back"),
        f"{KUBECTL} get pods -o wide",
    )
    # 3. Session affinity on, then off.
    run.capture(
        "affinity-on",
        f"kubectl apply -k docs/exercises/session-affinity | {CHANGED}",
        pause(2),
        f"{on_node()}iptables -t nat -S {svc} | grep -m 2 recent",
        SPREAD,
    )
    run.capture("affinity-off", f"kubectl apply -k k8s/ | {CHANGED}", pause(2), SPREAD)
    # 4. The headless Service.
    run.capture(
        "headless",
        f"{KUBECTL} get services mysql mysql-headless",
        f"sudo ip netns exec {be} getent hosts mysql mysql-headless",
        f"{on_node()}iptables -t nat -S CIP-SERVICES | grep -c mysql-headless",
    )
    # 5. The search path and ndots:5.
    run.capture(
        "dns-search",
        f"sudo cat /etc/netns/{fe}/resolv.conf",
        f"sudo ip netns exec {fe} getent ahostsv4 backend",
        f"{DNS_LOG} | grep -F 'query[A] backend.' | tail -n 1",
    )
    run.capture(
        "dns-ndots",
        f"sudo ip netns exec {fe} getent ahostsv4 api.example.com",
        f"{DNS_LOG} | grep -F api.example.com",
        f"sudo ip netns exec {fe} getent ahostsv4 api.example.org.",
        f"{DNS_LOG} | grep -F api.example.org",
    )


def nftables_mode(run: Run) -> None:
    run.mode = "nftables"
    rule_chains(run)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--modes", default="iptables,nftables")
    args.add_argument("--no-nodes", action="store_true", help="skip the lesson's step 8 (nodes.py)")
    opts = args.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("lesson-capture: the lab needs root: sudo make lesson-capture")
    for tool in ("jq", "chromium", "curl", "nft"):
        if shutil.which(tool) is None:
            raise SystemExit(f"lesson-capture: {tool} is needed (apt-get install {tool})")
    if _git("status", "--porcelain", "--", "lab", "k8s", "backend", "frontend", "common"):
        print("lesson-capture: warning: the lab's code has uncommitted changes", file=sys.stderr)
    (REPO / "var").mkdir(exist_ok=True)
    run = Run(blocks.CAPTURES, REPO / "docs" / "img")
    for mode in opts.modes.split(","):
        with lab_up(mode):
            use_the_labs_kubeconfig(run)
            {"iptables": iptables_mode, "nftables": nftables_mode}[mode](run)
            # Step 8 in the iptables-mode lab, after the rest: it shows what nodes
            # change, not what the modes do, and it stops a node.
            if mode == "iptables" and not opts.no_nodes:
                from docs.lessoncapture import nodes

                nodes.three_nodes(run)
    blocks.main()
    from docs.diagrams import packet_path, rule_chains

    rule_chains.main()
    packet_path.main()  # its pod names and addresses are read from the captures
    print(json.dumps({"captured": run.written, "run": run.stamp, "commit": run.commit}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
