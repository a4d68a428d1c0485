"""The wiring between the rendered objects: Services select the right pods on ports that
exist, every URL in the environment names a Service and port that exist, probes point
at paths the apps serve, and the shutdown timings add up."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from k8s_manifests import (
    BASE_DIR,
    DEVELOPMENT_DIR,
    NAMESPACE,
    REPO,
    all_containers,
    container_env,
    effective_replicas,
    in_ci,
    parse_env_file,
    pod_labels,
    pod_spec,
    secret_mount_files,
    selector_matches,
)

# DESIGN.md, "Names that are the same everywhere".
SERVICE_PORTS = {
    "frontend": {"port": 80, "containerPort": 8080, "name": "http"},
    "backend": {"port": 8000, "containerPort": 8000, "name": "http"},
    "redis": {"port": 6379, "containerPort": 6379, "name": "redis"},
    "mysql": {"port": 3306, "containerPort": 3306, "name": "mysql"},
}
# The app tiers' second port: Prometheus text on /metrics, and nothing else there.
METRICS_PORTS = {"frontend": 9080, "backend": 9000}
REPLICAS = {
    "development": {"frontend": 2, "backend": 3, "redis": 1, "mysql": 1},
    "production": {"frontend": 3, "backend": 4, "redis": 1, "mysql": 1},
}
# The StatefulSet's governing Service: headless, the one Service with no virtual IP.
HEADLESS = {"mysql-headless": "mysql"}
CREDENTIALS = ("MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_DATABASE", "MYSQL_ROOT_PASSWORD")
PASSWORDS = ("MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD")
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
        headless = service["spec"].get("clusterIP") == "None"
        assert headless == (name in HEADLESS), f"Service {name}: headless is {headless}"


def test_every_service_selects_exactly_one_tier(by_kind, workloads):
    for name, service in by_kind["Service"].items():
        assert service["spec"].get("selector"), f"Service {name} has no selector"
        tier = HEADLESS.get(name, name)
        assert _service_targets(service, workloads) == [tier], name


def test_service_ports_follow_the_design(by_kind, workloads):
    assert set(by_kind["Service"]) == set(SERVICE_PORTS) | set(HEADLESS)
    for name in [*SERVICE_PORTS, *HEADLESS]:
        expected = SERVICE_PORTS[HEADLESS.get(name, name)]
        ports = by_kind["Service"][name]["spec"]["ports"]
        assert [p["name"] for p in ports] == [expected["name"]] + (
            ["metrics"] if name in METRICS_PORTS else []
        ), name
        port = ports[0]
        assert port["port"] == expected["port"], name
        assert port["name"] == expected["name"], name
        landed = _resolve_target_port(port, workloads[HEADLESS.get(name, name)])
        assert landed is not None, f"Service {name}: targetPort {port['targetPort']} missing"
        assert landed[1] == expected["containerPort"], name


@pytest.mark.parametrize("tier", APP_TIERS)
def test_the_metrics_port_is_named_in_the_service_and_the_pods(tier, by_kind, workloads, envs):
    (port,) = [p for p in by_kind["Service"][tier]["spec"]["ports"] if p["name"] == "metrics"]
    assert port["port"] == METRICS_PORTS[tier]
    assert _resolve_target_port(port, workloads[tier]) == (tier, METRICS_PORTS[tier])
    # What the app listens on (METRICS_PORT) is the port the manifests name.
    assert int(envs[(tier, tier)]["METRICS_PORT"]) == METRICS_PORTS[tier]
    assert METRICS_PORTS[tier] != SERVICE_PORTS[tier]["containerPort"]


def test_target_port_check_catches_a_wrong_name(by_kind, workloads):
    port = dict(by_kind["Service"]["backend"]["spec"]["ports"][0], targetPort="htpp")
    assert _resolve_target_port(port, workloads["backend"]) is None


def test_replicas(workloads, hpas, rendering):
    for name, expected in REPLICAS[rendering.environment].items():
        if name in hpas:
            # The design's count is the autoscaler's floor, and the Deployment leaves
            # the number to it.
            expected = REPLICAS["development"][name]
            assert "replicas" not in workloads[name]["spec"], name
        assert effective_replicas(workloads[name], hpas) == expected, name


def test_autoscalers_scale_the_app_tiers_on_cpu(hpas, workloads, rendering):
    if "hpa" not in rendering.components():
        assert not hpas
        return
    assert set(hpas) == set(APP_TIERS)
    for name, hpa in hpas.items():
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert spec["minReplicas"] == REPLICAS["development"][name] < spec["maxReplicas"]
        (metric,) = spec["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        # Utilization is a share of the requests: every container must ask for CPU.
        for container in pod_spec(workloads[name])["containers"]:
            assert container["resources"]["requests"]["cpu"], name


def test_session_affinity_only_where_switched_on(by_kind, rendering):
    backend = by_kind["Service"]["backend"]["spec"]
    if "session-affinity" in rendering.components():
        assert backend["sessionAffinity"] == "ClientIP"
        assert backend["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] > 0
    else:
        assert backend.get("sessionAffinity", "None") == "None"
    for name, service in by_kind["Service"].items():
        if name != "backend":
            assert "sessionAffinity" not in service["spec"], name


TRAFFIC_POLICIES = {
    "internal-traffic-local": ("internalTrafficPolicy", "Local"),
    "prefer-same-node": ("trafficDistribution", "PreferSameNode"),
    "prefer-same-zone": ("trafficDistribution", "PreferSameZone"),
}


def test_traffic_policies_only_where_switched_on_and_only_on_backend(by_kind, rendering):
    backend = by_kind["Service"]["backend"]["spec"]
    for component, (field, value) in TRAFFIC_POLICIES.items():
        if component in rendering.components():
            assert backend[field] == value, component
    wanted = {TRAFFIC_POLICIES[c][0] for c in rendering.components() if c in TRAFFIC_POLICIES}
    assert wanted == {f for f, _ in TRAFFIC_POLICIES.values() if f in backend}
    for name, service in by_kind["Service"].items():
        if name != "backend":
            assert not {"internalTrafficPolicy", "trafficDistribution"} & set(service["spec"])


def test_statefulset_is_governed_by_a_headless_service_and_keeps_its_disk(workloads, by_kind):
    mysql = workloads["mysql"]
    assert mysql["kind"] == "StatefulSet"
    governing = by_kind["Service"][mysql["spec"]["serviceName"]]
    # Headless: the name answers with pod addresses and mysql-0.<service> names the pod;
    # the backend uses the ClusterIP Service `mysql`.
    assert governing["spec"]["clusterIP"] == "None"
    assert _service_targets(governing, workloads) == ["mysql"]
    assert governing["metadata"]["name"] != "mysql"
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


def _file_source(workloads, envs, workload, container_name, variable):
    """The (Secret, key) the file named by `variable` comes from, in that container."""
    spec = pod_spec(workloads[workload])
    (container,) = [c for c in all_containers(spec) if c["name"] == container_name]
    path = envs[(workload, container_name)][variable]
    assert isinstance(path, str), f"{variable} should be a plain path, not {path!r}"
    files = secret_mount_files(container, spec)
    assert path in files, f"{workload}/{container_name}: {variable}={path} is no Secret file"
    return files[path]


def test_database_url_matches_the_secret_and_holds_no_password(envs, secrets, workloads):
    env = envs[("backend", "backend")]
    url = urlsplit(env["DATABASE_URL"])
    assert url.scheme == "mysql+pymysql"
    assert url.password is None, "the password comes from the Secret, not the URL"
    secret, key = _file_source(workloads, envs, "backend", "backend", "DATABASE_PASSWORD_FILE")
    assert key == "MYSQL_PASSWORD"
    credentials = secrets[secret]
    assert url.username == credentials["MYSQL_USER"]
    assert url.path.lstrip("/") == credentials["MYSQL_DATABASE"]
    assert set(CREDENTIALS) <= set(credentials)


def test_mysql_reads_the_same_secret_as_the_backend(envs, workloads):
    mysql = envs[("mysql", "mysql")]
    backend_secret, _ = _file_source(
        workloads, envs, "backend", "backend", "DATABASE_PASSWORD_FILE"
    )
    for key in ("MYSQL_USER", "MYSQL_DATABASE"):
        assert mysql[key] == ("secret", backend_secret, key)
    for key in PASSWORDS:
        # The official image's entrypoint reads MYSQL_*_FILE (file_env).
        source = _file_source(workloads, envs, "mysql", "mysql", f"{key}_FILE")
        assert source == (backend_secret, key)


def test_the_backend_pods_never_see_the_root_password(workloads):
    spec = pod_spec(workloads["backend"])
    for container in all_containers(spec):
        keys = {key for _, key in secret_mount_files(container, spec).values()}
        assert keys == {"MYSQL_PASSWORD"}, container["name"]


def test_no_password_in_any_container_environment(workloads, envs, secrets):
    # Passwords are files: a variable shows in `kubectl describe`, /proc/<pid>/environ
    # and every child process.
    passwords = {v for values in secrets.values() for k, v in values.items() if k in PASSWORDS}
    for name, obj in workloads.items():
        for container in all_containers(pod_spec(obj)):
            where = f"{name}/{container['name']}"
            assert not any("secretRef" in s for s in container.get("envFrom", [])), where
            for variable, value in envs[(name, container["name"])].items():
                if "PASSWORD" in variable.upper():
                    assert variable.endswith("_FILE"), f"{where}: {variable}"
                if isinstance(value, tuple) and value[0] == "secret":
                    assert value[2] not in PASSWORDS, f"{where}: {variable} from {value}"
                assert value not in passwords, f"{where}: {variable}"


def test_the_environment_check_catches_a_password_variable():
    # Guards the check above: the old way (a secretKeyRef) reads as a password variable.
    ref = {"secretKeyRef": {"name": "s", "key": "MYSQL_PASSWORD"}}
    wired = {"name": "c", "env": [{"name": "DATABASE_PASSWORD", "valueFrom": ref}]}
    value = container_env(wired, {}, {"s": {"MYSQL_PASSWORD": "x"}})["DATABASE_PASSWORD"]
    assert value == ("secret", "s", "MYSQL_PASSWORD") and value[2] in PASSWORDS


def test_secret_files_are_readable_by_the_pod_user_only_through_its_group(workloads):
    for name in ("backend", "mysql"):
        spec = pod_spec(workloads[name])
        (volume,) = [v["secret"] for v in spec["volumes"] if "secret" in v]
        assert volume["defaultMode"] == 0o440, name
        # Secret files belong to root and the pod's fsGroup: the group is the app's.
        assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]


def test_no_password_in_a_config_map(config_maps, secrets):
    secret_values = {v for values in secrets.values() for v in values.values() if len(v) > 3}
    for name, data in config_maps.items():
        for key, value in data.items():
            if "PASSWORD" in key.upper():
                # Where the password is, never what it is.
                assert key.endswith("_FILE") and value.startswith("/"), f"{name} holds {key}"
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
    for variable in ("DATABASE_URL", "DATABASE_PASSWORD_FILE"):
        assert init_env[variable] == main_env[variable]
    assert secret_mount_files(init, spec) == secret_mount_files(spec["containers"][0], spec)


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
    for path in ("/healthz", "/readyz"):
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
def test_disruption_budgets_allow_one_at_a_time(tier, by_kind, workloads, hpas):
    pdb = by_kind["PodDisruptionBudget"][tier]
    assert selector_matches(pdb["spec"]["selector"], pod_labels(workloads[tier]))
    replicas = effective_replicas(workloads[tier], hpas)
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


def test_config_files_feed_the_config_maps(config_maps, rendering):
    for tier in APP_TIERS:
        (name,) = [n for n in config_maps if n.startswith(f"{tier}-config-")]
        expected = parse_env_file(Path(BASE_DIR) / tier / "config.env")
        development = DEVELOPMENT_DIR / f"{tier}.env"
        if rendering.environment == "development" and development.exists():
            expected |= parse_env_file(development)
        if tier == "frontend" and "gateway" in rendering.components():
            expected |= {"CSRF_COOKIE_SECURE": "true"}  # served over HTTPS there
        assert config_maps[name] == expected


# Settings the tiers read (common/settings.py) for the traces' resource attributes.
TRACE_RESOURCE_VARIABLES = (
    "SERVICE_NAMESPACE",
    "K8S_DEPLOYMENT_NAME",
    "K8S_CONTAINER_NAME",
    "DEPLOYMENT_ENVIRONMENT",
)
_LABEL_OR_ANNOTATION = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def _downward(template: dict, source: tuple[str, str]) -> str | None:
    """What a Downward API field reference gives the pod made from `template`."""
    kind, path = source
    assert kind == "field", source
    found = _LABEL_OR_ANNOTATION.fullmatch(path)
    assert found, f"not a label or annotation: {path}"
    return (template.get(found[1]) or {}).get(found[2])


def test_the_trace_resource_variables_are_settings_the_tiers_read():
    from common.settings import CommonSettings

    fields = {name.upper() for name in CommonSettings.model_fields}
    assert set(TRACE_RESOURCE_VARIABLES) <= fields


@pytest.mark.parametrize("tier", APP_TIERS)
def test_tracing_is_set_by_otel_variables_only_where_switched_on(tier, workloads, envs, rendering):
    env = envs[(tier, tier)]
    otel = {k: v for k, v in env.items() if k.startswith("OTEL_")}
    if "tracing" not in rendering.components():
        assert otel == {}, "no endpoint, nothing exported"
        return
    assert otel["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert otel["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    # The traces' k8s.namespace.name, from the Downward API like the pod's name.
    assert env["POD_NAMESPACE"] == ("field", "metadata.namespace")
    # The rest of the resource, as the pod will see it: read from its template.
    template = workloads[tier]["spec"]["template"]["metadata"]
    environment = "production" if rendering.name.startswith("production") else "development"
    assert {
        name: _downward(template, env[name]) if isinstance(env[name], tuple) else env[name]
        for name in TRACE_RESOURCE_VARIABLES
    } == {
        "SERVICE_NAMESPACE": "clusterip-demo",
        "K8S_DEPLOYMENT_NAME": workloads[tier]["metadata"]["name"],
        "K8S_CONTAINER_NAME": tier,
        "DEPLOYMENT_ENVIRONMENT": environment,
    }
    # The migrate init container exports nothing.
    for container in all_containers(pod_spec(workloads[tier])):
        if container["name"] != tier:
            assert not any(k.startswith("OTEL_") for k in envs[(tier, container["name"])])
