"""docker-compose.yml, up for real: every service healthy in dependency order, the
page and its form, `--scale backend=3`, the networks that keep the frontend away
from MySQL and Redis, `make down` keeping the messages, and `make down-volumes`
leaving nothing.

MySQL and Redis are stand-ins under the official images' names
(scripts/standin-images.sh); scripts/standins/compose.override.yml changes only
the build (a stand-in python base, the host network for pip). The compose file
is otherwise run as written.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from lab.engine import Engine
from tests.conftest import missing
from tests.frontend.conftest import write_via_form
from tests.support import host_state
from tests.support.containers import REPO
from tests.support.waiting import wait_until

PROJECT = "cid-compose-test"
FILES = ["-f", "docker-compose.yml", "-f", "scripts/standins/compose.override.yml"]
PAGE = "http://127.0.0.1:8080"
LONG_RUNNING = ("mysql", "redis", "backend", "frontend")


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if done.returncode == 0:
        return ["docker", "compose"]
    missing("neither docker-compose nor `docker compose` is installed")
    return []


class Compose:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.command = [*_compose_command(), "-p", PROJECT, *FILES]

    def __call__(self, *argv: str, timeout: float = 600) -> str:
        done = subprocess.run(
            [*self.command, *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.engine.environ(),
        )
        assert done.returncode == 0, f"compose {' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def containers(self, service: str | None = None) -> list[dict]:
        label = f"com.docker.compose.project={PROJECT}"
        filters = ["--filter", f"label={label}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = self.engine("ps", "--all", "--quiet", *filters).split()
        return [json.loads(self.engine("inspect", i))[0] for i in ids]

    def one(self, service: str) -> dict:
        (found,) = self.containers(service)
        return found


def _time(text: str) -> datetime:
    # Docker's RFC 3339 with nanoseconds; seconds resolution is enough for ordering.
    return datetime.fromisoformat(text[:19])


def _first_healthy(container: dict) -> datetime:
    log = container["State"]["Health"]["Log"]
    return min(_time(entry["End"]) for entry in log if entry["ExitCode"] == 0)


def _healthy(compose: Compose, service: str, count: int = 1) -> bool:
    found = compose.containers(service)
    return len(found) == count and all(
        c["State"].get("Health", {}).get("Status") == "healthy" for c in found
    )


def _can_connect(compose: Compose, container: str, host: str, port: int) -> bool:
    probe = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=2).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    done = subprocess.run(
        [*compose.engine.command, "exec", container, "python", "-c", probe],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture(scope="module")
def compose(
    engine: Engine,
    standin_images: dict[str, str],
    measured: list[str],
) -> Iterator[Compose]:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", 8080)) == 0:
            pytest.fail("127.0.0.1:8080 is taken: compose publishes the frontend there")
    before = host_state.snapshot()
    project = Compose(engine)
    project("down", "--volumes", "--remove-orphans")
    started = time.monotonic()
    project("up", "--detach", "--build")
    took = wait_until(lambda: all(_healthy(project, s) for s in LONG_RUNNING), 240, 1.0)
    measured.append(
        f"compose: up (build cached) to every service healthy in "
        f"{time.monotonic() - started:.0f} s ({took:.0f} s after `up` returned)"
    )
    try:
        yield project
    finally:
        project("down", "--volumes", "--remove-orphans")
        assert not host_state.differences(before, host_state.snapshot())


def test_services_start_healthy_in_dependency_order(compose: Compose) -> None:
    mysql, redis = compose.one("mysql"), compose.one("redis")
    migrate, backend, frontend = (compose.one(s) for s in ("migrate", "backend", "frontend"))
    assert migrate["State"]["Status"] == "exited" and migrate["State"]["ExitCode"] == 0
    assert _time(migrate["State"]["StartedAt"]) >= _first_healthy(mysql)
    backend_started = _time(backend["State"]["StartedAt"])
    assert backend_started >= _time(migrate["State"]["FinishedAt"])
    assert backend_started >= _first_healthy(redis)
    assert _time(frontend["State"]["StartedAt"]) >= _first_healthy(backend)


def test_the_page_and_a_message_posted_through_its_form(compose: Compose) -> None:
    text = f"posted through compose {time.monotonic_ns()}"
    with httpx.Client(base_url=PAGE, timeout=10, follow_redirects=True) as client:
        posted = write_via_form(client, "Compose Tester", text)
        assert posted.status_code == 200, posted.text[:300]
        assert text in client.get("/").text  # after a reload, from MySQL or Redis
    info = httpx.get(f"{PAGE}/api/route", timeout=10).json()
    assert info["runs_on"]["place"] == "compose"  # Docker DNS, no virtual IP


def test_three_backends_answer_and_migrate_ran_once(compose: Compose) -> None:
    migrate_started = compose.one("migrate")["State"]["StartedAt"]
    # What `make scale` runs: --no-deps, so the one-shot migrate is not started again.
    compose("up", "--detach", "--no-deps", "--scale", "backend=3", "backend")
    wait_until(lambda: _healthy(compose, "backend", 3), 120, 1.0)
    backends = {c["Config"]["Hostname"] for c in compose.containers("backend")}
    seen: set[str] = set()
    for _ in range(5):
        spread = httpx.get(f"{PAGE}/api/spread", params={"n": 30}, timeout=30).json()
        seen |= set(spread["fresh_connections"]["pods"])
        if seen == backends:
            break
    assert seen == backends and len(backends) == 3
    migrate = compose.one("migrate")
    assert migrate["State"]["StartedAt"] == migrate_started
    assert compose.engine.logs(migrate["Name"].lstrip("/")).count("migrating to head") == 1


def test_only_the_backend_reaches_mysql_and_redis(compose: Compose) -> None:
    frontend = compose.one("frontend")["Name"].lstrip("/")
    backend = compose.containers("backend")[0]["Name"].lstrip("/")
    mysql_ip = next(iter(compose.one("mysql")["NetworkSettings"]["Networks"].values()))
    redis_ip = next(iter(compose.one("redis")["NetworkSettings"]["Networks"].values()))
    for host, port in (("mysql", 3306), ("redis", 6379)):
        assert _can_connect(compose, backend, host, port)
        assert not _can_connect(compose, frontend, host, port)
    # Not by address either: the two networks do not route to each other.
    assert not _can_connect(compose, frontend, mysql_ip["IPAddress"], 3306)
    assert not _can_connect(compose, frontend, redis_ip["IPAddress"], 6379)


def _make(compose: Compose, target: str) -> None:
    """The Makefile's own target, with this test's project and files."""
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"COMPOSE={' '.join(compose.command)}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=compose.engine.environ(),
    )
    assert done.returncode == 0, f"make {target}:\n{done.stdout}\n{done.stderr}"


def test_make_down_keeps_the_messages(compose: Compose) -> None:
    text = f"kept across make down {time.monotonic_ns()}"
    with httpx.Client(base_url=PAGE, timeout=10, follow_redirects=True) as client:
        assert write_via_form(client, "Compose Tester", text).status_code == 200
    _make(compose, "down")
    label = f"label=com.docker.compose.project={PROJECT}"
    assert compose.engine("ps", "--all", "--quiet", "--filter", label) == ""
    assert compose.engine("volume", "ls", "--quiet", "--filter", label) != ""
    compose("up", "--detach")
    wait_until(lambda: all(_healthy(compose, s) for s in LONG_RUNNING), 240, 1.0)
    assert text in httpx.get(PAGE, timeout=10).text


def test_make_down_volumes_leaves_nothing(compose: Compose) -> None:
    _make(compose, "down-volumes")
    label = f"label=com.docker.compose.project={PROJECT}"
    engine = compose.engine
    assert engine("ps", "--all", "--quiet", "--filter", label) == ""
    assert engine("network", "ls", "--quiet", "--filter", label) == ""
    assert engine("volume", "ls", "--quiet", "--filter", label) == ""
