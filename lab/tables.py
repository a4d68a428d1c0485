"""kubectl's tables of the lab's status: get svc -o wide and get endpointslices as kubectl
prints them; get pods -o wide's first columns plus a PID column kubectl does not have."""

from __future__ import annotations

import time
from typing import Any

from lab.naming import slice_name


def _age(since: float, now: float) -> str:
    seconds = max(int(now - since), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60}s" if seconds < 600 else f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = []
    for row in [header, *rows]:
        lines.append(
            "   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        )
    return "\n".join(lines)


def pods(status: dict[str, Any]) -> str:
    now = time.time()
    rows = []
    for pod in status["pods"]:
        containers = pod["containers"]
        ready = sum(1 for c in containers if c["ready"] and c["state"] == "running")
        pids = ",".join(str(c["pid"]) for c in containers if c["pid"]) or "-"
        rows.append(
            [
                pod["namespace"],
                pod["name"],
                f"{ready}/{len(containers)}",
                pod["status"],
                str(pod["restarts"]),
                _age(pod["created_at"], now),
                pod["ip"],
                pod["node"],
                pids,
            ]
        )
    # Every namespace, as `kubectl get pods -A`: the app's and kube-system's DNS pod.
    return _table(
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "PID"], rows
    )


def services(status: dict[str, Any]) -> str:
    now = time.time()
    rows = []
    for svc in status["services"]:
        ports = ",".join(f"{p['port']}/{p['protocol']}" for p in svc["ports"])
        selector = ",".join(f"{k}={v}" for k, v in (svc["selector"] or {}).items())
        rows.append(
            [
                svc.get("namespace", status["namespace"]),
                svc["name"],
                svc["type"],
                svc["cluster_ip"],
                "<none>",
                ports,
                _age(status["started_at"], now),
                selector,
            ]
        )
    return _table(
        ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
        rows,
    )


def _list_with_more(items: list[str], limit: int = 3) -> str:
    """kubectl's listWithMoreString: the first three, then "+ N more...", or <unset>."""
    shown = ",".join(items[:limit])
    if len(items) > limit:
        return f"{shown} + {len(items) - limit} more..."
    return shown or "<unset>"


def endpointslices(status: dict[str, Any]) -> str:
    """`kubectl get endpointslices`, as kubectl's printer prints it.

    One slice per Service (the lab never needs a second: the controller splits
    at 100 endpoints). ENDPOINTS lists every endpoint's address whatever its
    conditions, as kubectl does: a terminating or unready pod is still in the
    slice, only its `ready` condition says whether kube-proxy sends it new
    connections (`-o json` shows the conditions).
    """
    now = time.time()
    namespace = status.get("namespace", "default")
    by_service: dict[str, dict[str, list[str]]] = {}
    for rule in status["endpoints"]:
        entry = by_service.setdefault(rule["service"], {"ports": [], "addresses": []})
        for endpoint in rule["endpoints"]:
            if str(endpoint["port"]) not in entry["ports"]:
                entry["ports"].append(str(endpoint["port"]))
            if endpoint["ip"] not in entry["addresses"]:
                entry["addresses"].append(endpoint["ip"])
    rows = [
        [
            slice_name(namespace, service),
            "IPv4",
            _list_with_more(entry["ports"]),
            _list_with_more(entry["addresses"]),
            _age(status["started_at"], now),
        ]
        for service, entry in sorted(by_service.items())
    ]
    rows.sort(key=lambda row: row[0])
    return _table(["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], rows)


def everything(status: dict[str, Any]) -> str:
    return "\n\n".join(
        [
            # Not kubectl's output: its columns, plus the lab's process ids.
            "pods (kubectl get pods -o wide's columns, plus each container's PID):\n"
            + pods(status),
            "$ kubectl get svc -o wide\n" + services(status),
            "$ kubectl get endpointslices\n" + endpointslices(status),
        ]
    )
