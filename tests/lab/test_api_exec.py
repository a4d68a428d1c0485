"""`kubectl exec` and `kubectl logs` through the lab's API server to a kubelet, root-free.

The API server is started in this process with a kubelet stand-in: exec enters nothing
(it runs the command here, with the pod's name in the environment) and the logs are
files written as the lab's kubelet writes them. The client is the machine's kubectl,
which tries the WebSocket channel protocol first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.api.server import InThread, Running
from tests.conftest import missing
from tests.lab.test_api_kubectl import KUBECTL, Kubectl, _wait_for, kubectl_for

POD = """
apiVersion: v1
kind: Pod
metadata: {name: shell, namespace: default}
spec:
  containers:
    - {name: main, image: busybox}
    - {name: side, image: busybox}
"""


THREADS: list[InThread] = []  # the module's server, for writes only a kubelet makes


class HereKubelet:
    """Runs an exec'd command in this machine's own namespaces, as the pod's user would."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, bool]] = []

    def exec_argv(
        self, pod: str, container: str, stdin: bool, tty: bool = False
    ) -> tuple[list[str], dict[str, str]] | None:
        self.asked.append((pod, container, stdin))
        if container == "side":
            return None  # not running
        return ["env"], {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "POD": pod}


@pytest.fixture(scope="module")
def kubelet() -> HereKubelet:
    return HereKubelet()


@pytest.fixture(scope="module")
def pods_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pods")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, kubelet: HereKubelet, pods_dir: Path
) -> Iterator[Running]:
    if not Path(KUBECTL).exists():
        missing("kubectl is not installed at /usr/bin/kubectl")
    thread = InThread(tmp_path_factory.mktemp("apiserver"), pods_dir=pods_dir, kubelet=kubelet)
    running = thread.start()
    THREADS.append(thread)
    yield running
    thread.stop()


@pytest.fixture(scope="module")
def kubectl(server: Running, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    client = kubectl_for(server, tmp_path_factory.mktemp("kubectl-home"))
    client.run("apply", "-f", "-", stdin=POD)
    _wait_for(lambda: client.run("get", "pod", "shell", "-o", "jsonpath={.spec.nodeName}").stdout)
    return client


def test_exec_runs_the_command_and_returns_its_output(
    kubectl: Kubectl, kubelet: HereKubelet
) -> None:
    done = kubectl.run(
        "exec", "shell", "-c", "main", "--", "sh", "-c", 'echo "on $POD"; echo oops >&2'
    )
    assert done.stdout == "on shell\n"
    assert "oops" in done.stderr
    assert kubelet.asked[-1] == ("shell", "main", False)


def test_exec_passes_stdin_and_the_exit_code(kubectl: Kubectl) -> None:
    done = kubectl.run(
        "exec",
        "-i",
        "shell",
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "tr a-z A-Z; exit 3",
        stdin="hello\n",
        check=False,
    )
    assert done.stdout == "HELLO\n"
    assert done.returncode == 3, done.stderr


def test_exec_into_a_container_that_is_not_running_fails(kubectl: Kubectl) -> None:
    done = kubectl.run("exec", "shell", "-c", "side", "--", "true", check=False)
    assert done.returncode != 0
    assert "side" in done.stderr or "not" in done.stderr


def test_logs_show_the_current_start_tail_and_previous(kubectl: Kubectl, pods_dir: Path) -> None:
    (pods_dir / "shell").mkdir(exist_ok=True)
    (pods_dir / "shell" / "main.log").write_text(
        "--- lab: starting main\nfirst run\n--- lab: starting main\none\ntwo\nthree\n"
    )
    assert kubectl.run("logs", "shell", "-c", "main").stdout == "one\ntwo\nthree\n"
    assert kubectl.run("logs", "shell", "-c", "main", "--tail=1").stdout == "three\n"
    assert kubectl.run("logs", "shell", "-c", "main", "--previous").stdout == "first run\n"
    refused = kubectl.run("logs", "shell", "-c", "nope", check=False)
    assert refused.returncode != 0 and "container nope is not valid" in refused.stderr


@pytest.fixture(scope="module")
def pod_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 standing in for the pod's port: it answers with what it
    read, upper-cased, then closes."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                conn.sendall(b"pod says " + data.upper())

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def _give_address(server_thread: InThread, ip: str) -> None:
    from lab.api.resources import lookup

    pods = lookup("", "v1", "pods")
    assert pods is not None

    def update() -> None:
        pod = server_thread.running.store.get(pods, "default", "shell")  # type: ignore[union-attr]
        pod["status"] = {**pod.get("status", {}), "podIP": ip, "phase": "Running"}
        server_thread.running.store.update(pods, pod, "status")  # type: ignore[union-attr]

    server_thread.call(update)


def test_port_forward_carries_a_connection_to_the_pods_port(
    kubectl: Kubectl, server: Running, pod_server: int
) -> None:
    import socket
    import time

    from tests.support.ports import free_port

    thread = THREADS[0]
    _give_address(thread, "127.0.0.1")
    local = free_port()
    forward = kubectl.popen("port-forward", "pod/shell", f"{local}:{pod_server}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", local), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "kubectl port-forward never listened"
                time.sleep(0.1)
        with conn:
            conn.sendall(b"hello")
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        assert answer == b"pod says HELLO"
    finally:
        forward.terminate()
        out = forward.communicate(timeout=10)[0]
    assert f"Forwarding from 127.0.0.1:{local} -> {pod_server}" in out, out


def test_exec_with_a_terminal_gives_the_command_one(kubectl: Kubectl) -> None:
    """`kubectl exec -it`, itself on a terminal as a person's is: the command gets a
    pseudo-terminal of its own, sized as the client's."""
    import pty
    import select
    import subprocess

    master, slave = pty.openpty()
    done = subprocess.Popen(
        [KUBECTL, "exec", "-it", "shell", "-c", "main", "--", "sh", "-c", "tty; stty size"],
        env=kubectl.env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 20)
            assert ready, f"no output from kubectl exec -it: {out!r}"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: kubectl exited
                break
            if not chunk:
                break
            out += chunk
    finally:
        done.wait(timeout=20)
        os.close(master)
    text = out.decode(errors="replace")
    assert done.returncode == 0, text
    assert "/dev/pts/" in text, text  # the command's stdin is a terminal
    assert any(
        len(line.split()) == 2 and line.split()[0].isdigit() for line in text.splitlines()
    ), text
