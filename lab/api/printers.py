"""Server-side printing: the `Table` kube-apiserver answers for `kubectl get`.

Columns as pkg/printers/internalversion/printers.go defines them (priority 1 shows with
`-o wide`); each cell computed the way its print function computes it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority
Row = list[Any]

_NAME: Column = ("Name", "string", 0)
_AGE: Column = ("Age", "string", 0)
_WIDE_TEMPLATE: list[Column] = [
    ("Containers", "string", 1),
    ("Images", "string", 1),
    ("Selector", "string", 1),
]


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: `45s`, `3m20s`, `25m`, `5h10m`, `3d4h`."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours = s // 60, s // 3600
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // (24 * 365), (hours // 24) % 365
    if hours < 24 * 365 * 8:
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    when = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return human_duration((datetime.datetime.now(datetime.UTC) - when).total_seconds())


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _labels(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def label_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, values = expr["operator"], ",".join(expr.get("values") or [])
        key = expr["key"]
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }.get(op, key)
        )
    return ",".join(parts) or "<none>"


def _template(obj: Obj) -> tuple[str, str]:
    containers = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    return ",".join(c.get("name", "") for c in containers), ",".join(
        c.get("image", "") for c in containers
    )


def _int(value: Any) -> int:
    return int(value or 0)


# -- pods --------------------------------------------------------------------------------
def pod_status(pod: Obj) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container in status.get("initContainerStatuses") or []:
        state = container.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode", 0) != 0:
            return "Init:" + (state["terminated"].get("reason") or "Error")
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            return "Init:" + state["waiting"]["reason"]
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if _meta(pod).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod(pod: Obj) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(_int(c.get("restartCount")) for c in statuses)
    gates = spec.get("readinessGates") or []
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    gate_cell = (
        f"{sum(1 for g in gates if conditions.get(g.get('conditionType')) == 'True')}/{len(gates)}"
        if gates
        else "<none>"
    )
    return [
        _meta(pod).get("name"),
        f"{ready}/{len(spec.get('containers') or [])}",
        pod_status(pod),
        str(restarts),
        age(_meta(pod).get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gate_cell,
    ]


# -- services and endpoints --------------------------------------------------------------
def _service(svc: Obj) -> Row:
    spec = svc.get("spec") or {}
    ports = []
    for port in spec.get("ports") or []:
        text = f"{port.get('port')}/{port.get('protocol', 'TCP')}"
        if port.get("nodePort"):
            text = f"{port['port']}:{port['nodePort']}/{port.get('protocol', 'TCP')}"
        ports.append(text)
    external = ",".join(spec.get("externalIPs") or []) or "<none>"
    return [
        _meta(svc).get("name"),
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        age(_meta(svc).get("creationTimestamp")),
        _labels(spec.get("selector")),
    ]


def _first_three(items: list[str], empty: str) -> str:
    if not items:
        return empty
    more = f" + {len(items) - 3} more..." if len(items) > 3 else ""
    return ",".join(items[:3]) + more


def _endpoints(ep: Obj) -> Row:
    items = []
    for subset in ep.get("subsets") or []:
        for address in subset.get("addresses") or []:
            ports = subset.get("ports") or []
            items += [f"{address['ip']}:{p['port']}" for p in ports] or [address["ip"]]
    return [
        _meta(ep).get("name"),
        _first_three(items, "<none>"),
        age(_meta(ep).get("creationTimestamp")),
    ]


def _endpointslice(slice_: Obj) -> Row:
    ports = [
        str(p["port"]) if p.get("port") is not None else "<unset>"
        for p in slice_.get("ports") or []
    ]
    addresses = [a for e in slice_.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        _meta(slice_).get("name"),
        slice_.get("addressType", ""),
        ",".join(ports) or "<unset>",
        _first_three(addresses, "<unset>"),
        age(_meta(slice_).get("creationTimestamp")),
    ]


# -- workloads ---------------------------------------------------------------------------
def _deployment(obj: Obj) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _template(obj)
    return [
        _meta(obj).get("name"),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'))}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        age(_meta(obj).get("creationTimestamp")),
        containers,
        images,
        label_selector(spec.get("selector")),
    ]


def _replicaset(obj: Obj) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _template(obj)
    return [
        _meta(obj).get("name"),
        _int(spec.get("replicas")),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        age(_meta(obj).get("creationTimestamp")),
        containers,
        images,
        label_selector(spec.get("selector")),
    ]


def _statefulset(obj: Obj) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers, images = _template(obj)
    return [
        _meta(obj).get("name"),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'))}",
        age(_meta(obj).get("creationTimestamp")),
        containers,
        images,
    ]


def _hpa(obj: Obj) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    targets = []
    for metric in spec.get("metrics") or []:
        resource = metric.get("resource") or {}
        target = resource.get("target") or {}
        if "averageUtilization" in target:
            targets.append(f"{resource.get('name')}: <unknown>/{target['averageUtilization']}%")
        else:
            targets.append("<unknown>")
    min_pods = spec.get("minReplicas")
    return [
        _meta(obj).get("name"),
        f"{ref.get('kind')}/{ref.get('name')}",
        ", ".join(targets) or "<none>",
        str(min_pods) if min_pods is not None else "<unset>",
        _int(spec.get("maxReplicas")),
        _int(status.get("currentReplicas")),
        age(_meta(obj).get("creationTimestamp")),
    ]


# -- policy and networking ---------------------------------------------------------------
def _networkpolicy(obj: Obj) -> Row:
    return [
        _meta(obj).get("name"),
        label_selector((obj.get("spec") or {}).get("podSelector")),
        age(_meta(obj).get("creationTimestamp")),
    ]


def _pdb(obj: Obj) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        _meta(obj).get("name"),
        str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
        str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
        _int(status.get("disruptionsAllowed")),
        age(_meta(obj).get("creationTimestamp")),
    ]


# -- cluster and config ------------------------------------------------------------------
def _node(node: Obj) -> Row:
    status = node.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = "Ready" if conditions.get("Ready") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = _meta(node).get("labels") or {}
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in labels if k.startswith(prefix))
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        _meta(node).get("name"),
        state,
        ",".join(roles) or "<none>",
        age(_meta(node).get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _event(ev: Obj) -> Row:
    involved = ev.get("involvedObject") or {}
    source = ev.get("source") or {}
    source_text = ", ".join(v for v in (source.get("component"), source.get("host")) if v)
    last = ev.get("lastTimestamp") or ev.get("eventTime") or _meta(ev).get("creationTimestamp")
    first = ev.get("firstTimestamp") or ev.get("eventTime") or _meta(ev).get("creationTimestamp")
    count = _int(ev.get("count")) or 1
    last_seen = age(last)
    if count > 1:
        last_seen = f"{last_seen} (x{count} over {age(first)})"
    return [
        last_seen,
        ev.get("type", ""),
        ev.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        source_text or ev.get("reportingComponent", ""),
        (ev.get("message") or "").strip(),
        age(first),
        str(count),
        _meta(ev).get("name"),
    ]


def _simple(*cells: Callable[[Obj], Any]) -> Callable[[Obj], Row]:
    return lambda obj: [
        _meta(obj).get("name"),
        *(c(obj) for c in cells),
        age(_meta(obj).get("creationTimestamp")),
    ]


COLUMNS: dict[str, tuple[list[Column], Callable[[Obj], Row]]] = {
    "Pod": (
        [
            _NAME,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            _AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod,
    ),
    "Service": (
        [
            _NAME,
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            _AGE,
            ("Selector", "string", 1),
        ],
        _service,
    ),
    "Endpoints": ([_NAME, ("Endpoints", "string", 0), _AGE], _endpoints),
    "EndpointSlice": (
        [
            _NAME,
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            _AGE,
        ],
        _endpointslice,
    ),
    "Deployment": (
        [
            _NAME,
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            _AGE,
            *_WIDE_TEMPLATE,
        ],
        _deployment,
    ),
    "ReplicaSet": (
        [
            _NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            _AGE,
            *_WIDE_TEMPLATE,
        ],
        _replicaset,
    ),
    "StatefulSet": (
        [_NAME, ("Ready", "string", 0), _AGE, ("Containers", "string", 1), ("Images", "string", 1)],
        _statefulset,
    ),
    "HorizontalPodAutoscaler": (
        [
            _NAME,
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "integer", 0),
            ("Replicas", "integer", 0),
            _AGE,
        ],
        _hpa,
    ),
    "NetworkPolicy": ([_NAME, ("Pod-Selector", "string", 0), _AGE], _networkpolicy),
    "PodDisruptionBudget": (
        [
            _NAME,
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            _AGE,
        ],
        _pdb,
    ),
    "Node": (
        [
            _NAME,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            _AGE,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _node,
    ),
    "Event": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ],
        _event,
    ),
    "Namespace": (
        [_NAME, ("Status", "string", 0), _AGE],
        _simple(lambda o: (o.get("status") or {}).get("phase", "Active")),
    ),
    "ConfigMap": (
        [_NAME, ("Data", "integer", 0), _AGE],
        _simple(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
    ),
    "Secret": (
        [_NAME, ("Type", "string", 0), ("Data", "integer", 0), _AGE],
        lambda o: [
            _meta(o).get("name"),
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    "Lease": (
        [_NAME, ("Holder", "string", 0), _AGE],
        _simple(lambda o: (o.get("spec") or {}).get("holderIdentity") or "<unset>"),
    ),
    "ServiceAccount": (
        [_NAME, ("Secrets", "string", 0), _AGE],
        _simple(lambda o: str(len(o.get("secrets") or []))),
    ),
}
_DEFAULT: tuple[list[Column], Callable[[Obj], Row]] = ([_NAME, _AGE], _simple())


def _column_definitions(columns: list[Column]) -> list[Obj]:
    return [
        {
            "name": name,
            "type": kind,
            "format": "name" if name == "Name" else "",
            "description": name,
            "priority": priority,
        }
        for name, kind, priority in columns
    ]


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(obj)}


def table(kind: str, objects: list[Obj], resource_version: str, include: str = "Metadata") -> Obj:
    columns, printer = COLUMNS.get(kind, _DEFAULT)
    rows = []
    for obj in objects:
        row: Obj = {"cells": printer(obj)}
        embedded = _row_object(obj, include)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": _column_definitions(columns),
        "rows": rows,
    }
