"""What `lab up` starts beside its node: the API server and the user's `clusterip-lab`
context, checked with the machine's real kubectl, and gone again on the way out.

Root-free: a temporary kubeconfig (never the user's) that already holds another context.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from lab.api import kubeconfig
from lab.controlplane import ControlPlane, remove
from lab.naming import NODE_NAME
from tests.conftest import missing
from tests.lab.test_api_kubectl import KUBECTL, Kubectl

OTHER = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "work", "cluster": {"server": "https://10.0.0.1:6443"}}],
    "users": [{"name": "work", "user": {"token": "t"}}],
    "contexts": [{"name": "work", "context": {"cluster": "work", "user": "work"}}],
    "current-context": "work",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    if not (Path(KUBECTL).exists() and shutil.which("kubectl")):
        missing("kubectl is not installed at /usr/bin/kubectl")
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(yaml.safe_dump(OTHER))
    return tmp_path


def test_the_context_reaches_the_labs_node_and_goes_with_the_lab(home: Path) -> None:
    config = home / ".kube" / "config"
    plane = ControlPlane(home / "api", config)
    plane.start()
    try:
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        kubectl = Kubectl(home, config)
        nodes = json.loads(
            kubectl.run("--context", "clusterip-lab", "get", "nodes", "-o", "json").stdout
        )
        [node] = nodes["items"]
        assert node["metadata"]["name"] == NODE_NAME
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"
        services = kubectl.run("get", "svc", "-A").stdout
        assert "kube-dns" in services and "53/UDP,53/TCP,9153/TCP" in services
        assert "kubernetes" in services
        kept = yaml.safe_load(config.read_text())
        assert [c["name"] for c in kept["contexts"]] == ["work", "clusterip-lab"]
    finally:
        plane.stop()
    after = yaml.safe_load(config.read_text())
    assert [c["name"] for c in after["contexts"]] == ["work"]
    assert after["current-context"] == ""
    assert not (home / "api").exists()


def test_down_after_a_crash_removes_the_context_and_the_state(home: Path) -> None:
    config = home / ".kube" / "config"
    kubeconfig.add_context(config, "https://127.0.0.1:1", b"CA", "token")
    (home / "api").mkdir()
    (home / "api" / "apiserver.json").write_text("{}")
    removed = remove(config, home / "api")
    assert len(removed) == 2
    assert "clusterip-lab" not in config.read_text()
    assert not (home / "api").exists()
    assert remove(config, home / "api") == []
