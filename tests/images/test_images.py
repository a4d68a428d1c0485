"""Both images, run under the rendered manifests' pod specs: user and group,
read-only root, no capabilities, no privilege escalation, seccomp, emptyDirs,
env from the ConfigMaps and Secret, memory and CPU limits.

MySQL and Redis run from the stand-in images (Debian's MariaDB and redis-server
under the official images' names): what is proven here is the project's images,
never the official `mysql` or `redis` ones.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator

import httpx
import pymysql
import pytest

from lab.dockerfile import tier_command
from lab.engine import Engine
from lab.manifests import REPO
from tests.frontend.conftest import write_via_form
from tests.support.containers import Pod, PodRunner
from tests.support.held_read import HeldRead
from tests.support.waiting import wait_until

DEV_PACKAGES = (
    "pytest",
    "_pytest",
    "ruff",
    "schemathesis",
    "playwright",
    "hypothesis",
    "kubernetes_validate",
    "matplotlib",
    "uv",
    "pip",
    "setuptools",
)
RUNTIME_PACKAGES = {
    "backend": ("fastapi", "uvicorn", "sqlalchemy", "alembic", "redis"),
    "frontend": ("fastapi", "uvicorn", "jinja2", "httpx", "aiohttp"),
}
COMPILERS = (
    "gcc",
    "cc",
    "c++",
    "g++",
    "cpp",
    "clang",
    "tcc",
    "x86_64-linux-gnu-gcc",
    "aarch64-linux-gnu-gcc",
)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _status(engine: Engine, container: str) -> dict[str, str]:
    text = engine("exec", container, "cat", "/proc/1/status")
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _mysql_root(engine: Engine, pods: PodRunner, mysql: Pod) -> pymysql.Connection:
    # The generated Secret's name carries a content hash: mysql-credentials-<hash>.
    (secret,) = [v for k, v in pods.manifests.secrets.items() if k.startswith("mysql-credentials")]
    password = secret["MYSQL_ROOT_PASSWORD"]
    return pymysql.connect(
        host="127.0.0.1", port=mysql.ports[3306], user="root", password=password, database="app"
    )


@pytest.mark.parametrize(("tier", "port"), [("backend", 8000), ("frontend", 8080)])
def test_each_image_is_the_dockerfiles_stage_for_its_tier(
    engine: Engine, app_images: dict[str, str], tier: str, port: int
) -> None:
    """Both images come from the one Dockerfile, TIER picking the stage named for the tier."""
    inspected = engine("image", "inspect", "--format", "{{json .Config}}", app_images[tier])
    config = json.loads(inspected)
    assert config["Cmd"] == tier_command(REPO / "Dockerfile", tier) == ["python", "-m", tier]
    assert list(config["ExposedPorts"]) == [f"{port}/tcp"]
    assert f"PORT={port}" in config["Env"]
    assert config["User"] == "10001:10001"
    assert config["Labels"]["org.opencontainers.image.title"] == f"clusterip-demo-{tier}"


def test_a_build_that_names_no_tier_stops_and_says_so(
    engine: Engine, app_images: dict[str, str]
) -> None:
    label = '{{ index .Config.Labels "org.opencontainers.image.base.name" }}'
    base = engine("image", "inspect", "--format", label, app_images["backend"])
    done = subprocess.run(
        [
            *engine.command,
            *("build", "--force-rm", "--network", "host", "-f", "Dockerfile"),
            *("--build-arg", f"PYTHON_IMAGE={base}", "."),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    # The classic builder stops at the Dockerfile's own check (its message, with TIER
    # expanded to nothing); BuildKit already at `FROM ${TIER}`.
    output = done.stdout + done.stderr
    said = ("or TIER=frontend (TIER='')", "base name (${TIER}) should not be blank")
    assert any(message in output for message in said), output


@pytest.fixture(scope="module")
def stack(pods: PodRunner) -> Iterator[dict[str, Pod]]:
    """mysql, redis, backend (after its migrate init container) and frontend, as in k8s/."""
    mysql = pods.start("mysql", aliases=("mysql",))

    def mysql_answers() -> bool:
        try:
            _mysql_root(pods.engine, pods, mysql).close()
            return True
        except pymysql.MySQLError:
            return False

    wait_until(mysql_answers, timeout=120, interval=0.5)
    redis = pods.start("redis", aliases=("redis",))
    backend = pods.start("backend", aliases=("backend",))
    wait_until(lambda: _ready(backend.url(8000)), timeout=60, interval=0.3)
    frontend = pods.start("frontend", aliases=("frontend",))
    wait_until(lambda: _ready(frontend.url(8080)), timeout=60, interval=0.3)
    yield {"mysql": mysql, "redis": redis, "backend": backend, "frontend": frontend}


@pytest.mark.parametrize("tier", ["backend", "frontend"])
def test_image_holds_the_app_and_nothing_else(
    engine: Engine, app_images: dict[str, str], tier: str, measured: list[str]
) -> None:
    ref = app_images[tier]
    name = f"cid-contents-{tier}-{time.monotonic_ns()}"
    engine("create", "--name", name, ref)
    try:
        export = subprocess.Popen([*engine.command, "export", name], stdout=subprocess.PIPE)
        assert export.stdout is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            paths = [member.name.lstrip("./") for member in tar]
        export.wait(timeout=60)
    finally:
        engine.remove(name)
    parts = [p.split("/") for p in paths]
    site = [p[p.index("site-packages") + 1] for p in parts if "site-packages" in p[:-1]]
    # The listing is real: the app and its runtime dependencies are there.
    assert f"app/{tier}/__init__.py" in paths
    for package in RUNTIME_PACKAGES[tier]:
        assert package in site, f"{package} missing from {ref}"
    assert not [p for p in paths if p.startswith(("app/tests", "app/bench", "app/lab"))]
    assert not [p for p in parts if ".git" in p]
    assert not sorted({pkg for pkg in site if pkg in DEV_PACKAGES})
    binaries = {p[-1] for p in parts if len(p) >= 2 and p[-2] == "bin"}
    assert not binaries & set(COMPILERS)
    size = int(engine("image", "inspect", "--format", "{{.Size}}", ref))
    base = engine(
        "image",
        "inspect",
        "--format",
        '{{ index .Config.Labels "org.opencontainers.image.base.name" }}',
        ref,
    )
    measured.append(f"image {ref}: {size / 1e6:.0f} MB (base {base}), {len(paths)} files")


def test_every_tier_is_ready_and_a_form_post_shows_on_the_page(stack: dict[str, Pod]) -> None:
    front = stack["frontend"].url(8080)
    assert _ready(stack["backend"].url(8000))
    text = f"posted in the image test {time.monotonic_ns()}"
    with httpx.Client(base_url=front, timeout=10, follow_redirects=True) as client:
        posted = write_via_form(client, "Image Tester", text)
        assert posted.status_code == 200, posted.text[:500]
        assert text in client.get("/").text
    info = httpx.get(f"{stack['backend'].url(8000)}/api/info", timeout=5).json()
    assert info["database"] == "mysql"
    assert info["cache"] == "up", info


@pytest.mark.parametrize("tier", ["backend", "frontend"])
def test_runs_as_the_manifest_says(pods: PodRunner, stack: dict[str, Pod], tier: str) -> None:
    pod = stack[tier]
    spec = pod.specs[tier]
    status = _status(pods.engine, pod.containers[tier])
    uid, gid = spec.user.split(":") if spec.user else ("", "")
    assert status["Uid"].split() == [uid] * 4
    assert status["Gid"].split() == [gid] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, f"{caps} {status[caps]}"
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # a filter: the runtime's default profile
    # The limits, as the kernel enforces them (cgroup v1 or v2 files inside the container).
    limits = pods.engine("exec", pod.containers[tier], "python", "-c", CGROUP_LIMITS).split()
    assert [int(limits[0]), float(limits[1])] == [spec.memory_bytes, spec.cpus]
    # No password in the process's environment: the backend reads it from a file.
    environ = pods.engine("exec", pod.containers[tier], "cat", "/proc/1/environ")
    passwords = [v for k, v in spec.env.items() if "PASSWORD" in k and not k.endswith("_FILE")]
    assert not passwords
    for secret in pods.manifests.secrets.values():
        leaked = [k for k, v in secret.items() if "PASSWORD" in k and v in environ]
        assert not leaked


CGROUP_LIMITS = """
from pathlib import Path
v2 = Path("/sys/fs/cgroup/memory.max")
if v2.exists():
    memory = v2.read_text().strip()
    quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
