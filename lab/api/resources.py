"""The kinds the API serves: group, version, names, scope, verbs, what the lab does with them."""

from __future__ import annotations

from dataclasses import dataclass

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

# What the lab does with a kind: "acted" (a component of the lab reads it and acts),
# "stored" (kept and served, nothing acts on it: said in a Warning header), "refused"
# (listed so kubectl can name it, but creating one is refused with the reason).
ACTED, STORED, REFUSED = "acted", "stored", "refused"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    support: str = ACTED
    why: str = ""  # for STORED and REFUSED: what the lab lacks

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified(self) -> str:
        """`deployments.apps`, as kube-apiserver names a resource in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_ALL = ("all",)
RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", False, ("ns",), subresources=("status",)),
    Resource("", "v1", "Node", "nodes", False, ("no",), subresources=("status",)),
    Resource(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        _ALL,
        ("status", "eviction", "log", "exec", "attach", "portforward"),
    ),
    Resource("", "v1", "Service", "services", True, ("svc",), _ALL, ("status",)),
    Resource("", "v1", "Endpoints", "endpoints", True, ("ep",)),
    Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    Resource("", "v1", "Secret", "secrets"),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    Resource("", "v1", "Event", "events", True, ("ev",), support=STORED, why="events are a record"),
    Resource(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        True,
        ("rc",),
        _ALL,
        ("status", "scale"),
        REFUSED,
        "the lab runs ReplicaSets (through Deployments) and StatefulSets, not "
        "ReplicationControllers",
    ),
    Resource(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        ("pvc",),
        subresources=("status",),
        support=STORED,
        why="nothing in the lab provisions volumes, so the claim stays Pending (a "
        "StatefulSet's volumeClaimTemplates get a directory of the pod's own instead)",
    ),
    Resource(
        "apps", "v1", "Deployment", "deployments", True, ("deploy",), _ALL, ("status", "scale")
    ),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), _ALL, ("status", "scale")),
    Resource(
        "apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), _ALL, ("status", "scale")
    ),
    Resource(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        True,
        ("ds",),
        _ALL,
        ("status",),
        REFUSED,
        "the lab runs Deployments and StatefulSets only",
    ),
    Resource(
        "batch",
        "v1",
        "Job",
        "jobs",
        True,
        (),
        _ALL,
        ("status",),
        REFUSED,
        "the lab has no Job controller: run one-off work in a pod of a Deployment",
    ),
    Resource(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        True,
        ("cj",),
        _ALL,
        ("status",),
        STORED,
        "the lab has no CronJob controller, so its schedule never starts a Job",
    ),
    Resource(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ("hpa",),
        _ALL,
        ("status",),
        STORED,
        "the lab has no metrics server, so nothing scales on it; set replicas with kubectl scale",
    ),
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    # Each kubelet's heartbeat (kube-node-lease/<node>): the node-lifecycle controller
    # reads its renewTime.
    Resource("coordination.k8s.io", "v1", "Lease", "leases"),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    Resource(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        True,
        ("ing",),
        (),
        ("status",),
        REFUSED,
        "the lab has no ingress controller: reach a Service with kubectl port-forward",
    ),
    Resource(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        ("pdb",),
        subresources=("status",),
    ),
    Resource(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        (),
        ("status",),
        REFUSED,
        "the lab serves the built-in kinds only, not custom resources (a ServiceMonitor or "
        "a Gateway needs its operator's CRDs on a real cluster)",
    ),
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.group, r.kind): r for r in RESOURCES}


# Subresources a kubelet serves (streams from a pod's containers).
POD_STREAMS = ("log", "exec", "attach", "portforward")


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> Resource | None:
    group = api_version.rpartition("/")[0]
    return _BY_KIND.get((group, kind))


def groups() -> dict[str, list[str]]:
    """Each named group and its versions, in the order discovery lists them."""
    result: dict[str, list[str]] = {}
    for resource in RESOURCES:
        if resource.group and resource.version not in result.setdefault(resource.group, []):
            result[resource.group].append(resource.version)
    return result
