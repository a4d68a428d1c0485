"""What the lab accepts: kinds it can act on, fields the schema knows, defaults it fills in.

A kind the lab cannot run is refused (403, as an admission plugin refuses), a kind it
only stores is accepted with a Warning header, an unknown field is refused under
fieldValidation=Strict (what kubectl asks) and warned about otherwise, never dropped
silently.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
from typing import Any

import kubernetes_validate

from lab.api.errors import ApiError
from lab.api.resources import REFUSED, STORED, Resource, lookup
from lab.api.storage import Store, now
from lab.naming import SERVICE_CIDR, service_ip

Obj = dict[str, Any]
SCHEMA_VERSION = "1.33"
ENDPOINTS_WARNING = "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
# The DefaultTolerationSeconds admission plugin's tolerationSeconds (300 s on a cluster),
# shortened for the lab as the node-monitor grace is (lab/api/controllers/nodelifecycle.py):
# a pod on a silent node is evicted and replaced within a lesson's minute, not five.
DEFAULT_TOLERATION_SECONDS = 20
NODE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
# How many unknown fields are reported (and pruned) from one object at most.
_MAX_UNKNOWN = 20


def refuse_unsupported(resource: Resource, name: str) -> None:
    if resource.support == REFUSED:
        article = "an" if resource.kind[0] in "AEIOU" else "a"
        raise ApiError(
            403,
            f'{resource.qualified} "{name}" is forbidden: the ClusterIP lab cannot run '
            f"{article} {resource.kind}: {resource.why}",
            details={"name": name, "kind": resource.plural, "group": resource.group},
        )


def warnings_for(resource: Resource, write: bool = False) -> list[str]:
    """Warning headers for a request on this resource (a write is told what the lab ignores)."""
    if resource.kind == "Endpoints":
        return [ENDPOINTS_WARNING]
    if write and resource.support == STORED and resource.kind != "Event":
        return [
            f"{resource.api_version} {resource.kind} is stored but not acted on in the lab: "
            f"{resource.why}"
        ]
    return []


def _path(error: kubernetes_validate.ValidationError) -> str:
    return ".".join(str(p) for p in error.path)


def _unknown_field(error: kubernetes_validate.ValidationError) -> str | None:
    if error.validator != "additionalProperties":
        return None
    unexpected = [k for k in error.instance if k not in (error.schema.get("properties") or {})]
    return unexpected[0] if unexpected else None


def check_fields(resource: Resource, obj: Obj, validation: str) -> tuple[Obj, list[str]]:
    """The object with unknown fields pruned, and the warnings; Strict refuses them (400).

    Other schema errors are 422 Invalid, as kube-apiserver's validation answers.
    """
    obj = copy.deepcopy(obj)
    unknown: list[str] = []
    name = (obj.get("metadata") or {}).get("name", "")
    for _ in range(_MAX_UNKNOWN):
        try:
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
            break
        except kubernetes_validate.SchemaNotFoundError:
            break
        except kubernetes_validate.ValidationError as error:
            field = _unknown_field(error)
            if field is None:
                where = _path(error) or "<object>"
                raise ApiError(
                    422,
                    f'{resource.kind} "{name}" is invalid: {where}: Invalid value: {error.message}',
                ) from None
            parent = obj
            for part in error.path:
                parent = parent[part]
            del parent[field]
            unknown.append(".".join([_path(error), field]).lstrip("."))
    if unknown and validation == "Strict":
        listed = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise ApiError(
            400,
            f'{resource.kind} in version "{resource.version}" cannot be handled as a '
            f"{resource.kind}: strict decoding error: {listed}",
        )
    warnings = [f'unknown field "{u}"' for u in unknown] if validation != "Ignore" else []
    return obj, warnings


# -- defaults ------------------------------------------------------------------------------
def _service_defaults(store: Store, svc: Obj, old: Obj | None) -> None:
    spec = svc.setdefault("spec", {})
    name, namespace = svc["metadata"]["name"], svc["metadata"].get("namespace", "")
    kind = spec.setdefault("type", "ClusterIP")
    if kind != "ClusterIP":
        raise ApiError(
            422,
            f'Service "{name}" is invalid: spec.type: Unsupported value: "{kind}": '
            'supported values: "ClusterIP" (the lab serves ClusterIP Services only; reach one '
            "from outside with kubectl port-forward)",
        )
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    wanted = spec.get("clusterIP") or old_ip
    if old_ip and wanted != old_ip:
        raise ApiError(
            422,
            f'Service "{name}" is invalid: spec.clusterIPs[0]: Invalid value: "{wanted}": '
            "may not change once set",
        )
    if not wanted:
        wanted = service_ip(namespace, name, _taken_ips(store))
    elif wanted != "None" and old_ip is None:
        _check_requested_ip(store, name, wanted)
    spec["clusterIP"], spec["clusterIPs"] = wanted, [wanted]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _taken_ips(store: Store) -> set[str]:
    services = lookup("", "v1", "services")
    assert services is not None
    listed, _ = store.list(services)
    return {s["spec"].get("clusterIP", "") for s in listed}


def _check_requested_ip(store: Store, name: str, wanted: str) -> None:
    try:
        inside = ipaddress.ip_address(wanted) in SERVICE_CIDR
    except ValueError:
        inside = False
    if not inside:
        raise ApiError(
            422,
            f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: ["{wanted}"]: '
            f"failed to allocate IP {wanted}: the provided IP ({wanted}) is not in the valid "
            f"range. The range of valid IPs is {SERVICE_CIDR}",
        )
    if wanted in _taken_ips(store):
        raise ApiError(
            422,
            f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: ["{wanted}"]: '
            f"failed to allocate IP {wanted}: provided IP is already allocated",
        )


def _pod_spec_defaults(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = container.get("image", "")
        container.setdefault(
            "imagePullPolicy",
            "Always"
            if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
            else "IfNotPresent",
        )
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _default_tolerations(spec: Obj) -> None:
    """As DefaultTolerationSeconds does: a pod that does not tolerate a NotReady or an
    unreachable node's NoExecute taint tolerates it for a while, then is evicted."""
    tolerations = spec.setdefault("tolerations", [])
    for key in NODE_TAINTS:
        covered = any(
            t.get("effect") in ("NoExecute", None, "")
            and (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
            for t in tolerations
        )
        if not covered:
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )


