"""Every rendering (development, production, each component on) renders, every object
passes the Kubernetes JSON schemas in strict mode, and the objects, names, labels and
images are the ones DESIGN.md promises."""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from crd_validation import custom_errors, is_custom
from k8s_manifests import (
    BASE_DIR,
    DEVELOPMENT_DIR,
    K8S_DIR,
    NAMESPACE,
    PRODUCTION_DIR,
    RENDERINGS,
    all_containers,
    pod_labels,
    pod_spec,
    render,
)

# 1.33 is the contract; 1.30 is the oldest release whose schema has the preStop `sleep`
# action these manifests use; the newest bundled schema catches removals early.
SCHEMA_VERSIONS = ["1.30", "1.33", kubernetes_validate.latest_version()]

EXPECTED_OBJECTS = {
    ("ConfigMap", "backend-config"),
    ("ConfigMap", "frontend-config"),
    ("Service", "frontend"),
    ("Service", "backend"),
    ("Service", "redis"),
    ("Service", "mysql"),
    ("Service", "mysql-headless"),
    ("Deployment", "frontend"),
    ("Deployment", "backend"),
    ("Deployment", "redis"),
    ("StatefulSet", "mysql"),
    ("PodDisruptionBudget", "frontend"),
    ("PodDisruptionBudget", "backend"),
    ("NetworkPolicy", "default-deny-all"),
    ("NetworkPolicy", "allow-dns-egress"),
    ("NetworkPolicy", "frontend"),
    ("NetworkPolicy", "backend"),
    ("NetworkPolicy", "redis"),
    ("NetworkPolicy", "mysql"),
}
# What each environment or component adds to the objects above.
ADDED_BY = {
    # Development owns the namespace; production expects it (k8s/namespace/, applied once).
    "development": {("Secret", "mysql-credentials"), ("Namespace", "clusterip-demo")},
    "production": set(),
    "network-policies": {
        ("NetworkPolicy", name)
        for name in (
            "default-deny-all",
            "allow-dns-egress",
            "frontend",
            "backend",
            "redis",
            "mysql",
        )
    },
    "metrics-scrape": {("NetworkPolicy", "allow-metrics-scrape")},
    "hpa": {("HorizontalPodAutoscaler", "backend"), ("HorizontalPodAutoscaler", "frontend")},
    "session-affinity": set(),
    "internal-traffic-local": set(),
    "prefer-same-node": set(),
    "prefer-same-zone": set(),
    "tracing": {("NetworkPolicy", "allow-otlp-egress")},
    "service-monitor": {("ServiceMonitor", "clusterip-demo")},
    "backup": {
        ("ConfigMap", "mysql-backup-script"),
        ("PersistentVolumeClaim", "mysql-backups"),
        ("CronJob", "mysql-backup"),
        ("CronJob", "mysql-restore"),
        ("NetworkPolicy", "mysql-backup"),
        ("NetworkPolicy", "mysql-from-backup"),
    },
    "gateway": {
        ("Gateway", "clusterip-demo"),
        ("HTTPRoute", "frontend"),
        ("HTTPRoute", "frontend-https-redirect"),
        ("NetworkPolicy", "allow-gateway-ingress"),
    },
}
GENERATED = {"ConfigMap", "Secret"}  # kustomize appends a content hash to their names
TIERS = {"frontend", "backend", "redis", "mysql"}
COMPONENTS = {"frontend": "web", "backend": "api", "redis": "cache", "mysql": "database"}
PART_OF = "app.kubernetes.io/part-of"
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"


def _base_name(doc: dict) -> str:
    name = doc["metadata"]["name"]
    if doc["kind"] in GENERATED:
        name = re.sub(r"-[a-z0-9]{10}$", "", name)
    return name


def test_renders_exactly_the_expected_objects(rendered, rendering):
    found = [(doc["kind"], _base_name(doc)) for doc in rendered]
    assert len(found) == len(set(found)), f"duplicate objects: {found}"
    expected = set(EXPECTED_OBJECTS) | ADDED_BY[rendering.environment]
    for component in rendering.components():
        expected |= ADDED_BY[component]
    assert set(found) == expected


def test_development_and_production_switch_on_the_default_components():
    # NetworkPolicies everywhere; the scrape policy too (it admits nobody where no
    # Prometheus runs). The others are for whoever switches them on.
    for rendering in RENDERINGS[:2]:
        assert rendering.components() == {"network-policies", "metrics-scrape"}


