"""lab/sources against the old model: for the app's own k8s/ manifests and the same pods
(one not ready, one terminating), each translation of the API objects gives what the
old controllers computed, except where the old model left out what a cluster has."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable

import pytest

from lab.api.storage import Store
from lab.apiserver import ApiServer
from lab.controllers import dns, endpointslice, networkpolicy
from lab.dns import DnsService
from lab.envvars import service_link_env
from lab.netpol import compile_policies
from lab.sources.cni import policy_inputs
from lab.sources.configdata import config_maps, secrets
from lab.sources.dns import dns_services
from lab.sources.envvars import service_env
from lab.sources.kubeproxy import service_port_rules
from tests.conftest import missing
from tests.lab import apicluster as api
from tests.lab import twomodels

NS = "clusterip-demo"


@pytest.fixture(scope="module")
def models() -> tuple[ApiServer, Store]:
    if shutil.which("kubectl") is None:
        missing("kubectl is not installed: the lab renders k8s/ with `kubectl kustomize`")
    old = twomodels.old_model()
    return old, twomodels.new_model(old)


def test_kube_proxy_gets_the_same_rules(models: tuple[ApiServer, Store]) -> None:
    old, new = models
    rules = service_port_rules(*api.services_and_slices(new))
    expected = endpointslice.compute(old)
    assert {e.terminating for r in expected for e in r.endpoints} == {False, True}
    assert [r for r in rules if r.port_name.startswith(f"{NS}/")] == expected


def _by_address(services: Iterable[DnsService]) -> list[DnsService]:
    return [
        dataclasses.replace(s, endpoints=tuple(sorted(s.endpoints, key=lambda e: e.ip)))
        for s in services
    ]


def test_the_dns_gets_the_same_services_and_endpoints(models: tuple[ApiServer, Store]) -> None:
    old, new = models
    found = [s for s in dns_services(*api.services_and_slices(new)) if s.namespace == NS]
    expected = dns.view(old)
    assert any(e.hostname == "mysql-0" for s in expected for e in s.endpoints)
    assert _by_address(found) == _by_address(expected)


def test_network_policy_compiles_to_the_same_rules(models: tuple[ApiServer, Store]) -> None:
    old, new = models
    inputs = policy_inputs(
        api.listed(new, "networkpolicies", "networking.k8s.io"),
        api.listed(new, "pods"),
        api.listed(new, "namespaces"),
    )
    chains, rules = compile_policies(*inputs)
    assert chains
    assert (chains, rules) == networkpolicy.compute(old)


def test_the_service_links_are_the_same_plus_the_api_servers(
    models: tuple[ApiServer, Store],
) -> None:
    old, new = models
    # What lab/cluster.py's service_env gave every app pod.
    expected = service_link_env(
        [(s, old.cluster_ip(s) or "") for s in old.manifests.services.values() if not s.headless]
    )
    env = service_env(api.listed(new, "services"), NS)
    assert "BACKEND_SERVICE_HOST" in expected
    assert {k: v for k, v in env.items() if not k.startswith("KUBERNETES_")} == expected
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"  # the old model had no `kubernetes`


def test_config_maps_and_secrets_are_the_same(models: tuple[ApiServer, Store]) -> None:
    old, new = models
    assert old.manifests.secrets
    assert config_maps(api.listed(new, "configmaps"))[NS] == old.manifests.config_maps
    assert secrets(api.listed(new, "secrets"))[NS] == old.manifests.secrets
