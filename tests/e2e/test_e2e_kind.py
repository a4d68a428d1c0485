"""End-to-end checks against the app on a real cluster, run by scripts/e2e-kind.sh
(`make e2e-kind`), which port-forwards svc/frontend and sets:

  E2E_BASE_URL         http://127.0.0.1:<port>, the port-forwarded frontend
  E2E_KUBECTL_CONTEXT  the kind cluster's context
  E2E_NAMESPACE        clusterip-demo

Without E2E_BASE_URL every test here skips: no cluster runs on the development machines
or in CI. Standard library only (plus pytest), so any Python with pytest can run them.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest

BASE_URL = os.environ.get("E2E_BASE_URL", "")
NAMESPACE = os.environ.get("E2E_NAMESPACE", "clusterip-demo")
CONTEXT = os.environ.get("E2E_KUBECTL_CONTEXT", "")

pytestmark = pytest.mark.skipif(
    not BASE_URL, reason="end-to-end: needs a cluster; run `make e2e-kind` (sets E2E_BASE_URL)"
)


def request(method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
    """One request on a fresh connection; JSON bodies in and out where there are any."""
    url = urlsplit(BASE_URL)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        content_type = response.getheader("Content-Type", "")
        if "json" in content_type:
            return response.status, json.loads(raw)
        return response.status, raw.decode(errors="replace")
    finally:
        connection.close()


def kubectl(*args: str, timeout: float = 180) -> str:
    command = ["kubectl", "--namespace", NAMESPACE]
    if CONTEXT:
        command += ["--context", CONTEXT]
    result = subprocess.run(
        [*command, *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def backend_pods() -> set[str]:
    out = kubectl(
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=backend",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    )
    return set(out.split())


def _walk(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _counts(node: Any) -> Counter:
    """Per-pod counts from the shapes a spread report may take: {pod: n}, a list of
    {pod/name: …, count/n: …}, a list of pod names, or a wrapper around one of these."""
    if isinstance(node, dict):
        if node and all(isinstance(v, int) for v in node.values()):
            return Counter(node)
        for key in ("pods", "counts", "by_pod", "per_pod", "results", "answers"):
            if key in node:
                return _counts(node[key])
    if isinstance(node, list):
        if all(isinstance(item, str) for item in node):
            return Counter(node)
        counts: Counter = Counter()
        for item in node:
            if isinstance(item, dict):
                pod = item.get("pod") or item.get("pod_name") or item.get("name")
                count = item.get("count", item.get("n", 1))
                if isinstance(pod, str) and isinstance(count, int):
                    counts[pod] += count
        return counts
    return Counter()


def fresh_connection_counts(report: Any) -> Counter:
    # The frontend's shape: {"fresh_connections": {"pods": {pod: n}, "failed": 0, …}, …}
    fresh = report.get("fresh_connections") if isinstance(report, dict) else None
    if isinstance(fresh, dict) and isinstance(fresh.get("pods"), dict):
        assert fresh.get("failed", 0) == 0, fresh
        return Counter(fresh["pods"])
    for key, value in _walk(report):
        if "fresh" in str(key).lower():
            counts = _counts(value)
            if counts:
                return counts
    raise AssertionError(f"no per-pod counts for fresh connections in {report!r}")


def test_the_page_answers():
    status, body = request("GET", "/")
    assert status == 200
    assert "<html" in body.lower()


def test_spread_over_fresh_connections_reaches_every_backend_pod():
    pods = backend_pods()
    assert len(pods) == 3, pods
    status, report = request("GET", "/api/spread?n=60", timeout=120)
    assert status == 200, report
    counts = fresh_connection_counts(report)
    assert sum(counts.values()) == 60, counts
    # 60 fresh connections over 3 pods miss one with probability 3 * (2/3)**60 ~ 1e-10.
    assert set(counts) == pods, (counts, pods)


def _fetch_from_inside(message_id: Any) -> tuple[int, Any]:
    """GET /api/messages/{id} from a frontend pod through the Service name `backend`:
    the ClusterIP path itself, not the port-forward."""
    script = (
        "import sys, urllib.request, urllib.error\n"
        f"url = 'http://backend:8000/api/messages/{message_id}'\n"
        "try:\n"
        "    r = urllib.request.urlopen(url, timeout=10)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    out = kubectl("exec", "deploy/frontend", "-c", "frontend", "--", "python", "-c", script)
    status, _, body = out.partition("\n")
    try:
        return int(status), json.loads(body)
    except json.JSONDecodeError:
        return int(status), body


def test_a_written_message_survives_deleting_a_backend_pod():
    text = f"e2e survives a pod deletion {uuid.uuid4()}"
    status, created = request("POST", "/api/messages", {"author": "e2e", "text": text})
    assert status == 201, created
    message_id = next((v for k, v in _walk(created) if k == "id"), None)
    assert message_id is not None, created

    pods = backend_pods()
    writer = next((v for _, v in _walk(created) if isinstance(v, str) and v in pods), None)
    victim = writer or sorted(pods)[0]
    kubectl("delete", "pod", victim, "--wait=true", "--timeout=120s")
    kubectl("rollout", "status", "deployment/backend", "--timeout=300s", timeout=320)

    deadline = time.monotonic() + 60
    while True:
        status, body = _fetch_from_inside(message_id)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert status == 200, body
    assert text in json.dumps(body), body
    assert victim not in backend_pods()