def _workload_defaults(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if obj["kind"] == "Deployment":
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
        )
        spec.setdefault("progressDeadlineSeconds", 600)
    if obj["kind"] == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault(
            "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
        )
    template = spec.get("template") or {}
    _pod_spec_defaults(template.setdefault("spec", {}))


def default(store: Store, resource: Resource, obj: Obj, old: Obj | None = None) -> Obj:
    obj = copy.deepcopy(obj)
    kind = resource.kind
    if kind == "Service":
        _service_defaults(store, obj, old)
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        _workload_defaults(obj)
    elif kind == "Pod":
        _pod_spec_defaults(obj.setdefault("spec", {}))
        _default_tolerations(obj["spec"])
        obj.setdefault("status", {"phase": "Pending", "qosClass": "Burstable"})
    elif kind == "Namespace":
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
    elif kind == "Node":
        # As the node strategy does: a NoExecute taint's clock starts when it is written
        # (`kubectl taint`), which is what tolerationSeconds count from.
        for taint in (obj.get("spec") or {}).get("taints") or []:
            if taint.get("effect") == "NoExecute" and not taint.get("timeAdded"):
                taint["timeAdded"] = now()
    elif kind == "PersistentVolumeClaim":
        obj.setdefault("status", {"phase": "Pending"})
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        # The API keeps only `data`: stringData is a write-only convenience.
        for key, value in (obj.pop("stringData", None) or {}).items():
            obj.setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()
    return obj
