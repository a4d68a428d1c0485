"""Which pod can open a connection to which port, computed from the rendered
NetworkPolicies and pod labels with the NetworkPolicy semantics of networking.k8s.io/v1,
and compared with exactly the edges the design allows."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest
from k8s_manifests import NAMESPACE, pod_labels, pod_spec, selector_matches


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels) or, with namespace None, an address outside the cluster."""

    name: str
    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    # (port, protocol, port name or "")
    ports: tuple[tuple[int, str, str], ...] = ()

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace} if self.namespace else {}


def endpoints_from(workloads) -> list[Endpoint]:
    result = []
    for name, obj in workloads.items():
        ports = tuple(
            (p["containerPort"], p.get("protocol", "TCP"), p.get("name", ""))
            for c in pod_spec(obj)["containers"]
            for p in c.get("ports", [])
        )
        result.append(Endpoint(name, NAMESPACE, pod_labels(obj), ports))
    return [
        *result,
        # A pod someone adds later (kubectl run debug …): default-deny must cover it.
        Endpoint("stray", NAMESPACE, {"run": "debug"}, ((8080, "TCP", "http"),)),
        Endpoint(
            "kube-dns",
            "kube-system",
            {"k8s-app": "kube-dns"},
            ((53, "UDP", "dns"), (53, "TCP", "dns-tcp")),
        ),
        Endpoint("ingress-controller", "ingress-nginx", {"app": "ingress"}, ((443, "TCP", ""),)),
        # A Gateway API implementation's proxy (components/gateway admits its namespace).
        Endpoint(
            "gateway-proxy",
            "envoy-gateway-system",
            {"app.kubernetes.io/name": "envoy"},
            ((10443, "TCP", "https"),),
        ),
        Endpoint(
            "prometheus",
            "monitoring",
            {"app.kubernetes.io/name": "prometheus"},
            ((9090, "TCP", "web"),),
        ),
        # An OpenTelemetry Collector, labelled as its Helm chart labels it.
        Endpoint(
            "otel-collector",
            "observability",
            {"app.kubernetes.io/name": "opentelemetry-collector"},
            ((4318, "TCP", "otlp-http"), (4317, "TCP", "otlp")),
        ),
        # Another pod of the monitoring namespace (Grafana, say) is not the scraper.
        Endpoint("grafana", "monitoring", {"app.kubernetes.io/name": "grafana"}, ()),
        Endpoint("internet", None, {}, ((443, "TCP", ""),)),
    ]


def _policy_types(policy) -> set[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return set(spec["policyTypes"])
    return {"Ingress"} | ({"Egress"} if "egress" in spec else set())


def _peer_matches(peers, other: Endpoint, policy_namespace: str) -> bool:
    if not peers:  # no from/to: every source/destination
        return True
    for peer in peers:
        if "ipBlock" in peer:
            # Modelled as matching addresses outside the cluster only.
            if other.namespace is None:
                return True
            continue
        if other.namespace is None:
            continue
        if "namespaceSelector" in peer:
            namespace_ok = selector_matches(peer["namespaceSelector"], other.namespace_labels)
        else:
            namespace_ok = other.namespace == policy_namespace
        pod_ok = selector_matches(peer.get("podSelector", {}), other.labels)
        if namespace_ok and pod_ok:
            return True
    return False


def _port_matches(ports, destination: Endpoint, port: int, protocol: str) -> bool:
    if not ports:  # no ports: every port
        return True
    for rule in ports:
        if rule.get("protocol", "TCP") != protocol:
            continue
        wanted = rule.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if any(p == (port, protocol, wanted) for p in destination.ports):
                return True
        elif wanted == port or wanted <= port <= rule.get("endPort", wanted):
            return True
    return False


def _allowed(policies, subject: Endpoint, other: Endpoint, destination, port, protocol, way):
    """Is traffic allowed on `subject`'s side (way = Ingress or Egress)?"""
    if subject.namespace is None:
        return True
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and way in _policy_types(p)
        and selector_matches(p["spec"]["podSelector"], subject.labels)
    ]
    if not selecting:  # a pod no policy selects is open in that direction
        return True
    key, peers_key = ("ingress", "from") if way == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers_ok = _peer_matches(rule.get(peers_key), other, policy["metadata"]["namespace"])
            if peers_ok and _port_matches(rule.get("ports"), destination, port, protocol):
                return True
    return False


