"""Every Service, pod and container field the lab does not honour is refused, never ignored.

lab/fields.py: each test gives the lab a manifest with one such field and
expects a ManifestError naming it; the fields the lab implements or that
change nothing on one node are accepted.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.manifests import ManifestError, parse_documents


def _service(**spec: Any) -> dict[str, Any]:
    base = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    return {"kind": "Service", "metadata": {"name": "web", "namespace": "ns"}, "spec": base | spec}


def _deployment(pod: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "c", "image": "x", **container}], **(pod or {})}
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec},
        },
    }


# --- Services --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"externalIPs": ["192.0.2.1"]}, "externalIPs"),
        ({"internalTrafficPolicy": "Nearby"}, "internalTrafficPolicy Nearby"),
        ({"ipFamilyPolicy": "PreferDualStack"}, "ipFamilyPolicy PreferDualStack"),
        ({"ipFamilies": ["IPv6"]}, "ipFamilies"),
        ({"ipFamilies": ["IPv4", "IPv6"]}, "ipFamilies"),
        ({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5", "fd00::5"]}, "clusterIPs"),
        ({"publishNotReadyAddresses": True}, "publishNotReadyAddresses"),
        ({"trafficDistribution": "Anywhere"}, "trafficDistribution Anywhere"),
        ({"externalTrafficPolicy": "Local"}, "externalTrafficPolicy"),
        ({"loadBalancerSourceRanges": ["0.0.0.0/0"]}, "loadBalancerSourceRanges"),
        ({"healthCheckNodePort": 30000}, "healthCheckNodePort"),
        ({"sessionAffinity": "Cookie"}, "sessionAffinity 'Cookie'"),
        ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}, "sessionAffinityConfig"),
        (
            {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}},
            },
            "timeoutSeconds 0",
        ),
        (
            {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}},
            },
            "timeoutSeconds 86401",
        ),
        ({"ports": [{"port": 80, "nodePort": 30080}]}, "nodePort"),
        ({"selectro": {"app": "web"}}, "selectro"),
    ],
)
def test_service_fields_the_lab_does_not_honour(spec: dict[str, Any], named: str) -> None:
    with pytest.raises(ManifestError, match=f"Service web: .*{named}"):
        parse_documents([_service(**spec)])


def test_service_fields_the_lab_honours() -> None:
    svc = parse_documents(
        [
            _service(
                clusterIP="10.96.0.5",
                clusterIPs=["10.96.0.5"],
                ipFamilies=["IPv4"],
                ipFamilyPolicy="SingleStack",
                internalTrafficPolicy="Cluster",
                publishNotReadyAddresses=False,
                sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}},
                ports=[{"name": "http", "port": 80, "appProtocol": "http"}],
            )
        ]
    ).services["web"]
    assert svc.affinity_timeout == 30 and svc.cluster_ip == "10.96.0.5"


@pytest.mark.parametrize(
    "policies",
    [
        {"internalTrafficPolicy": "Local"},
        {"trafficDistribution": "PreferClose"},
        {"trafficDistribution": "PreferSameZone"},
        {"trafficDistribution": "PreferSameNode"},
    ],
)
def test_traffic_policies_are_honoured(policies: dict[str, Any]) -> None:
    # kube-proxy's Local policy and topology hints (lab/kubeproxy/topology.py).
    assert "web" in parse_documents([_service(**policies)]).services


def test_session_affinity_defaults_as_the_api_server() -> None:
    assert parse_documents([_service()]).services["web"].affinity_timeout is None
    sticky = parse_documents([_service(sessionAffinity="ClientIP")]).services["web"]
    assert sticky.affinity_timeout == 10800


def test_a_headless_service_may_publish_not_ready_addresses() -> None:
    svc = parse_documents([_service(clusterIP="None", publishNotReadyAddresses=True)])
    assert svc.services["web"].headless


# --- pods and containers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "named"),
    [
        ({"dnsPolicy": "Default"}, "dnsPolicy: Default"),
        ({"dnsPolicy": "ClusterFirstWithHostNet"}, "dnsPolicy"),
        ({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}, "dnsConfig"),
        ({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["x"]}]}, "hostAliases"),
        ({"hostname": "web"}, "hostname"),
        ({"subdomain": "web"}, "subdomain"),
        ({"shareProcessNamespace": True}, "shareProcessNamespace"),
        ({"setHostnameAsFQDN": True}, "setHostnameAsFQDN"),
        ({"hostNetwork": True}, "hostNetwork"),
        ({"readinessGates": [{"conditionType": "x"}]}, "readinessGates"),
        ({"runtimeClassName": "gvisor"}, "runtimeClassName"),
        ({"activeDeadlineSeconds": 10}, "activeDeadlineSeconds"),
        ({"hostUsers": False}, "hostUsers"),
        ({"os": {"name": "linux"}}, "os"),
    ],
)
def test_pod_fields_the_lab_does_not_honour(pod: dict[str, Any], named: str) -> None:
    with pytest.raises(ManifestError, match=f"Deployment web: .*{named}"):
        parse_documents([_deployment(pod)])


@pytest.mark.parametrize(
    ("container", "named"),
    [
        ({"stdin": True}, "stdin"),
        ({"tty": True}, "tty"),
        ({"restartPolicy": "Always"}, "restartPolicy"),
        ({"volumeDevices": [{"name": "v", "devicePath": "/dev/x"}]}, "volumeDevices"),
        ({"resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}, "resize"),
    ],
)
def test_container_fields_the_lab_does_not_honour(container: dict[str, Any], named: str) -> None:
    with pytest.raises(ManifestError, match=f"container c: .*{named}"):
        parse_documents([_deployment(**container)])


def test_pod_fields_that_change_nothing_on_one_node_are_accepted() -> None:
    pod = {
        "dnsPolicy": "ClusterFirst",
        "topologySpreadConstraints": [],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [],
        "priorityClassName": "high",
        "automountServiceAccountToken": False,
        "serviceAccountName": "web",
        "hostNetwork": False,
    }
    container = {"imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File"}
    manifests = parse_documents([_deployment(pod, **container)])
    assert manifests.workloads["Deployment/web"].template.containers[0].name == "c"
