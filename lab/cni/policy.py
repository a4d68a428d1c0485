"""NetworkPolicies as a CNI plugin enforces them: iptables filter rules on the pods' veths.

Semantics (networking.k8s.io/v1):
- a pod is isolated for ingress (egress) when any policy in its namespace
  selects it with that policy type; an isolated pod accepts (sends) only what
  some rule of some policy selecting it allows; the rules add up;
- a rule allows a set of peers (podSelector / namespaceSelector / ipBlock;
  none means everyone) on a set of ports (none means every port); a named
  port is looked up on the destination pod;
- replies to an allowed connection are always allowed;
- traffic between the node and its pods is not subject to policy (probes,
  the port-forward), as with the common CNI plugins.

Pod-to-pod traffic always crosses the node's FORWARD hook after kube-proxy's
DNAT, so policy is checked against the real pod address and port, whether
the connection was opened to a ClusterIP or to the pod itself:

    FORWARD → CIP-CNI-FORWARD (lab/cni/rules.py) → CIP-NETPOL: replies pass;
        -i <source veth>      -j CIP-NP-OUT-<pod>  (egress of an isolated source)
        -o <destination veth> -j CIP-NP-IN-<pod>   (ingress of an isolated destination)
    each chain RETURNs what a rule allows and DROPs the rest, as most plugins do.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.manifests import ManifestError, Selector
from lab.naming import CHAIN_PREFIX

NETPOL = f"{CHAIN_PREFIX}NETPOL"
# Every pod's own chain: CIP-NP-IN-<hash>, CIP-NP-OUT-<hash>.
POD_CHAIN_PREFIX = f"{CHAIN_PREFIX}NP-"


@dataclass(frozen=True)
class PodRef:
    name: str
    namespace: str
    ip: str
    iface: str
    labels: Mapping[str, str]
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # name → (port, proto)


@dataclass(frozen=True)
class Peer:
    pod_selector: Selector | None
    namespace_selector: Selector | None
    cidr: str | None


@dataclass(frozen=True)
class PortSpec:
    protocol: str
    port: int | str | None
    end_port: int | None


@dataclass(frozen=True)
class Rule:
    peers: tuple[Peer, ...] | None  # None: from/to everyone
    ports: tuple[PortSpec, ...] | None  # None: every port


@dataclass(frozen=True)
class Policy:
    name: str
    namespace: str
    pod_selector: Selector
    ingress: tuple[Rule, ...] | None  # None: this policy does not isolate for ingress
    egress: tuple[Rule, ...] | None


def _peer(raw: dict[str, Any], where: str) -> Peer:
    block = raw.get("ipBlock")
    if block is not None:
        if block.get("except"):
            raise ManifestError(f"{where}: ipBlock.except is not supported by the lab")
        return Peer(None, None, str(ipaddress.ip_network(block["cidr"], strict=False)))
    pods = Selector.parse(raw["podSelector"]) if "podSelector" in raw else None
    namespaces = Selector.parse(raw["namespaceSelector"]) if "namespaceSelector" in raw else None
    if pods is None and namespaces is None:
        raise ManifestError(f"{where}: a peer needs podSelector, namespaceSelector or ipBlock")
    return Peer(pods, namespaces, None)


def _rules(raw: list[dict[str, Any]] | None, peers_key: str, where: str) -> tuple[Rule, ...]:
    rules = []
    for i, item in enumerate(raw or []):
        here = f"{where} rule {i}"
        peers = item.get(peers_key)
        ports = item.get("ports")
        rules.append(
            Rule(
                peers=None if not peers else tuple(_peer(p, here) for p in peers),
                ports=None
                if not ports
                else tuple(
                    PortSpec(
                        str(p.get("protocol", "TCP")).upper(),
                        p.get("port"),
                        int(p["endPort"]) if p.get("endPort") is not None else None,
                    )
                    for p in ports
                ),
            )
        )
    return tuple(rules)


def parse_policy(doc: dict[str, Any], default_namespace: str) -> Policy:
    name = doc["metadata"]["name"]
    spec = doc.get("spec") or {}
    where = f"NetworkPolicy {name}"
    types = spec.get("policyTypes")
    if types is None:
        # The API's default: Ingress always, Egress when the policy has egress rules.
        types = ["Ingress", *(["Egress"] if "egress" in spec else [])]
    return Policy(
        name=name,
        namespace=doc["metadata"].get("namespace", default_namespace),
        pod_selector=Selector.parse(spec.get("podSelector")),
        ingress=_rules(spec.get("ingress"), "from", where) if "Ingress" in types else None,
        egress=_rules(spec.get("egress"), "to", where) if "Egress" in types else None,
    )


def _peer_pods(
    peer: Peer, policy: Policy, pods: Sequence[PodRef], ns_labels: Mapping[str, Mapping[str, str]]
) -> list[PodRef]:
    result = []
    for pod in pods:
        if peer.namespace_selector is None:
            in_scope = pod.namespace == policy.namespace
        else:
            in_scope = peer.namespace_selector.matches(dict(ns_labels.get(pod.namespace, {})))
        if in_scope and (peer.pod_selector is None or peer.pod_selector.matches(dict(pod.labels))):
            result.append(pod)
    return result


def _port_matches(spec: PortSpec, pod: PodRef | None) -> list[str] | None:
    """iptables match arguments for one port spec, resolved on `pod` (the destination)."""
    proto = spec.protocol.lower()
    if spec.port is None:
        return ["-p", proto]
    if isinstance(spec.port, str) and not spec.port.isdigit():
        if pod is None or spec.port not in pod.ports:
            return None  # a named port only exists on pods that name it
        number, port_proto = pod.ports[spec.port]
        if port_proto.upper() != spec.protocol:
            return None
        return ["-p", proto, "-m", proto, "--dport", str(number)]
    port = int(spec.port)
    dport = f"{port}:{spec.end_port}" if spec.end_port else str(port)
    return ["-p", proto, "-m", proto, "--dport", dport]


def _chain(direction: str, pod: PodRef) -> str:
    digest = hashlib.sha256(f"{pod.namespace}/{pod.name}".encode()).hexdigest()[:16].upper()
    return f"{POD_CHAIN_PREFIX}{direction}-{digest}"


def _comment(text: str) -> list[str]:
    return ["-m", "comment", "--comment", f'"{text}"']


def _allow_rules(
    chain: str,
    pod: PodRef,
    policy: Policy,
    rule: Rule,
    ingress: bool,
    pods: Sequence[PodRef],
    ns_labels: Mapping[str, Mapping[str, str]],
) -> list[list[str]]:
    side = "-s" if ingress else "-d"
    # (address match, the pod whose named ports apply)
    targets: list[tuple[list[str], PodRef | None]] = []
    if rule.peers is None:
        targets.append(([], pod if ingress else None))
    else:
        for peer in rule.peers:
            if peer.cidr is not None:
                targets.append(([side, peer.cidr], pod if ingress else None))
                continue
            for other in _peer_pods(peer, policy, pods, ns_labels):
                targets.append(([side, f"{other.ip}/32"], pod if ingress else other))
    lines = []
    for address, port_owner in targets:
        if rule.ports is None:
            port_matches: list[list[str]] = [[]]
        else:
            port_matches = [m for m in (_port_matches(p, port_owner) for p in rule.ports) if m]
        for ports in port_matches:
            lines.append(
                [
                    "-A",
                    chain,
                    *address,
                    *ports,
                    *_comment(f"networkpolicy/{policy.name}"),
                    "-j",
                    "RETURN",
                ]
            )
    return lines


def compile_policies(
    policies: Sequence[Policy],
    pods: Sequence[PodRef],
    ns_labels: Mapping[str, Mapping[str, str]],
) -> tuple[list[str], list[list[str]]]:
    """The CIP-NP-* chains and every rule of them and of CIP-NETPOL."""
    chains: list[str] = []
    rules: list[list[str]] = [
        ["-A", NETPOL, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]
    ]
    jumps_out: list[list[str]] = []
    jumps_in: list[list[str]] = []
    body: list[list[str]] = []
    for pod in sorted(pods, key=lambda p: p.name):
        selecting = [
            p
            for p in policies
            if p.namespace == pod.namespace and p.pod_selector.matches(dict(pod.labels))
        ]
        for direction, ingress in (("OUT", False), ("IN", True)):
            isolating = [p for p in selecting if (p.ingress if ingress else p.egress) is not None]
            if not isolating:
                continue
            chain = _chain(direction, pod)
            chains.append(chain)
            names = ",".join(p.name for p in isolating)
            if ingress:
                jumps_in.append(
                    [
                        "-A",
                        NETPOL,
                        "-o",
                        pod.iface,
                        *_comment(f"{pod.name} ingress: {names}"),
                        "-j",
                        chain,
                    ]
                )
            else:
                jumps_out.append(
                    [
                        "-A",
                        NETPOL,
                        "-i",
                        pod.iface,
                        *_comment(f"{pod.name} egress: {names}"),
                        "-j",
                        chain,
                    ]
                )
            for policy in isolating:
                for rule in (policy.ingress if ingress else policy.egress) or ():
                    body += _allow_rules(chain, pod, policy, rule, ingress, pods, ns_labels)
            body.append(["-A", chain, *_comment("no NetworkPolicy allows it"), "-j", "DROP"])
    return chains, rules + jumps_out + jumps_in + body