def reachable(policies, endpoints) -> set[tuple[str, str, int, str]]:
    """(source, destination, port, protocol) for every allowed connection that starts or
    ends in our namespace."""
    # Try every port anyone declares (plus a few a pod may open undeclared, like MySQL's
    # X protocol on 33060) on every destination: a rule that opens a port the manifest
    # does not declare is still an opening.
    probes = {(port, protocol) for e in endpoints for port, protocol, _ in e.ports}
    probes |= {(22, "TCP"), (443, "TCP"), (33060, "TCP")}
    edges = set()
    for source in endpoints:
        for destination in endpoints:
            if NAMESPACE not in (source.namespace, destination.namespace):
                continue
            declared = {(port, protocol) for port, protocol, _ in destination.ports}
            for port, protocol in sorted(probes | declared):
                args = (destination, port, protocol)
                if _allowed(policies, source, destination, *args, "Egress") and _allowed(
                    policies, destination, source, *args, "Ingress"
                ):
                    edges.add((source.name, destination.name, port, protocol))
    return edges


OUTSIDE = ("kube-dns", "ingress-controller", "gateway-proxy", "internet")
# The network-policies component: exactly the tiers' connections.
EXPECTED = {
    ("frontend", "backend", 8000, "TCP"),
    ("backend", "redis", 6379, "TCP"),
    ("backend", "mysql", 3306, "TCP"),
    *{
        (tier, "kube-dns", 53, proto)
        for tier in ("frontend", "backend")
        for proto in ("UDP", "TCP")
    },
    # port-forward, an Ingress controller, a load balancer: from anywhere outside.
    *{
        (source, "frontend", 8080, "TCP")
        for source in (*OUTSIDE, "prometheus", "grafana", "otel-collector")
    },
}
# The metrics-scrape component: Prometheus scrapes both tiers' `metrics` ports, and is
# the only one who may.
SCRAPE = {("prometheus", "backend", 9000, "TCP"), ("prometheus", "frontend", 9080, "TCP")}
# The tracing component: both app tiers export OTLP/HTTP to the collector, nothing more.
TRACING = {("frontend", "otel-collector", 4318, "TCP"), ("backend", "otel-collector", 4318, "TCP")}
POLICIES = {
    "network-policies": (
        "default-deny-all",
        "allow-dns-egress",
        "frontend",
        "backend",
        "redis",
        "mysql",
    ),
    "metrics-scrape": ("allow-metrics-scrape",),
    "tracing": ("allow-otlp-egress",),
    "gateway": ("allow-gateway-ingress",),
    "backup": ("mysql-backup", "mysql-from-backup"),
}
# The backup component: its dump and restore pods reach MySQL and the cluster DNS only.
BACKUP = {
    (job, target, port, proto)
    for job in ("mysql-backup", "mysql-restore")
    for target, port, proto in (
        ("mysql", 3306, "TCP"),
        ("kube-dns", 53, "UDP"),
        ("kube-dns", 53, "TCP"),
    )
}
# The gateway component: the frontend's page port is reached through the gateway only.
PUBLIC_PAGE = {e for e in EXPECTED if e[1:] == ("frontend", 8080, "TCP")}
THROUGH_GATEWAY = {("gateway-proxy", "frontend", 8080, "TCP")}


@pytest.fixture(scope="module")
def expected(rendering):
    components = rendering.components()
    assert "network-policies" in components, "every environment denies by default"
    edges = (
        EXPECTED
        | (SCRAPE if "metrics-scrape" in components else set())
        | (TRACING if "tracing" in components else set())
    )
    if "gateway" in components:
        edges = edges - PUBLIC_PAGE | THROUGH_GATEWAY
    if "backup" in components:
        edges |= BACKUP
    return edges


