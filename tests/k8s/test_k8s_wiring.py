"""The wiring between the rendered objects: Services select the right pods on ports that
exist, every URL in the environment names a Service and port that exist, probes point
at paths the apps serve, and the shutdown timings add up."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from k8s_manifests import (
    K8S_DIR,
    NAMESPACE,
    REPO,
    all_containers,
    in_ci,
    parse_env_file,
    pod_labels,
    pod_spec,
    selector_matches,
)

# DESIGN.md, "Names that are the same everywhere".
SERVICE_PORTS = {
    "frontend": {"port": 80, "containerPort": 8080, "name": "http"},
    "backend": {"port": 8000, "containerPort": 8000, "name": "http"},
    "redis": {"port": 6379, "containerPort": 6379, "name": "redis"},
    "mysql": {"port": 3306, "containerPort": 3306, "name": "mysql"},
}
REPLICAS = {"frontend": 2, "backend": 3, "redis": 1, "mysql": 1}
DOWNWARD = {"POD_NAME": "metadata.name", "POD_IP": "status.podIP", "NODE_NAME": "spec.nodeName"}
APP_TIERS = ("frontend", "backend")


def _service_targets(service, workloads):
    """Workloads whose pod template the Service's selector matches."""
    return [
        name
        for name, obj in workloads.items()
        if selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(obj))
    ]


def _resolve_target_port(service_port, obj):
    """The (container, containerPort) a Service port's targetPort lands on, or None."""
    target = service_port.get("targetPort", service_port["port"])
    for container in pod_spec(obj)["containers"]:
        for port in container.get("ports", []):
            if port.get("protocol", "TCP") != service_port.get("protocol", "TCP"):
                continue
            if (isinstance(target, str) and port.get("name") == target) or (
                isinstance(target, int) and port["containerPort"] == target
            ):
                return container["name"], port["containerPort"]
    return None


def _service_for_host(host, services):
    """What a pod in NAMESPACE reaches with this host name: a Service, or None."""
    for suffix in (f".{NAMESPACE}.svc.cluster.local", f".{NAMESPACE}.svc", f".{NAMESPACE}"):
        if host.endswith(suffix):
            host = host[: -len(suffix)]
    return services.get(host)


def _main(obj):
    return pod_spec(obj)["containers"][0]


def test_no_service_has_a_type(by_kind):
    for name, service in by_kind["Service"].items():
        assert "type" not in service["spec"], f"Service {name} sets type:"
        assert service["spec"].get("clusterIP") != "None", f"Service {name} is headless"


def test_every_service_selects_exactly_one_tier(by_kind, workloads):
    for name, service in by_kind["Service"].items():
        assert service["spec"].get("selector"), f"Service {name} has no selector"
        assert _service_targets(service, workloads) == [name], name


def test_service_ports_follow_the_design(by_kind, workloads):
    assert set(by_kind["Service"]) == set(SERVICE_PORTS)
    for name, expected in SERVICE_PORTS.items():
        ports = by_kind["Service"][name]["spec"]["ports"]
        assert len(ports) == 1, name
        port = ports[0]
        assert port["port"] == expected["port"], name
        assert port["name"] == expected["name"], name
        landed = _resolve_target_port(port, workloads[name])
        assert landed is not None, f"Service {name}: targetPort {port['targetPort']} missing"
        assert landed[1] == expected["containerPort"], name


def test_target_port_check_catches_a_wrong_name(by_kind, workloads):
    port = dict(by_kind["Service"]["backend"]["spec"]["ports"][0], targetPort="htpp")
    assert _resolve_target_port(port, workloads["backend"]) is None


def test_replicas(workloads):
    for name, expected in REPLICAS.items():
        assert workloads[name]["spec"]["replicas"] == expected, name


