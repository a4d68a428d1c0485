"""The StatefulSet controller.

Pods <name>-0, -1, … created in order, each once the one before is Ready
(OrderedReady); a pod's replacement keeps its name and its claim, and waits
until the old pod is fully gone. Each pod's hostname is its name and its
subdomain the governing (headless) Service, so the cluster DNS answers
<pod>.<serviceName>.<namespace>.svc.cluster.local for it.
"""

from __future__ import annotations

from lab.apiserver import ApiServer
from lab.controllers import PodRuntime


def pod_fqdn(pod_name: str, service_name: str | None, namespace: str) -> str:
    return f"{pod_name}.{service_name}.{namespace}.svc.cluster.local"


def reconcile(api: ApiServer, key: str, runtime: PodRuntime) -> None:
    wl = api.workloads[key]
    want = api.replicas[key]
    rev = api.current_hash(key)
    pods = {p.ordinal: p for p in api.pods_of(key)}
    for ordinal in range(want):
        pod = pods.get(ordinal)
        if pod is None:
            name = f"{wl.name}-{ordinal}"
            labels = {
                **api.templates[key].labels,
                "statefulset.kubernetes.io/pod-name": name,
                "apps.kubernetes.io/pod-index": str(ordinal),
                "controller-revision-hash": f"{wl.name}-{rev}",
            }
            alias = pod_fqdn(name, wl.service_name, wl.namespace)
            runtime.start_pod(api.new_pod(key, name, labels, rev, ordinal, [alias]))
            return  # OrderedReady: one at a time
        if not pod.ready:
            return
    extra = sorted((o for o in pods if o is not None and o >= want), reverse=True)
    if extra and all(p.ready or p.deleting for p in pods.values()):
        runtime.delete_pod(pods[extra[0]])
