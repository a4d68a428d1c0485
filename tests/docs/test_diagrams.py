"""The packet-path diagram: the committed SVG is what its source writes, and shows the lab."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from docs.diagrams import packet_path, rule_chains
from docs.lessoncapture import blocks
from lab.kubeproxy import nftables
from lab.kubeproxy.model import sep_chain

REPO = Path(__file__).resolve().parents[2]
SVG = REPO / "docs" / "img" / "packet-path.svg"
CAPTURES = REPO / "docs" / "captures"
NS = {"svg": "http://www.w3.org/2000/svg"}


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{{{NS['svg']}}}text")]


def test_committed_svg_is_what_the_source_writes() -> None:
    assert SVG.read_text(encoding="utf-8") == packet_path.render(), (
        "docs/img/packet-path.svg differs from docs/diagrams/packet_path.py's output: "
        "run `make diagrams` (and never edit the SVG by hand)"
    )


def test_svg_is_well_formed_and_accessible() -> None:
    root = ET.parse(SVG).getroot()
    assert root.tag == f"{{{NS['svg']}}}svg"
    assert root.get("role") == "img"
    title = root.find("svg:title", NS)
    desc = root.find("svg:desc", NS)
    assert title is not None and title.text and "ClusterIP" in title.text
    assert desc is not None and desc.text and "ndots:5" in desc.text
    assert root.get("aria-labelledby") == "title desc"
    assert int(root.get("width", "0")) == 900


def test_svg_shows_each_step_of_the_path_with_the_lab_names() -> None:
    # Real <text>, not outlines: each label a reader looks for is there as text.
    shown = "\n".join(texts(ET.parse(SVG).getroot()))
    rules = packet_path.BACKEND
    seps = [sep_chain(rules.port_name, "TCP", f"{ip}:8000") for _, ip in packet_path.BACKEND_PODS]
    first, middle, last = (ip for _, ip in packet_path.BACKEND_PODS)
    for expected in [
        "nameserver 10.96.0.10",
        "search clusterip-demo.svc.cluster.local",
        "options ndots:5",
        "backend.clusterip-demo.svc.cluster.local",
        "ClusterIP 10.96.0.10",
        "A 10.96.40.39",
        "10.96.40.39:8000",
        "CIP-SERVICES (kube-proxy's KUBE-SERVICES)",
        rules.svc_chain,
        "--probability 0.33333333349",
        "--probability 0.50000000000",
        "(the rest)",
        *seps,
        f"-j DNAT --to-destination {first}:8000",
        "@service-ips",
        nftables.service_chain(rules),
        "numgen random mod 3",
        f"dnat to {last}:8000",
        "conntrack",
        packet_path.BACKEND_PODS[0][0],
        f"{middle}:8000 (port http)",
        "KUBE-",
    ]:
        assert expected in shown, f"the diagram no longer shows {expected!r}"


def test_text_that_would_overflow_its_box_is_refused() -> None:
    svg = packet_path.Svg()
    with pytest.raises(packet_path.TextOverflowError):
        svg.panel(0, 0, 100, [packet_path.code("x" * 40)], "#fff", "#000")
    assert svg.parts == []


def test_the_lesson_and_readme_show_the_diagram() -> None:
    for doc, link in (
        (REPO / "docs" / "lesson.md", "](img/packet-path.svg)"),
        (REPO / "README.md", "](docs/img/packet-path.svg)"),
    ):
        assert link in doc.read_text(), f"{doc.name} does not show the packet-path diagram"


# --- the rule chains of both proxy modes, drawn from the lesson's captures ----------------------


def test_committed_rule_chains_svg_is_what_the_source_draws_from_the_captures() -> None:
    committed = (REPO / "docs" / "img" / "rule-chains.svg").read_text(encoding="utf-8")
    assert committed == rule_chains.render(blocks.load()), (
        "docs/img/rule-chains.svg differs from docs/diagrams/rule_chains.py's drawing of "
        "docs/captures: run `make diagrams` (and never edit the SVG by hand)"
    )


def test_rule_chains_show_the_captured_rules_of_both_modes() -> None:
    root = ET.parse(REPO / "docs" / "img" / "rule-chains.svg").getroot()
    assert root.get("role") == "img" and root.find("svg:title", NS) is not None
    shown = "".join(texts(root)).replace(" ", "")
    captures = blocks.load()
    iptables_rules = captures["rules-backend.iptables"].body
    nft_rules = captures["rules-backend.nftables"].body
    # Each drawn rule is a captured line, wrapped: compare without the wrapping's spaces.
    for expected in [
        "--probability0.33333333349",
        "--probability0.50000000000",
        "-jDNAT--to-destination",
        "numgenrandommod3vmap",
        "metal4prototcpdnatto",
        "10.96.40.39.tcp.8000:goto",
    ]:
        assert expected in shown, f"the picture no longer shows {expected!r}"
    dnat = next(line for line in iptables_rules.splitlines() if "DNAT" in line)
    assert dnat.replace(" ", "") in shown
    numgen = next(line for line in nft_rules.splitlines() if "numgen" in line)
    assert numgen.strip().replace(" ", "") in shown


def test_a_capture_without_the_drawn_rule_is_refused() -> None:
    captures = dict(blocks.load())
    broken = captures["rules-backend.nftables"]
    body = "".join(line for line in broken.body.splitlines(keepends=True) if "numgen" not in line)
    captures["rules-backend.nftables"] = blocks.Capture(
        broken.name, broken.mode, broken.commit, broken.run, body
    )
    with pytest.raises(rule_chains.RulesNotFoundError, match="numgen"):
        rule_chains.render(captures)


def test_packet_path_names_the_pods_and_addresses_of_the_capture() -> None:
    # The picture's pods are read from docs/captures/: a recapture redraws it, and
    # its constants cannot drift from what the lesson's outputs show.
    listing = (CAPTURES / "delete-pod.txt").read_text(encoding="utf-8")
    rules = (CAPTURES / "rules-backend.iptables.txt").read_text(encoding="utf-8")
    route = (CAPTURES / "route.txt").read_text(encoding="utf-8")
    assert f"resolved to {packet_path.BACKEND_IP}" in route
    # The kernel that meets the connection is the frontend pod's node's, as the route says.
    node = f"on node {packet_path.FRONTEND_NODE}"
    assert f"{packet_path.FRONTEND_POD[0]}\t{packet_path.FRONTEND_POD[1]} {node}\n" in route
    # The backend pods are those of step 3's rules, after step 1's delete, in their order.
    assert len(packet_path.BACKEND_PODS) == 3
    endpoints = [line for line in rules.splitlines() if "backend:http ->" in line]
    assert [ip for _, ip in packet_path.BACKEND_PODS] == [
        line.split(" -> ")[1].split(":")[0] for line in endpoints
    ]
    rows = [line.split() for line in listing.splitlines()]
    running = {row[0]: row for row in rows if len(row) > 6 and row[2] == "Running"}
    for name, ip in packet_path.BACKEND_PODS:
        assert name in running and running[name][5] == ip, f"{name} {ip} not Running after delete"
    # The pod drawn as reached is the one that answered the route capture's request.
    chosen_name, chosen_ip = packet_path.BACKEND_PODS[packet_path.CHOSEN]
    assert f"pod\t{chosen_name}\t" in route
    svg = SVG.read_text(encoding="utf-8")
    assert f"④ DNAT: to {chosen_ip}:8000," in svg
    assert f"rewrites its source {chosen_ip}:8000 back to" in svg
    assert packet_path.FRONTEND_POD[0] in svg
    assert f"the node's kernel ({packet_path.FRONTEND_NODE})" in svg
    # Each backend pod with its node, as the listing has it: most are on another node.
    for name, _ in packet_path.BACKEND_PODS:
        assert f"backend pod on {running[name][6]}" in svg, name
