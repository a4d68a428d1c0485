"""The lab's parts that need no root: manifests, env, runtime mapping, probes.

These run everywhere; only the checks that read the real k8s/ need kubectl.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from lab import runtime
from lab.envvars import EnvError, PodFacts, container_env, expand, service_link_env
from lab.kubelet import Backoff
from lab.kubeproxy.iptables import render_filter, render_nat
from lab.kubeproxy.model import sep_chain, svc_chain
from lab.manifests import (
    REPO,
    Container,
    ManifestError,
    Selector,
    Service,
    ServicePort,
    Volume,
    load,
    parse_documents,
    render,
)
from lab.naming import (
    NODE_POD_CIDR,
    SERVICE_CIDR,
    host_iface,
    service_ip,
    template_hash,
)
from lab.network import _hosts_file
from lab.probes import _programs, exec_fallback, http_get, mysql_handshake, redis_ping
from lab.volumes import MountError, secret_files, write_secret_volume
from tests.conftest import missing
from tests.lab.labctl import lab_unavailable

FACTS = PodFacts(
    name="backend-abc-12345",
    namespace="clusterip-demo",
    uid="u-1",
    ip="10.244.1.7",
    node_name="lab-node-1",
    host_ip="10.244.1.1",
    labels={"app.kubernetes.io/name": "backend"},
    annotations={},
)


def _container(**raw: object) -> Container:
    return Container.parse({"name": "c", "image": "clusterip-demo/backend:0.1.0", **raw}, "test")


@pytest.fixture(scope="module")
def manifests():  # type: ignore[no-untyped-def]
    if shutil.which("kubectl") is None:
        missing("kubectl is not installed: the lab renders k8s/ with `kubectl kustomize`")
    return load()


# --- $(VAR) expansion and the kubelet's environment ----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x-$(A)-$(B)-y", "x-1-two-y"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$1"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("$", "$"),
        ("$$", "$"),
        ("$()", "$()"),
        ("no vars", "no vars"),
    ],
)
def test_expand_like_kubernetes(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "two"}.get) == expected


def test_env_precedence_and_sources() -> None:
    container = _container(
        envFrom=[
            {"configMapRef": {"name": "cm"}},
            {"secretRef": {"name": "sec"}, "prefix": "S_"},
            {"configMapRef": {"name": "absent", "optional": True}},
        ],
        env=[
            {"name": "A", "value": "from-env"},
            {"name": "URL", "value": "mysql://$(USER)@$(HOST):3306/$(MISSING)"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "APP",
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/name']"}
                },
            },
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope", "optional": True}},
            },
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
        ],
        resources={"limits": {"memory": "256Mi", "cpu": "500m"}},
    )
    env = container_env(
        container,
        FACTS,
        {"cm": {"A": "from-cm", "USER": "app", "HOST": "mysql", "bad key": "skipped"}},
        {"sec": {"pw": "s3cret"}},
        {"BACKEND_SERVICE_HOST": "10.96.0.20", "A": "from-service-link"},
    )
    assert env["A"] == "from-env"  # env beats envFrom beats service links
    assert env["URL"] == "mysql://app@mysql:3306/$(MISSING)"
    assert env["IP"] == FACTS.ip and env["NAME"] == FACTS.name and env["APP"] == "backend"
    assert env["PW"] == "s3cret" and env["S_pw"] == "s3cret"
    assert "OPT" not in env and "bad key" not in env
    assert env["MEM"] == "256"
    assert env["BACKEND_SERVICE_HOST"] == "10.96.0.20"


def test_missing_secret_is_a_config_error() -> None:
    container = _container(
        env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "pw"}}}]
    )
    with pytest.raises(EnvError, match="Secret 'nope'"):
        container_env(container, FACTS, {}, {}, {})


def test_service_link_variables() -> None:
    svc = Service("my-backend", "ns", {"a": "b"}, (ServicePort("http", 8000, "http"),), None)
    env = service_link_env([(svc, "10.96.0.20")])
    assert env["MY_BACKEND_SERVICE_HOST"] == "10.96.0.20"
    assert env["MY_BACKEND_SERVICE_PORT"] == "8000"
    assert env["MY_BACKEND_SERVICE_PORT_HTTP"] == "8000"
    assert env["MY_BACKEND_PORT_8000_TCP_ADDR"] == "10.96.0.20"


def test_the_real_manifests_as_the_lab_reads_them(manifests) -> None:  # type: ignore[no-untyped-def]
    assert set(manifests.services) == {"frontend", "backend", "redis", "mysql", "mysql-headless"}
    headless = manifests.services["mysql-headless"]
    assert headless.headless and headless.cluster_ip is None
    assert not manifests.services["mysql"].headless
    assert manifests.workloads["StatefulSet/mysql"].service_name == "mysql-headless"
    assert manifests.workloads["Deployment/backend"].replicas == 3
    assert manifests.workloads["Deployment/frontend"].replicas == 2
    backend = manifests.workloads["Deployment/backend"].template
    assert [c.name for c in backend.init_containers] == ["migrate"]
    assert backend.containers[0].port_number("http") == 8000
    assert manifests.services["frontend"].ports[0].target_port == "http"
    env = container_env(backend.containers[0], FACTS, manifests.config_maps, manifests.secrets, {})
    # The password is a file of the Secret volume, never a variable.
    assert env["DATABASE_PASSWORD_FILE"] == "/run/secrets/mysql/MYSQL_PASSWORD"
    assert not [name for name in env if "PASSWORD" in name and not name.endswith("_FILE")]
    (volume,) = [v for v in backend.volumes if v.kind == "secret"]
    assert volume.secret_name in manifests.secrets
    assert volume.items == (("MYSQL_PASSWORD", "MYSQL_PASSWORD"),)
    assert volume.default_mode == 0o440
    assert volume.name == "mysql-credentials"
    assert dict(backend.containers[0].volume_mounts)[volume.name] == "/run/secrets/mysql"
    assert env["ENVIRONMENT"] == "development"  # the dev kustomization, which the lab runs
    assert env["POD_IP"] == FACTS.ip and env["NODE_NAME"] == "lab-node-1"
    assert env["REDIS_URL"] == "redis://redis:6379/0"


# --- what the lab refuses ------------------------------------------------------------------


def _doc(kind: str, name: str, spec: dict) -> dict:  # type: ignore[type-arg]
    return {"kind": kind, "metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def _deployment(pod_spec: dict) -> dict:  # type: ignore[type-arg]
    return _doc(
        "Deployment",
        "web",
        {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec},
        },
    )


def test_unsupported_fields_are_refused_not_ignored() -> None:
    with pytest.raises(ManifestError, match="NodePort"):
        parse_documents([_doc("Service", "web", {"type": "NodePort", "ports": [{"port": 80}]})])
    with pytest.raises(ManifestError, match="hostNetwork"):
        parse_documents(
            [_deployment({"hostNetwork": True, "containers": [{"name": "c", "image": "x"}]})]
        )
    with pytest.raises(ManifestError, match="hostPath"):
        parse_documents(
            [
                _deployment(
                    {
                        "containers": [{"name": "c", "image": "x"}],
                        "volumes": [{"name": "v", "hostPath": {"path": "/"}}],
                    }
                )
            ]
        )
    with pytest.raises(ManifestError, match="does not match"):
        doc = _deployment({"containers": [{"name": "c", "image": "x"}]})
        doc["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        parse_documents([doc])
    with pytest.raises(ManifestError, match="bad path"):
        volume = {
            "name": "s",
            "secret": {"secretName": "x", "items": [{"key": "k", "path": "../k"}]},
        }
        parse_documents(
            [_deployment({"containers": [{"name": "c", "image": "x"}], "volumes": [volume]})]
        )


# --- Secret volumes ------------------------------------------------------------------------


def _secret_volume(**source: object) -> Volume:
    return Volume.secret({"name": "creds", "secret": {"secretName": "db", **source}}, "test")


def test_secret_volume_files_follow_items_and_optional() -> None:
    data = {"MYSQL_PASSWORD": "pw", "MYSQL_ROOT_PASSWORD": "root"}
    every = _secret_volume()
    assert secret_files(every, data) == data
    picked = _secret_volume(items=[{"key": "MYSQL_PASSWORD", "path": "app/password"}])
    assert secret_files(picked, data) == {"app/password": "pw"}
    with pytest.raises(MountError, match="Secret 'db' not found"):
        secret_files(every, None)
    with pytest.raises(MountError, match="key 'nope'"):
        secret_files(_secret_volume(items=[{"key": "nope", "path": "p"}]), data)
    assert secret_files(_secret_volume(optional=True), None) == {}


@pytest.mark.parametrize(("fs_group", "mode"), [(None, 0o400), (10001, 0o440)])
def test_secret_volume_is_written_like_the_kubelets(
    tmp_path: Path, fs_group: int | None, mode: int
) -> None:
    volume = _secret_volume(
        items=[{"key": "MYSQL_PASSWORD", "path": "MYSQL_PASSWORD"}], defaultMode=0o400
    )
    target = tmp_path / "pods" / "p" / "volumes" / "creds"
    (target).mkdir(parents=True)
    (target / "stale").write_text("from an earlier start")
    write_secret_volume(target, volume, {"MYSQL_PASSWORD": "pw\n", "OTHER": "x"}, fs_group)
    assert sorted(p.name for p in target.iterdir()) == ["MYSQL_PASSWORD"]
    written = target / "MYSQL_PASSWORD"
    assert written.read_text() == "pw\n"  # the value exactly, as the kubelet writes it
    # With fsGroup the kubelet makes the files group-readable for the pod's group.
    assert written.stat().st_mode & 0o777 == mode
    if os.geteuid() == 0:
        assert (written.stat().st_uid, written.stat().st_gid) == (0, fs_group or 0)


def test_fs_group_is_a_supplementary_group_as_the_kubelet_adds_it() -> None:
    if shutil.which("setpriv") is None:
        missing("setpriv (util-linux) is not installed")
    same = runtime.SecurityContext(run_as_user=10001, run_as_group=10001, fs_group=10001)
    other = runtime.SecurityContext(run_as_user=10001, run_as_group=10001, fs_group=2000)
    assert "--clear-groups" in runtime.privilege_prefix(10001, 10001, same)
    assert "--groups=2000" in runtime.privilege_prefix(10001, 10001, other)
    assert "--clear-groups" in runtime.privilege_prefix(10001, 10001, runtime.SecurityContext())


def test_mysql_file_env_like_the_official_entrypoint(tmp_path: Path) -> None:
    password = tmp_path / "MYSQL_PASSWORD"
    password.write_text("p'w\n\n")
    env = runtime.file_env({"MYSQL_PASSWORD_FILE": str(password), "MYSQL_USER": "app"})
    assert env == {"MYSQL_PASSWORD": "p'w", "MYSQL_USER": "app"}
    with pytest.raises(ManifestError, match="both MYSQL_PASSWORD and MYSQL_PASSWORD_FILE"):
        runtime.file_env({"MYSQL_PASSWORD_FILE": str(password), "MYSQL_PASSWORD": "x"})
    with pytest.raises(ManifestError, match=r"MYSQL_ROOT_PASSWORD_FILE=.*absent"):
        runtime.file_env({"MYSQL_ROOT_PASSWORD_FILE": str(tmp_path / "absent")})


def test_env_paths_under_a_mount_point_at_the_volume() -> None:
    volumes = runtime.VolumeMap({"/run/secrets/mysql": Path("/h/pod/volumes/creds")})
    env = volumes.rewrite_env(
        {
            "DATABASE_PASSWORD_FILE": "/run/secrets/mysql/MYSQL_PASSWORD",
            "OTHER_FILE": "/run/secrets/other",
            "HOST": "0.0.0.0",
        }
    )
    assert env["DATABASE_PASSWORD_FILE"] == "/h/pod/volumes/creds/MYSQL_PASSWORD"
    assert env["OTHER_FILE"] == "/run/secrets/other" and env["HOST"] == "0.0.0.0"


def test_a_headless_service_gets_no_virtual_ip_and_no_rules(manifests) -> None:  # type: ignore[no-untyped-def]
    from lab.api.controllers import endpointslice
    from lab.sources.envvars import service_env
    from lab.sources.kubeproxy import service_port_rules
    from tests.lab import apicluster

    # The rendered k8s/ (`manifests` has checked kubectl is there) as the API server stores it.
    store = apicluster.cluster()
    apicluster.apply(store, [d for d in yaml.safe_load_all(render()) if d])
    endpointslice.reconcile(store)
    services = apicluster.listed(store, "services")
    ips = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in services}
    assert ips["mysql-headless"] == "None"
    assert ipaddress.ip_address(ips["mysql"]) in SERVICE_CIDR
    env = service_env(services, manifests.namespace)
    assert "MYSQL_SERVICE_HOST" in env
    assert not any("MYSQL_HEADLESS" in name for name in env)
    rules = service_port_rules(*apicluster.services_and_slices(store))
    chains = {rule.port_name for rule in rules}
    assert "clusterip-demo/mysql:mysql" in chains
    assert not any("mysql-headless" in chain for chain in chains)
    # Neither iptables table names it; mysql, with no endpoint yet, has its REJECT.
    written = render_nat(rules) + render_filter(rules)
    assert "mysql-headless" not in written and "clusterip-demo/mysql:mysql" in written


def test_selectors() -> None:
    selector = Selector.parse(
        {
            "matchLabels": {"tier": "web"},
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["a", "b"]},
                {"key": "debug", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches({"tier": "web", "app": "a"})
    assert not selector.matches({"tier": "web", "app": "c"})
    assert not selector.matches({"tier": "web", "app": "a", "debug": "1"})
    assert Selector().matches({"anything": "x"})


# --- names and addresses -----------------------------------------------------------------


def test_names_fit_the_kernels_limits() -> None:
    long_pod = "backend-" + "x" * 200
    assert len(host_iface(long_pod)) <= 15 and host_iface(long_pod).startswith("cip")
    assert host_iface("a") != host_iface("b")
    chain = svc_chain("clusterip-demo/backend:http", "TCP")
    assert chain.startswith("CIP-SVC-") and len(chain) <= 28
    assert chain == svc_chain("clusterip-demo/backend:http", "TCP")
    assert sep_chain("ns/s:p", "TCP", "10.244.1.2:80") != sep_chain(
        "ns/s:p", "TCP", "10.244.1.3:80"
    )
    assert len(template_hash("x")) == 10 and template_hash("x") == template_hash("x")


def test_service_ips_are_stable_and_in_range() -> None:
    first = service_ip("clusterip-demo", "backend", set())
    assert first == service_ip("clusterip-demo", "backend", set())
    assert ipaddress.ip_address(first) in SERVICE_CIDR
    other = service_ip("clusterip-demo", "backend", {first})
    assert other != first and ipaddress.ip_address(other) in SERVICE_CIDR


def test_hosts_file_of_a_pod_has_its_own_names_and_no_service() -> None:
    hosts = _hosts_file("web-0", "10.244.1.9", ["web-0.web.ns.svc.cluster.local"])
    assert "10.244.1.9\tweb-0.web.ns.svc.cluster.local web-0" in hosts
    assert "127.0.0.1\tlocalhost" in hosts
    # Service names are the cluster DNS's job now, not the hosts file's.
    assert "10.96." not in hosts and "backend" not in hosts


# --- kube-proxy's rules --------------------------------------------------------------------


# --- containers → processes ------------------------------------------------------------------


def test_image_kinds() -> None:
    assert runtime.image_kind("clusterip-demo/backend:0.1.0") == ("app", "backend")
    assert runtime.image_kind("redis:7.4.11-bookworm") == ("redis", "redis")
    assert runtime.image_kind("docker.io/library/mysql:8.4.11") == ("mysql", "mysql")
    assert runtime.image_kind("mysql@sha256:abc")[0] == "mysql"
    with pytest.raises(ManifestError):
        runtime.image_kind("nginx:1.27")


def test_dockerfile_cmds() -> None:
    assert runtime.dockerfile_cmd("backend") == ["python", "-m", "backend"]
    assert runtime.dockerfile_cmd("frontend") == ["python", "-m", "frontend"]


def test_volume_paths_are_rewritten() -> None:
    volumes = runtime.VolumeMap(
        {"/var/lib/mysql": Path("/h/pvc"), "/var/lib/mysql/x": Path("/h/x")}
    )
    assert volumes.rewrite_arg("--datadir=/var/lib/mysql/data") == "--datadir=/h/pvc/data"
    assert volumes.rewrite_arg("/var/lib/mysql/x/y") == "/h/x/y"
    assert volumes.rewrite_arg("--port=3306") == "--port=3306"
    assert volumes.host_path("/var/lib/mysqlx") == "/var/lib/mysqlx"


def test_mysql_first_run_sql_like_the_official_entrypoint() -> None:
    sql = runtime.mysql_init_sql(
        {
            "MYSQL_ROOT_PASSWORD": "r'oot",
            "MYSQL_DATABASE": "app",
            "MYSQL_USER": "app",
            "MYSQL_PASSWORD": "p\\w",
        }
    )
    assert "ALTER USER 'root'@'localhost' IDENTIFIED BY 'r\\'oot'" in sql
    assert "CREATE USER 'root'@'%'" in sql
    assert "CREATE DATABASE IF NOT EXISTS `app`" in sql
    assert "CREATE USER 'app'@'%' IDENTIFIED BY 'p\\\\w'" in sql
    assert "GRANT ALL ON `app`.* TO 'app'@'%'" in sql
    with pytest.raises(ManifestError, match="MYSQL_ROOT_PASSWORD"):
        runtime.mysql_init_sql({"MYSQL_DATABASE": "app"})


def test_the_manifests_containers_become_these_processes(manifests, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for tool in ("redis-server", "mariadbd"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed")
    mysql_wl = manifests.workloads["StatefulSet/mysql"]
    (creds,) = [v for v in mysql_wl.template.volumes if v.kind == "secret"]
    secret = manifests.secrets[creds.secret_name]
    write_secret_volume(tmp_path / "creds", creds, secret, mysql_wl.template.security.fs_group)
    volumes = runtime.VolumeMap(
        {
            "/var/lib/mysql": tmp_path / "pvc",
            "/var/run/mysqld": tmp_path / "run",
            "/tmp": tmp_path / "tmp",
            "/data": tmp_path / "data",
            "/run/secrets/mysql": tmp_path / "creds",
        }
    )
    mysql_c = mysql_wl.template.containers[0]
    env = container_env(mysql_c, FACTS, manifests.config_maps, manifests.secrets, {})
    assert "MYSQL_PASSWORD" not in env and "MYSQL_ROOT_PASSWORD" not in env
    launch = runtime.plan(mysql_c, mysql_wl.template, [], list(mysql_c.args), env, volumes)
    # The first-run SQL has the passwords read from the Secret's files (file_env).
    assert launch.init_sql is not None
    assert f"IDENTIFIED BY '{secret['MYSQL_ROOT_PASSWORD']}'" in launch.init_sql
    assert (
        f"CREATE USER '{secret['MYSQL_USER']}'@'%' IDENTIFIED BY '{secret['MYSQL_PASSWORD']}'"
        in launch.init_sql
    )
    assert launch.env["MYSQL_PASSWORD_FILE"] == str(tmp_path / "creds" / "MYSQL_PASSWORD")
    assert launch.argv[1] == "--no-defaults"
    assert f"--datadir={tmp_path / 'pvc' / 'data'}" in launch.argv
    assert "--bind-address=0.0.0.0" in launch.argv
    assert f"--tmpdir={tmp_path / 'tmp'}" in launch.argv  # never the shared /tmp
    assert launch.uid == 999

    redis_wl = manifests.workloads["Deployment/redis"]
    redis_c = redis_wl.template.containers[0]
    launch = runtime.plan(redis_c, redis_wl.template, [], list(redis_c.args), {}, volumes)
    assert launch.argv[0] == shutil.which("redis-server")
    assert launch.argv[-2:] == ["--protected-mode", "no"]
    assert launch.cwd == str(tmp_path / "data")

    backend_wl = manifests.workloads["Deployment/backend"]
    backend_c = backend_wl.template.containers[0]
    env = container_env(backend_c, FACTS, manifests.config_maps, manifests.secrets, {})
    launch = runtime.plan(backend_c, backend_wl.template, list(backend_c.command), [], env, volumes)
    assert launch.argv == [sys.executable, "-m", "backend"]
    assert launch.env["PYTHONPATH"] == str(REPO) and launch.env["PORT"] == "8000"
    # The backend opens the file the container would see at /run/secrets/mysql/….
    password_file = Path(launch.env["DATABASE_PASSWORD_FILE"])
    assert password_file == tmp_path / "creds" / "MYSQL_PASSWORD"
    assert password_file.read_text() == secret["MYSQL_PASSWORD"]
    assert launch.env["TMPDIR"] == str(tmp_path / "tmp")
    assert launch.uid == 10001 and launch.security.drop_all_capabilities
    assert launch.security.fs_group == 10001  # the Secret files' group


def test_restart_backoff_is_the_kubelets() -> None:
    backoff = Backoff()
    delays = [backoff.delay(1.0) for _ in range(8)]
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]
    assert backoff.delay(3600) == 0  # ran long enough: start afresh


def test_node_addresses() -> None:
    assert ipaddress.ip_address("10.244.1.1") in NODE_POD_CIDR


# --- probes ---------------------------------------------------------------------------------


def test_exec_probe_programs_and_fallbacks() -> None:
    redis_probe = ("sh", "-c", "redis-cli -h 127.0.0.1 ping | grep -q PONG")
    assert _programs(redis_probe) == ["sh", "redis-cli", "grep"]
    assert exec_fallback(redis_probe) == "redis"
    mysql_probe = ("mysqladmin", "ping", "-h", "127.0.0.1", "--silent")
    assert _programs(mysql_probe) == ["mysqladmin"]
    assert exec_fallback(mysql_probe) == "mysql"
    assert exec_fallback(("cat", "/tmp/ready")) is None


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", True),
        (b"HTTP/1.1 302 Found\r\n\r\n", True),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", False),
    ],
)
def test_http_probe(answer: bytes, ok: bool) -> None:
    async def main() -> bool:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await reader.readuntil(b"\r\n\r\n")
            assert b"User-Agent: kube-probe/" in request
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            result = await http_get("127.0.0.1", port, "/readyz", 2)
        return result.ok

    assert asyncio.run(main()) is ok


def test_network_probes_standing_in_for_exec() -> None:
    async def main() -> tuple[bool, bool, bool]:
        async def fake_mysql(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"\x4a\x00\x00\x00\x0a" + b"10.11.0" + b"\x00" * 60)
            await writer.drain()
            writer.close()

        async def fake_redis(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(b"+PONG\r\n")
            await writer.drain()
            writer.close()

        m = await asyncio.start_server(fake_mysql, "127.0.0.1", 0)
        r = await asyncio.start_server(fake_redis, "127.0.0.1", 0)
        redis_port = r.sockets[0].getsockname()[1]
        async with m, r:
            mysql_ok = await mysql_handshake("127.0.0.1", m.sockets[0].getsockname()[1], 2)
            redis_ok = await redis_ping("127.0.0.1", redis_port, 2)
        closed = await redis_ping("127.0.0.1", redis_port, 1)
        return mysql_ok.ok, redis_ok.ok, closed.ok

    assert asyncio.run(main()) == (True, True, False)


def test_without_root_the_lab_tests_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = lab_unavailable()
    assert reason is not None and "needs root" in reason