def test_every_component_is_rendered_by_some_test():
    components = {p.name for p in (K8S_DIR / "components").iterdir() if p.is_dir()}
    assert components == set().union(*(r.components() for r in RENDERINGS))
    assert components == set(ADDED_BY) - {"development", "production"}


def test_generated_names_carry_a_content_hash(rendered):
    # The hash suffix is what rolls the pods when config.env or credentials.env change.
    for doc in rendered:
        if doc["kind"] in GENERATED:
            assert re.search(r"-[a-z0-9]{10}$", doc["metadata"]["name"]), doc["metadata"]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_validates_strictly(rendered, version):
    errors = []
    for doc in rendered:
        if is_custom(doc):
            # A CRD's kind: its project's published schema, as strictly (crd_schemas/).
            errors += [f"{doc['kind']}/{doc['metadata']['name']}: {e}" for e in custom_errors(doc)]
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_a_misspelt_field(workloads):
    # The check above is only worth something if strict mode really rejects unknown
    # fields: a `readinessProb` typo passes the lax schema and is silently dropped.
    broken = copy.deepcopy(workloads["backend"])
    container = pod_spec(broken)["containers"][0]
    container["readinessProb"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33", strict=True)


def test_every_namespaced_object_lands_in_the_namespace(rendered):
    for doc in rendered:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
            continue
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{_base_name(doc)}"


@pytest.mark.parametrize("directory", [K8S_DIR, BASE_DIR, PRODUCTION_DIR], ids=str)
def test_kustomizations_set_the_namespace_and_modern_labels(directory):
    # k8s/ itself is one of them, so that `kubectl apply -k k8s/` works as the README says.
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert "commonLabels" not in kustomization, "commonLabels is deprecated; use labels:"
    assert kustomization["namespace"] == NAMESPACE


def test_the_base_holds_no_secret_and_no_environment():
    kustomization = yaml.safe_load((BASE_DIR / "kustomization.yaml").read_text())
    assert "secretGenerator" not in kustomization
    docs = render(BASE_DIR)
    assert not [d for d in docs if d["kind"] == "Secret"]
    backend_config = next(d for d in docs if d["metadata"]["name"].startswith("backend-config"))
    assert "ENVIRONMENT" not in backend_config["data"]


def test_production_generates_no_secret_and_expects_mysql_credentials():
    rendered = render(PRODUCTION_DIR)
    assert not [d for d in rendered if d["kind"] == "Secret"]
    # Referenced by its plain name: the one `kubectl create secret` or a secret manager makes.
    text = yaml.safe_dump_all(rendered)
    assert "secretName: mysql-credentials\n" in text
    assert "name: mysql-credentials\n" in text


def test_only_development_says_it_is_development(rendering, config_maps):
    (backend,) = [data for name, data in config_maps.items() if name.startswith("backend-config")]
    if rendering.environment == "development":
        assert backend["ENVIRONMENT"] == "development"
    else:
        assert "ENVIRONMENT" not in backend


def test_every_object_carries_the_recommended_labels(rendered):
    for doc in rendered:
        labels = doc["metadata"].get("labels", {})
        where = f"{doc['kind']}/{_base_name(doc)}"
        assert labels.get(PART_OF) == "clusterip-demo", where
        assert labels.get(NAME), where
        if doc["kind"] != "Namespace" and labels[NAME] in TIERS:
            assert labels.get(COMPONENT) == COMPONENTS[labels[NAME]], where


def test_pod_templates_are_labelled_and_selectors_stay_minimal(workloads):
    for name, obj in workloads.items():
        labels = pod_labels(obj)
        if obj["kind"] == "CronJob":
            # The backup and restore pods are both mysql-backup's (one NetworkPolicy
            # admits them); a Job makes its own selector.
            assert (labels.get(NAME), labels.get(COMPONENT)) == ("mysql-backup", "backup")
            assert labels.get(PART_OF) == "clusterip-demo"
            continue
        assert labels.get(NAME) == name
        assert labels.get(COMPONENT) == COMPONENTS[name]
        assert labels.get(PART_OF) == "clusterip-demo"
        # Selectors are immutable: only the stable name, never a label kustomize adds.
        assert obj["spec"]["selector"] == {"matchLabels": {NAME: name}}


def test_images_are_pinned(workloads):
    # The tag is written once, in the base, for every environment.
    kustomization = yaml.safe_load((BASE_DIR / "kustomization.yaml").read_text())
    own_tags = {image["name"]: image["newTag"] for image in kustomization["images"]}
    assert set(own_tags) == {"clusterip-demo/backend", "clusterip-demo/frontend"}
    for name, obj in workloads.items():
        for container in all_containers(pod_spec(obj)):
            image = container["image"]
            repository, _, tag = image.rpartition(":")
            assert repository and tag, f"{name}/{container['name']}: untagged image {image}"
            assert tag != "latest", f"{name}/{container['name']}: {image}"
            if repository in own_tags:
                assert tag == own_tags[repository]
            else:
                # Third-party images: a full patch version, not a moving 8.4 or 7.
                assert re.match(r"^\d+\.\d+\.\d+(-[a-z0-9.]+)?$", tag), image
            assert container.get("imagePullPolicy") == "IfNotPresent", (name, container["name"])


def test_third_party_images_are_the_design_ones(workloads):
    mysql = pod_spec(workloads["mysql"])["containers"][0]["image"]
    redis = pod_spec(workloads["redis"])["containers"][0]["image"]
    assert re.match(r"^mysql:8\.4\.\d+$", mysql), "MySQL 8.4 LTS, pinned"
    assert re.match(r"^redis:(7|8)\.\d+\.\d+(-bookworm|-trixie)?$", redis), redis


def test_docs_exist_for_the_manifests():
    assert (Path(K8S_DIR).parent / "docs" / "kubernetes.md").is_file()


def test_images_can_be_pinned_by_digest_in_the_production_overlay(tmp_path):
    # What overlays/production/README.md tells a release to do, applied to a copy. The
    # digest is made up for this test only; no real one is written in the repository.
    fake_digest = "sha256:" + "0123456789abcdef" * 4
    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    overlay = copy / PRODUCTION_DIR.relative_to(K8S_DIR) / "kustomization.yaml"
    kustomization = yaml.safe_load(overlay.read_text())
    kustomization["images"] = [
        {
            "name": f"clusterip-demo/{tier}",
            "newName": f"registry.example/{tier}",
            "digest": fake_digest,
        }
        for tier in ("backend", "frontend")
    ]
    overlay.write_text(yaml.safe_dump(kustomization))
    images = {
        c["image"]
        for d in render(overlay.parent)
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in all_containers(pod_spec(d))
    }
    assert {f"registry.example/{t}@{fake_digest}" for t in ("backend", "frontend")} <= images
    assert not any(i.startswith("clusterip-demo/") for i in images)
    # The shipped overlay pins nothing yet: a digest is read from the registry at release.
    assert not re.search(
        r"sha256:[0-9a-f]{64}", (PRODUCTION_DIR / "kustomization.yaml").read_text()
    )


def test_development_password_files_hold_the_password_alone():
    for name in ("mysql-password", "mysql-root-password"):
        value = (DEVELOPMENT_DIR / name).read_text()
        assert value and value == value.strip(), f"{name}: whitespace would be part of it"


def test_credentials_can_be_replaced_by_an_overlay(tmp_path):
    # The recipe docs/kubernetes.md gives for real credentials really works: a
    # secretGenerator with behavior: replace, values taken literally, references rewritten.
    password = "s3cret@/:?#&%+ x"
    (tmp_path / "mysql-credentials.env").write_text(
        "MYSQL_DATABASE=app\nMYSQL_USER=app\n"
        f"MYSQL_PASSWORD={password}\nMYSQL_ROOT_PASSWORD=another-one\n"
    )
    (shipped,) = [d["metadata"]["name"] for d in render() if d["kind"] == "Secret"]
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S_DIR, tmp_path)],
                "secretGenerator": [
                    {
                        "name": "mysql-credentials",
                        "behavior": "replace",
                        "envs": ["mysql-credentials.env"],
                    }
                ],
            }
        )
    )
    docs = render(tmp_path)
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert values["MYSQL_PASSWORD"] == password
    assert secret["metadata"]["name"] != shipped
    text = yaml.safe_dump_all(docs)
    assert shipped not in text
    assert text.count(secret["metadata"]["name"]) >= 4  # Secret + mysql + migrate + backend