@pytest.fixture(scope="module")
def policies(rendered):
    return [doc for doc in rendered if doc["kind"] == "NetworkPolicy"]


@pytest.fixture(scope="module")
def endpoints(workloads):
    return endpoints_from(workloads)


def test_allowed_edges_are_exactly_the_design(policies, endpoints, expected):
    edges = reachable(policies, endpoints)
    assert edges - expected == set(), "allowed but not in the design"
    assert expected - edges == set(), "in the design but blocked"


def test_frontend_reaches_neither_database_nor_cache(policies, endpoints):
    edges = reachable(policies, endpoints)
    assert not {e for e in edges if e[0] == "frontend" and e[1] in {"mysql", "redis"}}


def test_nothing_but_the_backend_reaches_mysql_or_redis(policies, endpoints, rendering):
    edges = reachable(policies, endpoints)
    assert {e[0] for e in edges if e[1] == "redis"} == {"backend"}
    backup = {"mysql-backup", "mysql-restore"} if "backup" in rendering.components() else set()
    assert {e[0] for e in edges if e[1] == "mysql"} == {"backend"} | backup


def test_data_tiers_and_strays_open_no_connection(policies, endpoints):
    edges = reachable(policies, endpoints)
    assert not {e for e in edges if e[0] in {"mysql", "redis", "stray"}}


def test_every_policy_changes_what_is_reachable(policies, endpoints, rendering):
    # The calculator really reads the policies: without any one of them, the answer moves.
    names = [n for c in sorted(rendering.components()) for n in POLICIES.get(c, ())]
    assert sorted(names) == sorted(p["metadata"]["name"] for p in policies)
    full = reachable(policies, endpoints)
    for name in names:
        remaining = [p for p in policies if p["metadata"]["name"] != name]
        assert reachable(remaining, endpoints) != full, name


def test_without_policies_everything_is_open(endpoints):
    edges = reachable([], endpoints)
    assert ("frontend", "mysql", 3306, "TCP") in edges
    assert ("internet", "mysql", 3306, "TCP") in edges


def test_a_widened_rule_is_noticed(policies, endpoints, expected):
    widened = copy.deepcopy(policies)
    mysql = next(p for p in widened if p["metadata"]["name"] == "mysql")
    del mysql["spec"]["ingress"][0]["from"]  # from anywhere
    edges = reachable(widened, endpoints)
    assert ("frontend", "mysql", 3306, "TCP") not in edges  # frontend egress still closed
    assert ("internet", "mysql", 3306, "TCP") in edges
    assert edges != expected


def test_dns_is_allowed_only_to_cluster_dns(policies, endpoints):
    edges = reachable(policies, endpoints)
    assert {e[1] for e in edges if e[2] == 53} == {"kube-dns"}


def test_only_the_scraper_reaches_the_metrics_ports(policies, endpoints, rendering):
    assert "metrics-scrape" in rendering.components()
    edges = reachable(policies, endpoints)
    metrics_ports = {("frontend", 9080), ("backend", 9000)}
    assert {(e[1], e[2]) for e in edges if e[0] == "prometheus"} - {("frontend", 8080)} == (
        metrics_ports
    )
    assert {e[0] for e in edges if (e[1], e[2]) in metrics_ports} == {"prometheus"}
    # The backend's API stays closed to everyone else outside the namespace.
    assert {(e[0], e[2]) for e in edges if e[1] == "backend"} == {
        ("frontend", 8000),
        ("prometheus", 9000),
    }


def test_with_the_gateway_only_its_proxies_reach_the_page_port(policies, endpoints, rendering):
    edges = reachable(policies, endpoints)
    to_page = {e[0] for e in edges if e[1:] == ("frontend", 8080, "TCP")}
    if "gateway" in rendering.components():
        assert to_page == {"gateway-proxy"}
    else:
        assert {"gateway-proxy", "internet", "ingress-controller"} <= to_page
