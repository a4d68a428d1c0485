"""The components for production users: the ServiceMonitor (Prometheus operator) and the
Gateway (Gateway API), checked against their projects' published CRD schemas and wired to
Services, ports and Secrets that exist; and who owns the namespace and the MySQL volume."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from crd_validation import CUSTOM_KINDS, custom_errors, fixture
from k8s_manifests import (
    K8S_DIR,
    NAMESPACE,
    PRODUCTION_DIR,
    RENDERINGS,
    pod_spec,
    render,
    render_rendering,
    selector_matches,
)

Objects = dict[str, dict[str, dict[str, Any]]]


def _index(docs: list[dict[str, Any]]) -> Objects:
    index: Objects = {}
    for doc in docs:
        index.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return index


@pytest.fixture(scope="module")
def with_component(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[str, Objects] = {}

    def rendered(name: str) -> Objects:
        if name not in cache:
            (rendering,) = [r for r in RENDERINGS if r.name == name]
            cache[name] = _index(render_rendering(rendering, tmp_path_factory.mktemp(name)))
        return cache[name]

    return rendered


# --- the CRD schema fixtures ------------------------------------------------------------


def test_the_schema_fixtures_are_the_releases_the_comments_name():
    monitor = fixture("monitoring.coreos.com/v1", "ServiceMonitor")
    assert monitor["annotations"]["operator.prometheus.io/version"] == "0.93.0"
    for kind in ("Gateway", "HTTPRoute"):
        gateway_api = fixture("gateway.networking.k8s.io/v1", kind)
        assert gateway_api["annotations"]["gateway.networking.k8s.io/bundle-version"] == "v1.6.1"
        assert gateway_api["annotations"]["gateway.networking.k8s.io/channel"] == "standard"
    for (api_version, kind), _ in CUSTOM_KINDS.items():
        found = fixture(api_version, kind)
        assert f"{found['group']}/{found['version']}" == api_version
        assert found["kind"] == kind


def test_the_schema_check_rejects_what_an_api_server_would(with_component):
    monitor = with_component("production+service-monitor")["ServiceMonitor"]["clusterip-demo"]
    misspelt = copy.deepcopy(monitor)
    misspelt["spec"]["endpoints"][0]["intervall"] = "30s"
    assert custom_errors(misspelt)
    route = with_component("production+gateway")["HTTPRoute"]["frontend"]
    wrong_type = copy.deepcopy(route)
    wrong_type["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"  # Ingress's word
    assert custom_errors(wrong_type)
    gateway = with_component("production+gateway")["Gateway"]["clusterip-demo"]
    no_class = copy.deepcopy(gateway)
    del no_class["spec"]["gatewayClassName"]
    assert custom_errors(no_class)


# --- ServiceMonitor -----------------------------------------------------------------------


def test_the_service_monitor_scrapes_the_metrics_port_of_both_app_tiers(with_component):
    objects = with_component("production+service-monitor")
    monitor = objects["ServiceMonitor"]["clusterip-demo"]
    assert monitor["metadata"]["namespace"] == NAMESPACE
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    selected = {
        name
        for name, service in objects["Service"].items()
        if selector_matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    }
    assert selected == {"frontend", "backend"}
    for name in selected:
        ports = {p["name"] for p in objects["Service"][name]["spec"]["ports"]}
        assert "metrics" in ports, name
        pod_ports = {
            p["name"]
            for c in pod_spec(objects["Deployment"][name])["containers"]
            for p in c["ports"]
        }
        assert "metrics" in pod_ports, name
    # It needs the scrape policy to be let in: both are on in this rendering.
    assert "allow-metrics-scrape" in objects["NetworkPolicy"]


# --- Gateway ------------------------------------------------------------------------------


def test_the_routes_attach_to_listeners_of_the_gateway(with_component):
    objects = with_component("production+gateway")
    gateway = objects["Gateway"]["clusterip-demo"]
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    assert {(v["protocol"], v["port"]) for v in listeners.values()} == {
        ("HTTPS", 443),
        ("HTTP", 80),
    }
    for route in objects["HTTPRoute"].values():
        (parent,) = route["spec"]["parentRefs"]
        assert parent["name"] == gateway["metadata"]["name"]
        listener = listeners[parent["sectionName"]]
        assert route["spec"]["hostnames"] == [listener["hostname"]]


def test_https_terminates_with_a_secret_by_reference_and_routes_to_the_frontend_service(
    with_component,
):
    objects = with_component("production+gateway")
    gateway = objects["Gateway"]["clusterip-demo"]
    (https,) = [v for v in gateway["spec"]["listeners"] if v["protocol"] == "HTTPS"]
    assert https["tls"]["mode"] == "Terminate"
    (ref,) = https["tls"]["certificateRefs"]
    assert (ref.get("group", ""), ref.get("kind", "Secret")) == ("", "Secret")
    assert "namespace" not in ref  # this namespace: no ReferenceGrant needed
    # By reference only: no Secret and no key material in the rendering.
    assert ref["name"] not in objects.get("Secret", {})
    everything = [doc for kind in objects.values() for doc in kind.values()]
    assert "PRIVATE KEY" not in yaml.safe_dump_all(everything)
    route = objects["HTTPRoute"]["frontend"]
    (rule,) = route["spec"]["rules"]
    (backend,) = rule["backendRefs"]
    service = objects["Service"][backend["name"]]
    assert "type" not in service["spec"]  # still a ClusterIP
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == backend["port"]]
    assert port["name"] == "http"  # the page, never the metrics port


def test_plain_http_only_redirects_to_https(with_component):
    route = with_component("production+gateway")["HTTPRoute"]["frontend-https-redirect"]
    (rule,) = route["spec"]["rules"]
    assert "backendRefs" not in rule
    (only,) = rule["filters"]
    assert only["type"] == "RequestRedirect"
    assert only["requestRedirect"]["scheme"] == "https"


def test_behind_the_gateway_the_csrf_cookie_is_secure(with_component):
    config = next(
        data["data"]
        for name, data in with_component("production+gateway")["ConfigMap"].items()
        if name.startswith("frontend-config")
    )
    assert config["CSRF_COOKIE_SECURE"] == "true"


# --- who owns the namespace and the data --------------------------------------------------


def test_production_does_not_own_the_namespace_and_development_does():
    assert not [d for d in render(PRODUCTION_DIR) if d["kind"] == "Namespace"]
    (development,) = [d for d in render(K8S_DIR) if d["kind"] == "Namespace"]
    # What production is told to apply once is the namespace development creates (bar the
    # environment annotation every object of an environment carries).
    (once,) = render(K8S_DIR / "namespace")
    assert once["metadata"]["labels"] == development["metadata"]["labels"]
    assert once["metadata"]["name"] == development["metadata"]["name"]
    assert once["metadata"]["name"] == NAMESPACE
    assert once["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_mysql_statefulset_keeps_its_claim_when_deleted_or_scaled(workloads):
    policy = workloads["mysql"]["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy == {"whenDeleted": "Retain", "whenScaled": "Retain"}


# --- backups ------------------------------------------------------------------------------

BACKUP_SCRIPT = K8S_DIR / "components" / "backup" / "mysql-backup.sh"


def _job_container(cronjob: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(cronjob)["containers"]
    return container


def test_backups_run_nightly_one_at_a_time_and_the_restore_only_by_hand(with_component):
    cronjobs = with_component("production+backup")["CronJob"]
    backup, restore = cronjobs["mysql-backup"], cronjobs["mysql-restore"]
    for cronjob in (backup, restore):
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        assert pod_spec(cronjob)["restartPolicy"] == "Never"
    assert not backup["spec"].get("suspend")
    assert restore["spec"]["suspend"] is True
    assert _job_container(backup)["command"][-1] == "dump"
    assert _job_container(restore)["command"][-1] == "restore"


def test_the_jobs_run_the_script_of_the_repository_from_a_generated_config_map(with_component):
    objects = with_component("production+backup")
    (config_map,) = [d for n, d in objects["ConfigMap"].items() if n.startswith("mysql-backup-")]
    assert config_map["data"]["mysql-backup.sh"] == BACKUP_SCRIPT.read_text()
    for cronjob in objects["CronJob"].values():
        spec, container = pod_spec(cronjob), _job_container(cronjob)
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        script = container["command"][1]
        assert container["command"][0] == "bash"
        directory, _, filename = script.rpartition("/")
        assert filename == "mysql-backup.sh"
        assert volumes[mounts[directory]]["configMap"]["name"] == config_map["metadata"]["name"]
        assert volumes[mounts["/backups"]]["persistentVolumeClaim"]["claimName"] == "mysql-backups"
        # The server's own image: its mysqldump matches the server.
        mysql = pod_spec(objects["StatefulSet"]["mysql"])["containers"][0]["image"]
        assert container["image"] == mysql
    assert "mysql-backups" in objects["PersistentVolumeClaim"]


def test_the_jobs_read_every_credential_from_files(with_component):
    for cronjob in with_component("production+backup")["CronJob"].values():
        spec, container = pod_spec(cronjob), _job_container(cronjob)
        env = {e["name"]: e for e in container["env"]}
        assert all("valueFrom" not in e for e in env.values()), "no secretKeyRef variables"
        assert not [n for n in env if "PASSWORD" in n and not n.endswith("_FILE")]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for variable in ("MYSQL_USER_FILE", "MYSQL_DATABASE_FILE", "MYSQL_PASSWORD_FILE"):
            directory, _, key = env[variable]["value"].rpartition("/")
            mount = mounts[directory]
            assert mount["readOnly"] is True
            secret = volumes[mount["name"]]["secret"]
            assert secret["secretName"] == "mysql-credentials"
            assert key in {item["path"] for item in secret["items"]}
        # The application's account, never root's.
        assert "MYSQL_ROOT_PASSWORD" not in str(spec["volumes"])


def test_the_dump_is_consistent_without_locking_the_app_out():
    script = BACKUP_SCRIPT.read_text()
    assert "--single-transaction" in script
    assert "--skip-lock-tables" in script
    # The password reaches the clients in an option file, never on a command line.
    assert "--password" not in script and "-p$" not in script
