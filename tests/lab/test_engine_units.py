"""lab/engine.py: the rendered manifests' pod specs as container-engine arguments.

Pure and root-free: no engine runs here (tests/images runs them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.engine import Engine, run_argv, run_spec, sandbox_argv, split_command
from lab.images import ImageRuntime
from lab.manifests import Container, ManifestError, PodTemplate, load


@pytest.fixture(scope="module")
def backend() -> PodTemplate:
    manifests = load()
    return manifests.workloads["Deployment/backend"].template


def _spec(template: PodTemplate, container: Container, tmp_path: Path):
    dirs = {v.name: tmp_path / v.name for v in template.volumes}
    return run_spec(template, container, {"A": "1"}, container.command, container.args, dirs)


def test_the_backend_container_as_the_manifest_says(backend: PodTemplate, tmp_path: Path) -> None:
    (container,) = backend.containers
    spec = _spec(backend, container, tmp_path)
    assert spec.user == "10001:10001"
    assert spec.read_only and spec.cap_drop_all and spec.no_new_privileges
    assert not spec.seccomp_unconfined  # RuntimeDefault: the engine's own profile
    assert [(m.target, m.source, m.read_only) for m in spec.mounts] == [
        ("/tmp", str(tmp_path / "tmp"), False),
        # The Secret: read-only, whatever the volumeMount says.
        ("/run/secrets/mysql", str(tmp_path / "mysql-credentials"), True),
    ]
    assert spec.memory_bytes == 256 * 2**20
    assert spec.cpus == 0.5
    assert (spec.entrypoint, spec.args) == ("python", ("-m", "backend"))


def test_run_argv_spells_each_field(backend: PodTemplate, tmp_path: Path) -> None:
    (container,) = backend.containers
    spec = _spec(backend, container, tmp_path)
    env_file = tmp_path / "env"
    argv = run_argv(spec, "be", "container:be-pause", env_file)
    joined = " ".join(argv)
    for flag in (
        "--network container:be-pause",
        "--user 10001:10001",
        "--read-only",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        f"--memory {256 * 2**20} --memory-swap {256 * 2**20}",
        "--cpus 0.5",
        "--entrypoint python",
    ):
        assert flag in joined, flag
    assert "seccomp=unconfined" not in joined
    assert argv[-3:] == [container.image, "-m", "backend"]
    # The environment is in a private file, never on the command line.
    assert "A=1" not in argv
    assert env_file.read_text() == "A=1\n"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"


def test_command_replaces_entrypoint_and_args_replace_cmd() -> None:
    assert split_command(["python", "-m", "x"], ["--flag"]) == ("python", ["-m", "x", "--flag"])
    assert split_command([], ["redis-server", "--save", ""]) == (
        None,
        ["redis-server", "--save", ""],
    )
    assert split_command([], []) == (None, [])


def _template(pod_security: dict, container_security: dict) -> PodTemplate:
    raw = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {
            "securityContext": pod_security,
            "containers": [{"name": "c", "image": "i", "securityContext": container_security}],
        },
    }
    return PodTemplate.parse(raw, "test", ())


def test_the_container_security_context_wins_over_the_pod_one(tmp_path: Path) -> None:
    template = _template(
        {
            "runAsUser": 1,
            "runAsGroup": 2,
            "fsGroup": 3,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        {"runAsUser": 5, "seccompProfile": {"type": "Unconfined"}},
    )
    spec = _spec(template, template.containers[0], tmp_path)
    assert spec.user == "5:2"
    assert spec.groups == (3,)
    assert spec.seccomp_unconfined


def test_no_seccomp_profile_means_unconfined_as_on_a_default_kubelet(tmp_path: Path) -> None:
    template = _template({}, {})
    spec = _spec(template, template.containers[0], tmp_path)
    assert spec.seccomp_unconfined and spec.user is None and not spec.read_only


def test_run_as_non_root_with_uid_zero_is_refused(tmp_path: Path) -> None:
    template = _template({"runAsNonRoot": True}, {"runAsUser": 0})
    with pytest.raises(ManifestError, match="runAsNonRoot"):
        _spec(template, template.containers[0], tmp_path)


def test_a_localhost_seccomp_profile_is_refused_not_ignored() -> None:
    with pytest.raises(ManifestError, match="seccompProfile"):
        _template({"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}, {})


def test_the_sandbox_holds_the_ports_and_runs_nothing_writable() -> None:
    argv = sandbox_argv("p-pause", "img", "net", aliases=("backend",), publish=(8000,))
    joined = " ".join(argv)
    assert "--network-alias backend" in joined
    assert "--publish 127.0.0.1::8000" in joined
    assert "--read-only" in joined and "--cap-drop ALL" in joined
    assert argv[-2:] == ["img", "infinity"]


class _Recording(Engine):
    def __init__(self) -> None:
        super().__init__(("docker",))
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *argv: str, check: bool = True, timeout: float = 120) -> str:
        self.calls.append(argv)
        return "4242" if argv[0] == "inspect" else ""

    def remove(self, *names: str) -> None:
        pass


def test_the_sandbox_gives_the_pods_containers_the_pods_name_as_hostname() -> None:
    # A container run with `--network container:<sandbox>` takes the sandbox's hostname:
    # without one the engine's container id, where a pod's hostname is its name.
    engine = _Recording()
    name, pid = ImageRuntime(engine).sandbox("cip-backend-x", "img", "backend-abc-xyz")
    assert (name, pid) == ("cip-backend-x-pause", 4242)
    run = next(call for call in engine.calls if call[0] == "run")
    assert run[run.index("--hostname") + 1] == "backend-abc-xyz"


def test_has_image_reads_the_exit_status_not_the_output() -> None:
    # `docker image inspect missing` prints "[]" and exits 1.
    assert not Engine(("sh", "-c", "echo []; exit 1", "docker")).has_image("x:1")
    assert Engine(("sh", "-c", "echo '[{}]'", "docker")).has_image("x:1")