def test_statefulset_uses_an_existing_service_and_keeps_its_disk(workloads, by_kind):
    mysql = workloads["mysql"]
    assert mysql["kind"] == "StatefulSet"
    assert mysql["spec"]["serviceName"] in by_kind["Service"]
    claims = {c["metadata"]["name"]: c for c in mysql["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in _main(mysql)["volumeMounts"]}
    assert mounts[next(iter(claims))] == "/var/lib/mysql"
    datadir = [a for a in _main(mysql).get("args", []) if a.startswith("--datadir=")]
    assert datadir and datadir[0].split("=", 1)[1].startswith("/var/lib/mysql/")


@pytest.mark.parametrize(
    ("workload", "variable", "service"),
    [
        ("frontend", "BACKEND_URL", "backend"),
        ("backend", "REDIS_URL", "redis"),
        ("backend", "DATABASE_URL", "mysql"),
    ],
)
def test_urls_in_the_environment_name_services_that_exist(
    workload, variable, service, envs, by_kind, workloads
):
    value = envs[(workload, workload)][variable]
    assert isinstance(value, str), f"{variable} should be a plain value, not {value!r}"
    url = urlsplit(value)
    target = _service_for_host(url.hostname, by_kind["Service"])
    assert target is not None, f"{variable}={value}: no Service named {url.hostname}"
    assert target["metadata"]["name"] == service
    assert url.port in {p["port"] for p in target["spec"]["ports"]}, f"{variable}: port"
    assert _service_targets(target, workloads) == [service]


def test_database_url_matches_the_secret_and_holds_no_password(envs, secrets):
    env = envs[("backend", "backend")]
    url = urlsplit(env["DATABASE_URL"])
    assert url.scheme == "mysql+pymysql"
    assert url.password is None, "the password comes from the Secret, not the URL"
    kind, secret, key = env["DATABASE_PASSWORD"]
    assert (kind, key) == ("secret", "MYSQL_PASSWORD")
    credentials = secrets[secret]
    assert url.username == credentials["MYSQL_USER"]
    assert url.path.lstrip("/") == credentials["MYSQL_DATABASE"]
    assert {"MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_DATABASE", "MYSQL_ROOT_PASSWORD"} <= set(
        credentials
    )


def test_mysql_reads_the_same_secret_as_the_backend(envs):
    mysql = envs[("mysql", "mysql")]
    backend_secret = envs[("backend", "backend")]["DATABASE_PASSWORD"][1]
    for key in ("MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_DATABASE", "MYSQL_ROOT_PASSWORD"):
        assert mysql[key] == ("secret", backend_secret, key)


def test_no_password_in_a_config_map(config_maps, secrets):
    secret_values = {v for values in secrets.values() for v in values.values() if len(v) > 3}
    for name, data in config_maps.items():
        for key, value in data.items():
            assert "PASSWORD" not in key.upper(), f"ConfigMap {name} holds {key}"
            assert value not in secret_values, f"ConfigMap {name}: {key} holds a secret"
            assert urlsplit(value).password is None, f"ConfigMap {name}: {key} embeds one"


@pytest.mark.parametrize("tier", APP_TIERS)
def test_downward_api_gives_pod_identity(tier, workloads, envs):
    for container in all_containers(pod_spec(workloads[tier])):
        env = envs[(tier, container["name"])]
        for variable, path in DOWNWARD.items():
            assert env.get(variable) == ("field", path), (tier, container["name"], variable)


@pytest.mark.parametrize("tier", APP_TIERS)
def test_apps_listen_on_every_interface_on_their_named_port(tier, workloads, envs):
    env = envs[(tier, tier)]
    # The apps bind 127.0.0.1 by default (right on a laptop, wrong in a pod).
    assert env.get("HOST") == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in _main(workloads[tier])["ports"]}
    assert int(env["PORT"]) == ports["http"] == SERVICE_PORTS[tier]["containerPort"]


@pytest.mark.parametrize("tier", APP_TIERS)
def test_app_commands(tier, workloads):
    spec = pod_spec(workloads[tier])
    assert spec["containers"][0]["command"] == ["python", "-m", tier]


def test_migrations_run_in_an_init_container_of_every_backend_pod(workloads, envs):
    spec = pod_spec(workloads["backend"])
    (init,) = spec["initContainers"]
    assert init["command"] == ["python", "-m", "backend.migrate"]
    assert init["image"] == spec["containers"][0]["image"]
    init_env, main_env = envs[("backend", init["name"])], envs[("backend", "backend")]
    for variable in ("DATABASE_URL", "DATABASE_PASSWORD"):
        assert init_env[variable] == main_env[variable]


def _probe_port(probe, container):
    action = probe.get("httpGet") or probe.get("tcpSocket")
    if action is None:
        return None
    port = action["port"]
    if isinstance(port, int):
        return port
    return {p["name"]: p["containerPort"] for p in container["ports"]}.get(port)


@pytest.mark.parametrize("tier", APP_TIERS)
def test_app_probes_use_health_and_readiness_paths(tier, workloads):
    container = _main(workloads[tier])
    http_port = SERVICE_PORTS[tier]["containerPort"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert _probe_port(container[kind], container) == http_port, (tier, kind)


def test_data_tiers_have_probes(workloads):
    for name in ("mysql", "redis"):
        container = _main(workloads[name])
        assert "livenessProbe" in container and "readinessProbe" in container, name
    mysql = _main(workloads["mysql"])
    # Slow first initialisation: a startup probe, and the real server over TCP.
    startup = mysql["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180
    assert "127.0.0.1" in startup["exec"]["command"]
    assert _probe_port(mysql["livenessProbe"], mysql) == 3306
    redis = _main(workloads["redis"])
    assert "redis-cli" in " ".join(redis["readinessProbe"]["exec"]["command"])


@pytest.mark.parametrize("tier", APP_TIERS)
def test_the_apps_serve_the_probed_paths(tier):
    # The probes point at paths the code really serves (common/ or the tier's package).
    if not list((REPO / tier).glob("*.py")):
        message = f"{tier}/ has no Python source yet"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    sources = [REPO / tier, REPO / "common"]
    code = "\n".join(p.read_text() for d in sources if d.is_dir() for p in d.rglob("*.py"))
    for path in ("/healthz", "/readyz", "/metrics"):
        call = r"\.(?:get|api_route|add_api_route|add_route|route)\(\s*"
        route = call + rf"[\"']{re.escape(path)}[\"']"
        assert re.search(route, code), f"{tier}: no route serves {path}"


@pytest.mark.parametrize("tier", APP_TIERS)
def test_shutdown_fits_in_the_grace_period(tier, workloads, envs):
    spec = pod_spec(workloads[tier])
    container = spec["containers"][0]
    env = envs[(tier, tier)]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    delay = float(env["SHUTDOWN_DELAY_SECONDS"])
    graceful = float(env["GRACEFUL_TIMEOUT_SECONDS"])
    # readiness fails at SIGTERM, so the delay must outlast a few readiness periods
    assert pre_stop >= 1 and delay >= 1
    assert spec["terminationGracePeriodSeconds"] > pre_stop + delay + graceful
    strategy = workloads[tier]["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_frontend_keepalive_expires_before_the_backend_closes(envs):
    frontend = float(envs[("frontend", "frontend")]["BACKEND_KEEPALIVE_EXPIRY_SECONDS"])
    backend = float(envs[("backend", "backend")]["KEEPALIVE_TIMEOUT_SECONDS"])
    assert frontend < backend


@pytest.mark.parametrize("tier", APP_TIERS)
def test_disruption_budgets_allow_one_at_a_time(tier, by_kind, workloads):
    pdb = by_kind["PodDisruptionBudget"][tier]
    assert selector_matches(pdb["spec"]["selector"], pod_labels(workloads[tier]))
    replicas = workloads[tier]["spec"]["replicas"]
    if "minAvailable" in pdb["spec"]:
        assert 1 <= pdb["spec"]["minAvailable"] < replicas
    else:
        assert 1 <= pdb["spec"]["maxUnavailable"] < replicas


def test_backend_spreads_over_nodes(workloads):
    constraints = pod_spec(workloads["backend"])["topologySpreadConstraints"]
    by_key = {c["topologyKey"]: c for c in constraints}
    host = by_key["kubernetes.io/hostname"]
    assert host["maxSkew"] == 1
    # A one-node kind cluster must still schedule all three.
    assert host["whenUnsatisfiable"] == "ScheduleAnyway"
    assert selector_matches(host["labelSelector"], pod_labels(workloads["backend"]))


def test_config_files_feed_the_config_maps(config_maps):
    for tier in APP_TIERS:
        (name,) = [n for n in config_maps if n.startswith(f"{tier}-config-")]
        assert config_maps[name] == parse_env_file(Path(K8S_DIR) / tier / "config.env")