else:
    memory = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").read_text().strip()
    quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
    period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
print(memory, int(quota) / int(period))
"""

WALK = """
import os, sys
mounts = sys.argv[1:]
found = []
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys", "/dev")) or any(
        root == m or root.startswith(m + "/") for m in mounts
    ):
        dirs[:] = []
        continue
    for path in [root, *(os.path.join(root, f) for f in files)]:
        if not os.path.islink(path) and os.access(path, os.W_OK):
            found.append(path)
print("\\n".join(found))
"""


@pytest.mark.parametrize("tier", ["backend", "frontend"])
def test_nothing_is_writable_outside_the_empty_dirs(
    pods: PodRunner, stack: dict[str, Pod], tier: str
) -> None:
    pod = stack[tier]
    container = pod.containers[tier]
    # The emptyDirs; the Secret's mount (backend) is read-only and walked like the rest.
    mounts = [m.target for m in pod.specs[tier].mounts if not m.read_only]
    assert mounts == ["/tmp"]
    writable = pods.engine("exec", container, "python", "-c", WALK, *mounts)
    assert writable == ""
    # ... and the emptyDir is.
    pods.engine("exec", container, "python", "-c", "open('/tmp/probe', 'w').write('x')")


def test_memory_under_load_stays_under_the_limits(
    pods: PodRunner, stack: dict[str, Pod], measured: list[str]
) -> None:
    front = stack["frontend"].url(8080)
    stop = time.monotonic() + 6
    failures: list[str] = []
    counts = [0]

    def load() -> None:
        with httpx.Client(base_url=front, timeout=10) as client:
            while time.monotonic() < stop:
                response = client.get("/")
                counts[0] += 1
                if response.status_code != 200:
                    failures.append(str(response.status_code))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert counts[0] > 0 and not failures, failures[:5]
    for tier in ("backend", "frontend"):
        pod = stack[tier]
        limit = pod.specs[tier].memory_bytes
        assert limit is not None
        peak = int(_status(pods.engine, pod.containers[tier])["VmHWM"].split()[0]) * 1024
        measured.append(
            f"{tier}: peak resident memory {peak / 2**20:.0f} MiB of a {limit / 2**20:.0f} MiB "
            f"limit ({100 * peak / limit:.0f} %) after {counts[0]} page loads from 8 clients"
        )
        # Headroom: a quarter of the limit stays free at the peak.
        assert peak < 0.75 * limit


def test_sigterm_lets_a_slow_request_finish_and_exits_zero(
    pods: PodRunner, stack: dict[str, Pod], measured: list[str]
) -> None:
    # A pod of its own, outside the Service name: the frontend never sends it traffic.
    backend = pods.start("backend")
    url = backend.url(8000)
    wait_until(lambda: _ready(url), timeout=60, interval=0.3)
    holder = _mysql_root(pods.engine, pods, stack["mysql"])
    read = HeldRead(f"{url}/api/messages/999999", holder, timeout=60)
    container = backend.containers["backend"]
    try:
        read.start()
        signalled = time.monotonic()
        pods.engine("kill", "--signal", "TERM", container)
        time.sleep(2)
        assert pods.engine.inspect(container)["State"]["Running"], "exited with a request in flight"
        read.release(join_timeout=30)
        code = pods.engine.exit_code(container, timeout=backend.grace)
        took = time.monotonic() - signalled
    finally:
        holder.close()
    response = read.response()
    assert response.status_code == 404  # answered properly: no such message
    assert code == 0
    assert took < backend.grace / 2
    measured.append(
        f"backend: SIGTERM with a request in flight → request answered, exit 0 after "
        f"{took:.1f} s (terminationGracePeriodSeconds {backend.grace:.0f})"
    )
    pods.delete(backend)


def test_backend_image_on_sqlite_in_its_empty_dir(pods: PodRunner) -> None:
    """No MySQL: the init container migrates a SQLite file in the pod's emptyDir."""
    backend = pods.start(
        "backend", env={"DATABASE_URL": "sqlite:////tmp/guestbook.db", "REDIS_URL": ""}
    )
    url = backend.url(8000)
    wait_until(lambda: _ready(url), timeout=60, interval=0.3)
    created = httpx.post(
        f"{url}/api/messages", json={"author": "Lite", "text": "on sqlite"}, timeout=10
    )
    assert created.status_code == 201, created.text
    listed = httpx.get(f"{url}/api/messages", timeout=10).json()
    assert [m["text"] for m in listed["items"]][:1] == ["on sqlite"]
    info = httpx.get(f"{url}/api/info", timeout=5).json()
    assert (info["database"], info["cache"]) == ("sqlite", "disabled")
    pods.delete(backend)
