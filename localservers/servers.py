"""Throwaway MariaDB and Redis servers, owned by one test session.

Each runs from Debian's binaries in a private temp dir on a free loopback
port, so fault tests can stop and restart it mid-traffic without touching
anything else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localservers.ports import free_port, port_is_closed, wait_for_port

MARIADBD_CANDIDATES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")


def _which(*candidates: str) -> str | None:
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def mariadb_binaries() -> tuple[str, str, str] | None:
    server = _which(*MARIADBD_CANDIDATES, "mariadbd")
    install = _which("mariadb-install-db", "mysql_install_db")
    admin = _which("mariadb-admin", "mysqladmin")
    if server and install and admin:
        return server, install, admin
    return None


def redis_binary() -> str | None:
    return _which("redis-server")


def _terminate(proc: subprocess.Popen[bytes] | None, port: int, grace: float) -> None:
    """SIGTERM, wait `grace` seconds, then SIGKILL; return once the port is free."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not port_is_closed("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.02)


@dataclass
class MariaDB:
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        binaries = mariadb_binaries()
        if binaries is None:
            raise FileNotFoundError("mariadbd, mariadb-install-db or mariadb-admin not found")
        self.server_bin, self.install_bin, self.admin_bin = binaries
        self.datadir = self.root / "data"
        self.tmpdir = self.root / "tmp"
        self.socket = self.root / "mysqld.sock"

    def install(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                self.install_bin,
                "--no-defaults",
                f"--datadir={self.datadir}",
                # Without it root uses unix-socket auth and TCP logins fail (1698).
                "--auth-root-authentication-method=normal",
                "--user=root" if os.geteuid() == 0 else f"--user={os.getlogin()}",
                "--skip-test-db",
                # A private tmpdir: parallel installs sharing /tmp collide.
                f"--tmpdir={self.tmpdir}",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, timeout: float = 60.0) -> None:
        args = [
            self.server_bin,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.root / 'mariadbd.pid'}",
            f"--log-error={self.root / 'error.log'}",
            "--skip-log-bin",
            f"--tmpdir={self.tmpdir}",
            "--innodb-buffer-pool-size=64M",
            "--max-connections=500",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
        ]
        if os.geteuid() == 0:
            # As root, mariadbd refuses to start without it.
            args.append("--user=root")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {self.error_log_tail()}")
            ping = subprocess.run(
                [
                    self.admin_bin,
                    "--no-defaults",
                    "-h127.0.0.1",
                    f"-P{self.port}",
                    "-uroot",
                    "--connect-timeout=1",
                    "ping",
                ],
                capture_output=True,
                timeout=10,
            )
            if ping.returncode == 0:
                return
            time.sleep(0.05)
        raise TimeoutError(f"mariadbd not ready in {timeout} s: {self.error_log_tail()}")

    def stop(self) -> None:
        _terminate(self.proc, self.port, grace=30)
        self.proc = None

    def error_log_tail(self) -> str:
        try:
            return (self.root / "error.log").read_text()[-2000:]
        except OSError:
            return "(no error log)"

    def sql(self, statement: str, database: str | None = None, timeout: float = 30) -> str:
        args = [
            _which("mariadb", "mysql") or "mariadb",
            "--no-defaults",
            "-h127.0.0.1",
            f"-P{self.port}",
            "-uroot",
            "-N",
            "-B",
            "-e",
            statement,
        ]
        if database:
            args.append(database)
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)
        return done.stdout

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return name

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"


@dataclass
class Redis:
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # More redis-server arguments, e.g. the shipped `--maxmemory` settings.
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        binary = redis_binary()
        if binary is None:
            raise FileNotFoundError("redis-server not found")
        self.binary = binary
        self.root.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 15.0) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.root),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.root / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, timeout)

    def stop(self) -> None:
        _terminate(self.proc, self.port, grace=10)
        self.proc = None

    @contextlib.contextmanager
    def hung(self) -> Iterator[None]:
        """Redis stops answering (SIGSTOP) until the block ends: a partition, not a
        restart; its connections stay open and its data stays."""
        assert self.proc is not None, "redis is not running"
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"
