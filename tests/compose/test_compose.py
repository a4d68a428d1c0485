"""docker-compose.yml validates, and agrees with k8s/ on service names, ports and
variable names; its two networks keep the frontend away from MySQL and Redis.
Checked statically: no container engine runs here."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "k8s"))

from k8s_manifests import (  # noqa: E402
    container_env,
    need_tool,
    parse_env_file,
    pod_spec,
    render,
    secret_mount_files,
)

COMPOSE_FILE = REPO / "docker-compose.yml"
DOWNWARD = {"POD_NAME", "POD_IP", "NODE_NAME"}  # Kubernetes only; compose uses the hostname
LONG_RUNNING = ("frontend", "backend", "redis", "mysql")
SECRETS_PATH = "/run/secrets"  # where compose mounts a secret whose target is relative
PASSWORDS = ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def k8s() -> dict:
    docs = render()
    index: dict = {}
    for doc in docs:
        index.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return index


def _k8s_env(k8s, workload: str, container: str) -> dict:
    config_maps = {n: d.get("data", {}) for n, d in k8s["ConfigMap"].items()}
    secrets = {
        n: {k: base64.b64decode(v).decode() for k, v in d["data"].items()}
        for n, d in k8s["Secret"].items()
    }
    workload_obj = (k8s.get("Deployment", {}) | k8s.get("StatefulSet", {}))[workload]
    spec = pod_spec(workload_obj)
    (wanted,) = [
        c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == container
    ]
    return container_env(wanted, config_maps, secrets)


def _compose_env(service: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for env_file in service.get("env_file", []):
        env.update(parse_env_file(REPO / env_file))
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env.update({k: str(v) for k, v in environment.items()})
    return env


def _interpolate_default(value: str) -> str:
    """${VAR:-default} -> default (what compose uses when VAR is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_docker_compose_config_validates():
    docker_compose = need_tool(
        "docker-compose", "apt-get install -y docker-compose (Debian's 1.29 validates offline)"
    )
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_rejects_a_broken_file(tmp_path):
    # Guards the check above: the validator does read and judge the file.
    docker_compose = need_tool("docker-compose", "apt-get install -y docker-compose")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  web:\n    image: x\n    depends_on:\n      db:\n"
        "        condition: service_sometime\n  db:\n    image: y\n"
    )
    result = subprocess.run(
        [docker_compose, "-f", str(broken), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0


def _clusterip_services(k8s) -> set[str]:
    # A headless Service (the StatefulSet's governing one) has no compose counterpart:
    # compose's DNS has no virtual IPs to leave out.
    return {n for n, s in k8s["Service"].items() if s["spec"].get("clusterIP") != "None"}


def test_same_service_names_as_kubernetes(compose, k8s):
    assert _clusterip_services(k8s) <= set(compose["services"])
    # otel-collector: the Service k8s/components/tracing expects you to run (profile only).
    assert set(compose["services"]) == _clusterip_services(k8s) | {"migrate", "otel-collector"}


def test_frontend_published_on_localhost_8080_at_the_kubernetes_target_port(compose, k8s):
    (published,) = compose["services"]["frontend"]["ports"]
    host, host_port, container_port = str(published).split(":")
    assert (host, host_port) == ("127.0.0.1", "8080")
    frontend = pod_spec(k8s["Deployment"]["frontend"])["containers"][0]
    assert int(container_port) == frontend["ports"][0]["containerPort"]


def test_backend_can_be_scaled(compose):
    backend = compose["services"]["backend"]
    assert "container_name" not in backend
    assert "ports" not in backend, "a fixed host port would stop --scale backend=3"
    for name in ("mysql", "redis", "migrate"):
        assert "ports" not in compose["services"][name], f"{name} should stay unpublished"


@pytest.mark.parametrize(
    ("service", "workload", "container"),
    [
        ("frontend", "frontend", "frontend"),
        ("backend", "backend", "backend"),
        ("migrate", "backend", "migrate"),
    ],
)
def test_same_variable_names_and_values(compose, k8s, service, workload, container):
    # The OTEL_* ones and the traces' resource are k8s/components/tracing's:
    # test_tracing_profile_… checks them.
    in_compose = {
        k: v
        for k, v in _compose_env(compose["services"][service]).items()
        if "OTEL_" not in k and k not in TRACE_RESOURCE
    }
    in_k8s = _k8s_env(k8s, workload, container)
    assert set(in_compose) == set(in_k8s) - DOWNWARD
    for name, value in in_k8s.items():
        if isinstance(value, str):
            assert in_compose[name] == value, name


def test_urls_name_compose_services_on_the_kubernetes_ports(compose, k8s):
    urls = {
        **{k: v for k, v in _compose_env(compose["services"]["backend"]).items() if "URL" in k},
        "BACKEND_URL": _compose_env(compose["services"]["frontend"])["BACKEND_URL"],
    }
    assert set(urls) == {"DATABASE_URL", "REDIS_URL", "BACKEND_URL"}
    for name, value in urls.items():
        url = urlsplit(value)
        assert url.hostname in compose["services"], name
        service_ports = {p["port"] for p in k8s["Service"][url.hostname]["spec"]["ports"]}
        assert url.port in service_ports, name


def _secret_files(compose, service: str) -> dict[str, Path]:
    """Path inside the container -> host file, for the service's compose secrets."""
    files = {}
    for entry in compose["services"][service].get("secrets", []):
        target = entry["target"]
        path = target if target.startswith("/") else f"{SECRETS_PATH}/{target}"
        declared = _interpolate_default(compose["secrets"][entry["source"]]["file"])
        files[path] = REPO / declared
    return files


def test_mysql_credentials_match_the_kubernetes_secret(compose, k8s):
    secret = next(iter(k8s["Secret"].values()))
    expected = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    mysql_env = _compose_env(compose["services"]["mysql"])
    mysql_files = _secret_files(compose, "mysql")
    for key in ("MYSQL_DATABASE", "MYSQL_USER"):
        assert mysql_env[key] == expected[key]
    for key in PASSWORDS:
        # The same files feed the Kubernetes Secret and compose's secrets.
        assert mysql_files[mysql_env[f"{key}_FILE"]].read_text() == expected[key]
    for service in ("backend", "migrate"):
        env = _compose_env(compose["services"][service])
        files = _secret_files(compose, service)
        assert files[env["DATABASE_PASSWORD_FILE"]].read_text() == expected["MYSQL_PASSWORD"]
        # The backend gets the application's password, never root's.
        assert set(files.values()) == {mysql_files[mysql_env["MYSQL_PASSWORD_FILE"]]}


def test_secrets_are_mounted_where_kubernetes_mounts_them(compose, k8s):
    for service, workload, container in (
        ("mysql", "mysql", "mysql"),
        ("backend", "backend", "backend"),
    ):
        spec = pod_spec((k8s.get("Deployment", {}) | k8s["StatefulSet"])[workload])
        (wanted,) = [c for c in spec["containers"] if c["name"] == container]
        assert set(_secret_files(compose, service)) == set(secret_mount_files(wanted, spec))


def test_no_password_in_any_service_environment(compose, k8s):
    secret = next(iter(k8s["Secret"].values()))
    passwords = {base64.b64decode(secret["data"][k]).decode() for k in PASSWORDS}
    text = COMPOSE_FILE.read_text()
    assert not any(p in text for p in passwords), "a password written in docker-compose.yml"
    for name, service in compose["services"].items():
        for variable, value in _compose_env(service).items():
            if "PASSWORD" in variable.upper():
                assert variable.endswith("_FILE") and value.startswith("/"), (name, variable)
            assert _interpolate_default(value) not in passwords, (name, variable)


def test_compose_says_it_is_development(compose):
    for service in ("backend", "migrate"):
        assert _compose_env(compose["services"][service])["ENVIRONMENT"] == "development"


def test_same_third_party_images(compose, k8s):
    for name, kind in (("mysql", "StatefulSet"), ("redis", "Deployment")):
        k8s_image = pod_spec(k8s[kind][name])["containers"][0]["image"]
        assert compose["services"][name]["image"] == k8s_image


def _reachable(compose) -> set[tuple[str, str]]:
    networks = {
        name: set(service.get("networks", ["default"]))
        for name, service in compose["services"].items()
    }
    return {(a, b) for a in networks for b in networks if a != b and networks[a] & networks[b]}


def test_networks_mirror_the_network_policies(compose):
    reach = _reachable(compose)
    assert ("frontend", "backend") in reach
    assert ("backend", "redis") in reach and ("backend", "mysql") in reach
    assert ("frontend", "mysql") not in reach
    assert ("frontend", "redis") not in reach
    assert compose["networks"]["back"].get("internal") is True
    assert set(compose["services"]["frontend"]["networks"]) == {"front"}


def test_the_network_check_notices_a_shared_network(compose):
    widened = {"services": {k: dict(v) for k, v in compose["services"].items()}}
    widened["services"]["frontend"]["networks"] = ["front", "back"]
    assert ("frontend", "mysql") in _reachable(widened)


def test_every_long_running_service_has_a_healthcheck(compose):
    for name in LONG_RUNNING:
        test = compose["services"][name]["healthcheck"]["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
    mysql = compose["services"]["mysql"]["healthcheck"]["test"]
    assert "127.0.0.1" in mysql, "over TCP: the temporary init server is socket-only"
    for name, port in (("backend", 8000), ("frontend", 8080)):
        check = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in check


def test_start_order_follows_health_and_the_one_shot_migration(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"]["mysql"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["python", "-m", "backend.migrate"]
    assert services["migrate"].get("restart") == "no"
    backend = services["backend"]["depends_on"]
    assert backend["migrate"]["condition"] == "service_completed_successfully"
    assert backend["mysql"]["condition"] == "service_healthy"
    assert backend["redis"]["condition"] == "service_healthy"
    assert services["frontend"]["depends_on"]["backend"]["condition"] == "service_healthy"


def test_mysql_keeps_its_data_in_a_named_volume(compose):
    volumes = compose["services"]["mysql"]["volumes"]
    assert "mysql-data:/var/lib/mysql" in volumes
    assert "mysql-data" in compose["volumes"]


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return float(match.group(1))


@pytest.mark.parametrize("service", ["frontend", "backend"])
def test_stop_grace_outlasts_the_drain(compose, service):
    env = _compose_env(compose["services"][service])
    drain = float(env["SHUTDOWN_DELAY_SECONDS"]) + float(env["GRACEFUL_TIMEOUT_SECONDS"])
    assert _seconds(compose["services"][service]["stop_grace_period"]) > drain


@pytest.mark.parametrize("service", ["frontend", "backend", "migrate"])
def test_app_containers_are_hardened(compose, service):
    config = compose["services"][service]
    assert config["read_only"] is True
    assert "/tmp" in config["tmpfs"]
    assert config["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in config["security_opt"]


def test_each_image_is_built_by_one_service(compose):
    builds = {
        name: (s["build"]["context"], s["build"]["dockerfile"], s["build"]["args"], s["image"])
        for name, s in compose["services"].items()
        if "build" in s
    }
    # Both from the one Dockerfile, the build argument TIER naming the tier.
    assert builds == {
        # migrate starts first (backend depends on it): docker-compose 1.29 readies images
        # in start order and would try to pull an image nobody had built yet.
        "migrate": (".", "Dockerfile", {"TIER": "backend"}, "clusterip-demo/backend:dev"),
        "frontend": (".", "Dockerfile", {"TIER": "frontend"}, "clusterip-demo/frontend:dev"),
    }
    backend = compose["services"]["backend"]
    assert backend["image"] == compose["services"]["migrate"]["image"]
    assert "migrate" in backend["depends_on"]


def _cpus(value: str) -> float:
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _mebibytes(value: str) -> int:
    units = {"Mi": 1, "Gi": 1024, "m": 1, "g": 1024}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(value[: -len(suffix)]) * factor
    raise AssertionError(f"unexpected memory quantity {value}")


@pytest.mark.parametrize(
    ("service", "workload", "container"),
    [
        ("frontend", "frontend", "frontend"),
        ("backend", "backend", "backend"),
        ("migrate", "backend", "migrate"),
        ("mysql", "mysql", "mysql"),
        ("redis", "redis", "redis"),
    ],
)
def test_cpu_and_memory_limits_are_the_kubernetes_limits(
    compose, k8s, service, workload, container
):
    spec = pod_spec((k8s["Deployment"] | k8s["StatefulSet"])[workload])
    (wanted,) = [
        c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == container
    ]
    limits = wanted["resources"]["limits"]
    config = compose["services"][service]
    # mem_limit and cpus: applied by docker-compose 1.29 and by Compose v2 alike
    # (1.29 applies deploy.resources only with --compatibility).
    assert float(config["cpus"]) == _cpus(str(limits["cpu"]))
    assert _mebibytes(config["mem_limit"]) == _mebibytes(limits["memory"])


MAKEFILE = REPO / "Makefile"


def _recipe(target: str) -> str:
    text = MAKEFILE.read_text()
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.M)
    assert match, f"no target {target} in the Makefile"
    return match.group(1)


def test_make_down_keeps_the_volume_and_down_volumes_deletes_it():
    assert "--volumes" not in _recipe("down") and "-v" not in _recipe("down").split()
    assert "--volumes" in _recipe("down-volumes")


def test_one_project_name_wherever_the_checkout_lives(compose):
    assert re.search(
        r"^export COMPOSE_PROJECT_NAME \?= clusterip-demo$", MAKEFILE.read_text(), re.M
    )
    # Not as a top-level `name:`: docker-compose 1.29 refuses the key.
    assert "name" not in compose


TRACING_COMPONENT = REPO / "k8s" / "components" / "tracing"
# The traces' resource attributes (common/settings.py); no k8s.* names outside Kubernetes.
TRACE_RESOURCE = {"SERVICE_NAMESPACE", "DEPLOYMENT_ENVIRONMENT"}
TRACING_ENDPOINT = "http://otel-collector:4318"  # what the top of docker-compose.yml sets


@pytest.mark.parametrize("tier", ["frontend", "backend"])
def test_tracing_profile_matches_the_kubernetes_component(compose, tier):
    patch = yaml.safe_load((TRACING_COMPONENT / f"{tier}-env.yaml").read_text())
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    in_k8s = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("OTEL_")}
    in_compose = {k: v for k, v in _compose_env(compose["services"][tier]).items() if "OTEL_" in k}
    assert set(in_compose) == set(in_k8s)
    # Unset, the endpoint is empty: nothing is exported, as without the component.
    assert _interpolate_default(in_compose["OTEL_EXPORTER_OTLP_ENDPOINT"]) == ""
    assert in_k8s["OTEL_EXPORTER_OTLP_ENDPOINT"] == TRACING_ENDPOINT
    for name, value in in_k8s.items():
        if name != "OTEL_EXPORTER_OTLP_ENDPOINT":
            assert in_compose[name] == value, name
    env = _compose_env(compose["services"][tier])
    assert {k: v for k, v in env.items() if k in TRACE_RESOURCE or k.startswith("K8S_")} == {
        "SERVICE_NAMESPACE": "clusterip-demo",
        "DEPLOYMENT_ENVIRONMENT": "development",  # the shipped password, development's
    }


def test_the_collector_runs_only_with_the_tracing_profile_and_both_tiers_reach_it(compose):
    services = compose["services"]
    assert services["otel-collector"]["profiles"] == ["tracing"]
    assert all("profiles" not in s for n, s in services.items() if n != "otel-collector")
    reach = _reachable(compose)
    assert ("frontend", "otel-collector") in reach and ("backend", "otel-collector") in reach
    # Not a way around the networks: MySQL and Redis stay out of the frontend's reach.
    assert ("otel-collector", "mysql") not in reach and ("otel-collector", "redis") not in reach
    image = services["otel-collector"]["image"]
    assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+", image), "pinned to a release"
