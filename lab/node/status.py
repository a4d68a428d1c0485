"""What `python -m lab` and the tests ask the running lab: the node's view, as JSON.

Pods as the kubelet runs them, Services and workloads as the informers hold them,
the endpoints as kube-proxy's rules use them. The objects themselves are the API
server's: `kubectl get` is how a person reads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.kubeproxy.topology import picked

if TYPE_CHECKING:
    from lab.cluster import Lab

Obj = dict[str, Any]


def _ports(svc: Obj) -> list[Obj]:
    return [
        {
            "name": p.get("name", ""),
            "port": p["port"],
            "target_port": p.get("targetPort", p["port"]),
            "protocol": p.get("protocol", "TCP"),
        }
        for p in svc["spec"].get("ports") or []
    ]


def services(lab: Lab) -> list[Obj]:
    found = [
        {
            "name": s["metadata"]["name"],
            "namespace": s["metadata"]["namespace"],
            "type": s["spec"].get("type", "ClusterIP"),
            "cluster_ip": s["spec"].get("clusterIP") or "None",
            "selector": s["spec"].get("selector"),
            "ports": _ports(s),
        }
        for s in lab.items("services")
    ]
    return sorted(found, key=lambda s: (s["namespace"], s["name"]))


def _current_hash(lab: Lab, deploy: Obj) -> str:
    """The pod-template-hash of the Deployment's newest ReplicaSet (its highest revision)."""
    uid = deploy["metadata"]["uid"]
    owned = [
        rs
        for rs in lab.items("replicasets")
        if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
    ]
    if not owned:
        return ""
    newest = max(
        owned,
        key=lambda rs: int(
            (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0)
        ),
    )
    return str(newest["metadata"].get("labels", {}).get("pod-template-hash", ""))


def workloads(lab: Lab) -> list[Obj]:
    """What `kubectl rollout status` looks at, per workload, from the pods this node runs."""
    pods = list(lab.pods.values())
    found = []
    for kind, informer in (("Deployment", "deployments"), ("StatefulSet", "statefulsets")):
        for obj in lab.items(informer):
            key = f"{kind}/{obj['metadata']['name']}"
            mine = [
                p for p in pods if p.workload == key and p.namespace == obj["metadata"]["namespace"]
            ]
            current = _current_hash(lab, obj) if kind == "Deployment" else ""
            live = [p for p in mine if not p.deleting]
            updated = [p for p in live if p.template_hash == current]
            found.append(
                {
                    "key": key,
                    "namespace": obj["metadata"]["namespace"],
                    "replicas": obj["spec"].get("replicas", 1),
                    "template_hash": current,
                    "updated": len(updated),
                    "updated_ready": sum(p.ready for p in updated),
                    "old": len(live) - len(updated),
                    "terminating": sum(p.deleting for p in mine),
                }
            )
    return found


def workloads_ready(lab: Lab) -> bool:
    found = workloads(lab)
    return bool(found) and all(w["updated_ready"] == w["replicas"] and w["old"] == 0 for w in found)


def endpoints(lab: Lab) -> list[Obj]:
    return [
        {
            "service": rule.port_name.split("/")[1].split(":")[0],
            "port_name": rule.port_name,
            "cluster_ip": rule.cluster_ip,
            "port": rule.port,
            "protocol": rule.protocol,
            "endpoints": [e.__dict__ for e in rule.endpoints],
            # Node 1's kube-proxy's choice (of several nodes, each node's is its own).
            "in_iptables": [f"{e.ip}:{e.port}" for e in picked(rule, lab.agents[0].topology)],
        }
        for rule in lab.rules
    ]


def status(lab: Lab) -> Obj:
    forward = None
    if lab.forward is not None:
        forward = f"{lab.forward.listen_host}:{lab.forward.listen_port}"
    pods = sorted(lab.pods.values(), key=lambda p: p.name)
    return {
        "namespace": lab.namespace,
        "forward": forward,
        "workdir": str(lab.workdir),
        "pods": [p.as_dict() for p in pods if not p.gone],
        "services": services(lab),
        "endpoints": endpoints(lab),
        "workloads": workloads(lab),
        "network_policies": sorted(
            p["metadata"]["name"] for p in lab.items("policies") if lab.options.network_policies
        ),
        "proxy_mode": lab.proxier.mode.name,
        "iptables": {
            "syncs": lab.proxier.syncs,
            "synced": lab.proxier.wanted_key == lab.proxier.applied_key,
        },
        "cni": {"syncs": lab.cni.syncs, "synced": lab.cni.synced},
        "nodes": [
            {
                "name": agent.node.name,
                "index": agent.node.index,
                "zone": agent.node.zone,
                "address": agent.node.address,
                "netns": agent.node.netns,
                "stopped": agent.stopped,
                "synced": agent.synced(),
            }
            for agent in lab.agents
        ],
        "events": [e.as_dict() for e in list(lab.events)[-200:]],
    }
