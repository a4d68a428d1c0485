"""kubectl-style tables of the lab's status: get pods -o wide, get svc, get endpointslices."""

from __future__ import annotations

import time
from typing import Any


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
    return _table(["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "PID"], rows)


def services(status: dict[str, Any]) -> str:
    now = time.time()
    rows = []
    for svc in status["services"]:
        ports = ",".join(f"{p['port']}/{p['protocol']}" for p in svc["ports"])
        selector = ",".join(f"{k}={v}" for k, v in (svc["selector"] or {}).items())
        rows.append(
            [
                svc["name"],
                svc["type"],
                svc["cluster_ip"],
                "<none>",
                ports,
                _age(status["started_at"], now),
                selector,
            ]
        )
    return _table(["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"], rows)


def endpointslices(status: dict[str, Any]) -> str:
    now = time.time()
    rows = []
    for eps in status["endpoints"]:
        ready = [e for e in eps["endpoints"] if e["ready"]]
        others = len(eps["endpoints"]) - len(ready)
        addresses = ",".join(e["ip"] for e in ready) or "<unset>"
        if others:
            addresses += f" + {others} not ready"
        ports = ",".join(sorted({str(e["port"]) for e in eps["endpoints"]})) or "<unset>"
        rows.append([eps["service"], "IPv4", ports, addresses, _age(status["started_at"], now)])
    return _table(["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], rows)


def everything(status: dict[str, Any]) -> str:
    return "\n\n".join(
        [
            "$ kubectl get pods -o wide\n" + pods(status),
            "$ kubectl get svc -o wide\n" + services(status),
            "$ kubectl get endpointslices\n" + endpointslices(status),
        ]
    )
