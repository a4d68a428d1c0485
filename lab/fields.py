"""Which fields of a Service, a pod and a container the lab honours; any other is refused.

The lab must never run a manifest differently from a cluster without saying
so. Each object's fields fall in three groups: those the lab implements,
those that change nothing on a one-node cluster without an API server and
are accepted as written (named below with the reason), and the rest, which
make the lab refuse to start with a ManifestError naming the field. A field
Kubernetes adds in a later version is refused too until someone decides
which group it belongs in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# --- Service -------------------------------------------------------------------------------

SERVICE_SPEC_IMPLEMENTED = frozenset(
    {
        "type",  # ClusterIP only (checked where it is read)
        "selector",
        "ports",
        "clusterIP",
        "clusterIPs",  # only as the one-element twin of clusterIP
        "sessionAffinity",
        "sessionAffinityConfig",
        "ipFamilies",  # only [IPv4]
        "ipFamilyPolicy",  # only SingleStack
        "internalTrafficPolicy",  # Cluster or Local (kube-proxy's SVL chains)
        "trafficDistribution",  # topology hints (the EndpointSlice controller, kube-proxy)
        "publishNotReadyAddresses",  # only false, or on a headless Service (DNS only)
    }
)
# Kubernetes 1.35's values (PreferSameNode is GA there; PreferClose is PreferSameZone's
# older name).
TRAFFIC_DISTRIBUTIONS = ("PreferClose", "PreferSameZone", "PreferSameNode")
SERVICE_PORT_IMPLEMENTED = frozenset({"name", "port", "targetPort", "protocol"})
# appProtocol is a hint for ingress controllers and meshes; kube-proxy ignores it too.
SERVICE_PORT_NO_EFFECT = frozenset({"appProtocol"})

# --- pod -----------------------------------------------------------------------------------

POD_SPEC_IMPLEMENTED = frozenset(
    {
        "containers",
        "initContainers",
        "volumes",
        "securityContext",
        "terminationGracePeriodSeconds",
        "restartPolicy",
        "enableServiceLinks",
        "dnsPolicy",  # only ClusterFirst, what the lab's per-pod resolv.conf is
        "hostNetwork",  # only false
        "hostPID",  # only false
        "hostIPC",  # only false
        "shareProcessNamespace",  # only false
        "setHostnameAsFQDN",  # only false
    }
)
# Scheduling and API-server matters: on one node with no API server they
# change nothing about how the pods run or connect.
POD_SPEC_NO_EFFECT = frozenset(
    {
        "affinity",
        "nodeSelector",
        "tolerations",
        "topologySpreadConstraints",
        "priorityClassName",
        "priority",
        "preemptionPolicy",
        "schedulerName",
        "serviceAccountName",
        "serviceAccount",
        "automountServiceAccountToken",
        "imagePullSecrets",
    }
)
# Values that are the defaults, written out: accepted; anything else refused.
POD_SPEC_ONLY = {
    "dnsPolicy": ("ClusterFirst",),
    "hostNetwork": (False,),
    "hostPID": (False,),
    "hostIPC": (False,),
    "shareProcessNamespace": (False,),
    "setHostnameAsFQDN": (False,),
}

CONTAINER_IMPLEMENTED = frozenset(
    {
        "name",
        "image",
        "command",
        "args",
        "env",
        "envFrom",
        "ports",
        "startupProbe",
        "readinessProbe",
        "livenessProbe",
        "lifecycle",
        "securityContext",
        "volumeMounts",
        "workingDir",
        "resources",
    }
)
# No image is pulled and the termination message is not read by anyone.
CONTAINER_NO_EFFECT = frozenset(
    {"imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy"}
)


class FieldError(ValueError):
    """A field the lab cannot honour (manifests.py turns it into a ManifestError)."""


def _unknown(raw: Mapping[str, Any], allowed: frozenset[str], where: str, what: str) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise FieldError(
            f"{where}: {what} field{'s' if len(extra) > 1 else ''} {', '.join(extra)} "
            "not supported in the lab"
        )


def check_service(spec: Mapping[str, Any], where: str) -> None:
    """Refuse a Service spec the lab cannot run as written."""
    _unknown(spec, SERVICE_SPEC_IMPLEMENTED, where, "spec")
    for raw in spec.get("ports") or []:
        _unknown(raw, SERVICE_PORT_IMPLEMENTED | SERVICE_PORT_NO_EFFECT, where, "port")
    families = spec.get("ipFamilies")
    if families is not None and list(families) != ["IPv4"]:
        raise FieldError(f"{where}: ipFamilies {list(families)} is not supported, only [IPv4]")
    policy = spec.get("ipFamilyPolicy")
    if policy not in (None, "SingleStack"):
        raise FieldError(f"{where}: ipFamilyPolicy {policy} is not supported, only SingleStack")
    internal = spec.get("internalTrafficPolicy")
    if internal not in (None, "Cluster", "Local"):
        raise FieldError(f"{where}: internalTrafficPolicy {internal}? (Cluster or Local)")
    distribution = spec.get("trafficDistribution")
    if distribution not in (None, *TRAFFIC_DISTRIBUTIONS):
        raise FieldError(
            f"{where}: trafficDistribution {distribution}? ({', '.join(TRAFFIC_DISTRIBUTIONS)})"
        )
    cluster_ips = spec.get("clusterIPs")
    if cluster_ips is not None:
        expected = [spec["clusterIP"]] if spec.get("clusterIP") else None
        if len(cluster_ips) != 1 or (expected is not None and list(cluster_ips) != expected):
            raise FieldError(
                f"{where}: clusterIPs {list(cluster_ips)} is not supported, "
                "only one address, the same as clusterIP"
            )
    headless = spec.get("clusterIP") == "None"
    if spec.get("publishNotReadyAddresses") and not headless:
        # On a headless Service it only changes DNS records, and the lab's
        # per-pod hosts files list StatefulSet pods whatever their readiness.
        raise FieldError(
            f"{where}: publishNotReadyAddresses: true is supported on headless Services only"
        )


def session_affinity(spec: Mapping[str, Any], where: str) -> int | None:
    """sessionAffinity: the ClientIP timeout in seconds, or None for no affinity."""
    kind = spec.get("sessionAffinity", "None")
    config = spec.get("sessionAffinityConfig")
    if kind == "None":
        if config:
            raise FieldError(f"{where}: sessionAffinityConfig needs sessionAffinity: ClientIP")
        return None
    if kind != "ClientIP":
        raise FieldError(f"{where}: sessionAffinity {kind!r}? (None or ClientIP)")
    timeout = ((config or {}).get("clientIP") or {}).get("timeoutSeconds", 10800)
    # The API server's bounds (core/v1 validation: 0 < timeout <= 86400).
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 < timeout <= 86400:
        raise FieldError(
            f"{where}: sessionAffinityConfig.clientIP.timeoutSeconds {timeout!r} must be 1 to 86400"
        )
    return timeout


def check_pod(spec: Mapping[str, Any], where: str) -> None:
    """Refuse a pod spec the lab cannot run as written."""
    _unknown(spec, POD_SPEC_IMPLEMENTED | POD_SPEC_NO_EFFECT, where, "pod spec")
    for key, allowed in POD_SPEC_ONLY.items():
        if key in spec and spec[key] not in allowed:
            raise FieldError(f"{where}: {key}: {spec[key]} is not supported in the lab")


def check_container(raw: Mapping[str, Any], where: str) -> None:
    """Refuse a container the lab cannot run as written."""
    _unknown(raw, CONTAINER_IMPLEMENTED | CONTAINER_NO_EFFECT, where, "container")
