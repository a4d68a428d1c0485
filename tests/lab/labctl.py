"""Driving the lab from tests: the `python -m lab up` process, its status, a bounded load.

The lab runs as the same subprocess `sudo make lab` starts, and is asked for
its state through its control socket. The load loop sends requests only to
the lab's port-forward on 127.0.0.1, stops by itself after `max_seconds` or
`max_requests`, and records every outcome so tests can count failures and
measure recovery times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymysql

from lab.control import ControlError, request
from lab.manifests import load

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "clusterip-demo"


NEEDED = (
    ("ip", "iproute2"),
    ("iptables", "iptables"),
    ("kubectl", "kubectl"),
    ("mariadbd", "mariadb-server"),
    ("mariadb-install-db", "mariadb-server"),
    ("redis-server", "redis-server"),
    ("setpriv", "util-linux"),
    ("dnsmasq", "dnsmasq-base"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
)


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, iptables); run the tests as root"
    for tool, package in NEEDED:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    version = subprocess.run(["iptables", "--version"], capture_output=True, text=True)
    if "nf_tables" not in version.stdout and not shutil.which("iptables-nft"):
        return f"iptables is not the nf_tables variant ({version.stdout.strip()})"
    # A container without CAP_SYS_ADMIN cannot make namespaces: find out cheaply.
    probe = f"cip-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class LabProcess:
    def __init__(
        self,
        log_path: Path,
        port: int,
        extra_args: Iterable[str] = (),
        checkout: Path = REPO,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.port = port
        self.extra_args = list(extra_args)
        self.checkout = checkout
        # Another command that runs `lab up` (`make lab`), and its environment.
        self.command = command
        # The lab writes its `clusterip-lab` context here, never into root's own kubeconfig.
        self.kubeconfig = log_path.parent / "kubeconfig"
        self.env = {**(env if env is not None else os.environ), "KUBECONFIG": str(self.kubeconfig)}
        self.proxy_mode = "iptables"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 240.0) -> float:
        """Start the lab and wait until every pod is ready. Returns the seconds it took."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command
                or [
                    sys.executable,
                    "-m",
                    "lab",
                    "up",
                    "--port",
                    str(self.port),
                    "--wait",
                    "120",
                    *self.extra_args,
                ],
                cwd=self.checkout,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Not in the test's process group: Ctrl-C on pytest is not the lab's.
                start_new_session=True,
            )
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the lab exited ({self.proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(ControlError, OSError, ValueError):
                status = request("status")
                # The control socket is the machine's: another session's lab, still up
                # while this one waits for the lock, must not pass for this one.
                if status.get("ready") and self._started_by_us(int(status["pid"])):
                    self.startup_seconds = time.monotonic() - started
                    return self.startup_seconds
            time.sleep(0.25)
        raise TimeoutError(f"the lab was not ready within {timeout} s:\n{self.log_tail()}")

    def _started_by_us(self, pid: int) -> bool:
        """Whether pid is our process or under it (`make lab` runs `lab up` as a child)."""
        assert self.proc is not None
        for _ in range(4):
            if pid == self.proc.pid:
                return True
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent's pid
        return False

    def stop(self, sig: int = signal.SIGINT, timeout: float = 90.0) -> int | None:
        """Stop it as Ctrl-C would; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        code = self.proc.returncode
        self.proc = None
        return code

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- what the lab knows ----------------------------------------------------

    def status(self) -> dict[str, Any]:
        return request("status")

    def ask(self, cmd: str, **fields: Any) -> Any:
        return request(cmd, **fields)

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real kubectl on the lab's context, in the app's namespace unless told."""
        from tests.lab.test_api_kubectl import KUBECTL

        namespace = (
            []
            if any(a.startswith(("-n", "--namespace", "-A")) for a in args)
            else [
                "-n",
                NAMESPACE,
            ]
        )
        done = subprocess.run(
            [KUBECTL, *namespace, *args],
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(self.log_path.parent),
                "KUBECONFIG": str(self.kubeconfig),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    def pods(self, app: str, status: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        status = status or self.status()
        return [
            p
            for p in status["pods"]
            if p["labels"].get("app.kubernetes.io/name") == app and not p["deleting"]
        ]

    def service_ip(self, name: str, status: dict[str, Any] | None = None) -> str:
        status = status or self.status()
        return next(s["cluster_ip"] for s in status["services"] if s["name"] == name)

    def in_iptables(self, service: str, status: dict[str, Any] | None = None) -> list[str] | None:
        """The endpoints kube-proxy's rules send the Service's traffic to now (None: syncing)."""
        status = status or self.status()
        if not status["iptables"]["synced"]:
            return None
        for eps in status["endpoints"]:
            if eps["service"] == service:
                return list(eps["in_iptables"])
        return []

    def warnings(self, limit: int = 40) -> list[str]:
        """The last warning and error lines the pods logged: for a failing fault test's
        message, so CI output says which dependency each backend pod saw go down."""
        lines: list[tuple[str, str]] = []
        for log in sorted((Path(self.status()["workdir"]) / "pods").glob("*/*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if '"level": "warning"' in line or '"level": "error"' in line:
                    lines.append((line[:300], log.parent.name))
        # Each line starts with its timestamp: sorted, the pods' lines interleave in time.
        return [f"{pod}: {line}" for line, pod in sorted(lines)[-limit:]]

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> float:
        """The time.monotonic() at which predicate(status) held, polled every 50 ms."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if predicate(self.status()):
                return time.monotonic()
            time.sleep(0.05)
        raise AssertionError(f"{what}: not within {timeout} s\n{self.log_tail(3000)}")


# --- load -------------------------------------------------------------------------


@dataclass
class Outcome:
    at: float  # time.monotonic() when the answer (or the error) came
    kind: str  # read, write
    status: int | None
    error: str | None = None
    backend_pod: str | None = None
    cache: str | None = None
    cache_state: str | None = None
    message_id: int | None = None
    text: str | None = None
    took: float = 0.0  # seconds from sending the request to its answer (or error)

    @property
    def failed(self) -> bool:
        """No answer at all, or a 5xx."""
        return self.status is None or self.status >= 500


@dataclass
class Load:
    """Reads (GET /api/messages) from a few workers and a paced writer, through the frontend.

    Writes are paced under the backend's per-client limit (30 per minute):
    every write from the test arrives from the same address.
    """

    base_url: str
    readers: int = 3
    read_pause: float = 0.08
    write_every: float = 2.5
    max_seconds: float = 120.0
    max_requests: int = 20_000
    outcomes: list[Outcome] = field(default_factory=list)
    writes_enabled: bool = True

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
        if self._thread is not None:
            self._thread.join(timeout=60)

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _done(self) -> bool:
        return (
            self._stop.is_set()
            or time.monotonic() - self.started_at > self.max_seconds
            or len(self.outcomes) >= self.max_requests
        )

    async def _send(
        self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
    ) -> httpx.Response:
        # No retry here: a request the app does not answer counts as failed.
        return await client.request(method, url, **kwargs)

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        limits = httpx.Limits(max_connections=self.readers + 2)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=10.0, limits=limits, trust_env=False
        ) as client:
            workers = [self._reader(client) for _ in range(self.readers)]
            await asyncio.gather(*workers, self._writer(client))

    async def _reader(self, client: httpx.AsyncClient) -> None:
        while not self._done():
            sent = time.monotonic()
            try:
                response = await self._send(client, "GET", "/api/messages")
                outcome = Outcome(time.monotonic(), "read", response.status_code)
                outcome.backend_pod = response.headers.get("x-backend-pod")
                with contextlib.suppress(ValueError):
                    body = response.json()
                    outcome.cache = body.get("cache")
                    outcome.cache_state = body.get("cache_state")
            except httpx.HTTPError as exc:
                outcome = Outcome(time.monotonic(), "read", None, f"{type(exc).__name__}: {exc}")
            outcome.took = outcome.at - sent
            self._record(outcome)
            await asyncio.sleep(self.read_pause)

    async def _writer(self, client: httpx.AsyncClient) -> None:
        while not self._done():
            if self.writes_enabled:
                text = f"lab write {uuid.uuid4().hex[:12]}"
                sent = time.monotonic()
                try:
                    response = await self._send(
                        client,
                        "POST",
                        "/api/messages",
                        json={"author": "lab-test", "text": text},
                        headers={"Idempotency-Key": uuid.uuid4().hex},
                    )
                    outcome = Outcome(time.monotonic(), "write", response.status_code, text=text)
                    outcome.backend_pod = response.headers.get("x-backend-pod")
                    if response.status_code == 201:
                        outcome.message_id = int(response.json()["id"])
                except httpx.HTTPError as exc:
                    outcome = Outcome(
                        time.monotonic(), "write", None, f"{type(exc).__name__}: {exc}", text=text
                    )
                outcome.took = outcome.at - sent
                self._record(outcome)
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.write_every)

    # -- what happened -----------------------------------------------------------

    def between(self, start: float, end: float | None = None) -> list[Outcome]:
        end = end if end is not None else time.monotonic()
        with self._lock:
            return [o for o in self.outcomes if start <= o.at <= end]

    def created(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.kind == "write" and o.status == 201]


def rows_by_the_test(lab: LabProcess) -> dict[int, str]:
    """The messages the load wrote (author lab-test), id → text, read from the lab's MySQL
    pod with the root password of the manifests' Secret."""

    secret = next(s for s in load().secrets.values() if "MYSQL_ROOT_PASSWORD" in s)
    mysql = lab.pods("mysql")[0]
    conn = pymysql.connect(
        host=mysql["ip"],
        port=3306,
        user="root",
        password=secret["MYSQL_ROOT_PASSWORD"],
        database=secret["MYSQL_DATABASE"],
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT id, text FROM messages WHERE author = 'lab-test'")
            return dict(cursor.fetchall())
    finally:
        conn.close()


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    reads = [o for o in outcomes if o.kind == "read"]
    writes = [o for o in outcomes if o.kind == "write"]
    statuses: dict[str, int] = {}
    for o in outcomes:
        key = f"{o.kind} {o.status if o.status is not None else 'error'}"
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "requests": len(outcomes),
        "reads": len(reads),
        "writes": len(writes),
        "failed": sum(o.failed for o in outcomes),
        "failed_reads": sum(o.failed for o in reads),
        "failed_writes": sum(o.failed for o in writes),
        "slowest (s)": round(max((o.took for o in outcomes), default=0.0), 2),
        "statuses": dict(sorted(statuses.items())),
        "errors": sorted({o.error for o in outcomes if o.error})[:5],
        "first failures": [
            (round(o.at, 2), o.kind, o.status, o.cache, o.cache_state, o.error)
            for o in outcomes
            if o.failed
        ][:5],
    }


# Collected for the terminal summary (tests/lab/conftest.py), so the figures
# show in every run's output, not only with -s or on failure.
FIGURES: list[tuple[str, dict[str, Any]]] = []


# The proxy mode of the lab now running, for the figures' titles.
REPORT_MODE: list[str] = []

# kube-proxy's two modes: every lab test runs in each (LAB_PROXY_MODES=iptables for one).
PROXY_MODES = os.environ.get("LAB_PROXY_MODES", "iptables,nftables").split(",")


def report(title: str, figures: dict[str, Any], mode: str | None = None) -> None:
    """Figures for the run's summary, headed by the proxy mode: the given one, else that of
    the last lab fixture started."""
    mode = mode or (REPORT_MODE[-1] if REPORT_MODE else None)
    mode = f"[{mode}] " if mode else ""
    FIGURES.append((f"{mode}{title}", figures))
    lines = [f"[lab figures] {title}"]
    lines += [f"    {key}: {value}" for key, value in figures.items()]
    print("\n".join(lines), file=sys.stderr, flush=True)


def pid_alive(pid: int) -> bool:
    """Running, not a zombie: a process whose parent was SIGKILLed is handed to pid 1,
    and a container's or a VM's init may never reap it, though it is gone."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, OSError, IndexError):
        return False
    return state != "Z"


def overlay(
    directory: Path,
    delete_policies: Iterable[str] = (),
    backend_config: dict[str, str] | None = None,
    backend_memory: str | None = None,
) -> Path:
    """A kustomize overlay of k8s/: some NetworkPolicies deleted, some backend settings
    changed, the backend container's memory limit changed."""
    directory.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(REPO / "k8s", directory)
    lines = [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        f"  - {base}",
    ]
    deletes = list(delete_policies)
    if deletes or backend_memory:
        lines.append("patches:")
    if backend_memory:
        lines += [
            "  - target: {kind: Deployment, name: backend}",
            "    patch: |-",
            "      - op: replace",
            "        path: /spec/template/spec/containers/0/resources/limits/memory",
            f"        value: {backend_memory}",
        ]
    if deletes:
        for name in deletes:
            lines += [
                "  - patch: |-",
                "      $patch: delete",
                "      apiVersion: networking.k8s.io/v1",
                "      kind: NetworkPolicy",
                "      metadata:",
                f"        name: {name}",
            ]
    if backend_config:
        lines += [
            "configMapGenerator:",
            "  - name: backend-config",
            "    behavior: merge",
            "    literals:",
            *[f"      - {key}={value}" for key, value in backend_config.items()],
        ]
    (directory / "kustomization.yaml").write_text("\n".join(lines) + "\n")
    return directory
