"""The packet-path diagram of the lesson: docs/img/packet-path.svg, written from this file.

Run `make diagrams` (or `.venv/bin/python -m docs.diagrams.packet_path`) after changing
it; tests/docs/test_diagrams.py fails while the committed SVG differs from what this
produces, so nobody edits the SVG by hand.

Plain SVG, no drawing tool: boxes, arrows and real <text> (readable and searchable,
read out by screen readers with the <title> and <desc>). Chain names, probabilities
and addresses come from the lab's own code and the lesson's capture, so the picture
shows what `iptables -t nat -S` and `nft list table` print in the lab.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from lab.kubeproxy import nftables
from lab.kubeproxy.model import ServicePortRules, sep_chain

OUTPUT = Path(__file__).resolve().parents[1] / "img" / "packet-path.svg"

WIDTH = 900
SANS = "DejaVu Sans, Verdana, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
# Widest advance per character, as a fraction of the font size: exact for DejaVu Sans
# Mono (0.602), an upper bound for DejaVu Sans text. Used to refuse text that would
# overflow its box, since an SVG cannot wrap text by itself.
ADVANCE = {"mono": 0.61, "sans": 0.62}
PAD = 10
# Height of the frontend pod and kube-dns boxes: the resolver's panel and a margin.
TOP_H = 232

INK = "#1a1a1a"
MUTED = "#444444"
ARROW = "#1f3a93"
REPLY = "#a13d00"

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
RULES = "rules-backend.iptables"


def _captured_rows(name: str) -> list[str]:
    """A capture's output lines: after its header line and its `$ command` line."""
    return (CAPTURES / f"{name}.txt").read_text(encoding="utf-8").splitlines()[2:]


def _captured_route() -> dict[str, tuple[str, str]]:
    """The route panel's hops from the lesson's capture: key → (value, detail)."""
    hops = [row.split("\t") for row in _captured_rows("route")]
    return {hop[0]: (hop[1], hop[2]) for hop in hops if len(hop) == 3}


def _command_output(name: str, command: str) -> list[str]:
    """What the first command of a capture that contains `command` printed."""
    printed: list[str] = []
    taking = False
    for line in (CAPTURES / f"{name}.txt").read_text(encoding="utf-8").splitlines()[1:]:
        if line.startswith("$ "):
            if taking:
                break
            taking = command in line
        elif taking:
            printed.append(line)
    return printed


def _captured_pods() -> list[dict[str, str]]:
    """Each pod's row of `kubectl get pods -o wide` once step 1's deleted pod was replaced
    (the pods of step 3's rules and route), by column name: the first of a name, since
    the header's words are split on spaces and `NOMINATED NODE` ends in NODE too."""
    header, *rows = _command_output("delete-pod", "get pods -o wide")
    names = header.split()
    return [
        {name: value for name, value in reversed(list(zip(names, row.split(), strict=False)))}
        for row in rows
    ]


def _captured_backend_pods() -> tuple[tuple[str, str], ...]:
    """(name, IP) of each backend pod in the rules the lesson shows, in their order."""
    chain = "\n".join(_command_output(RULES, "CIP-SVC-"))
    endpoints = re.findall(r"backend:http -> ([\d.]+):", chain)
    named = {p["IP"]: p["NAME"] for p in _captured_pods() if p["STATUS"] == "Running"}
    return tuple((named[ip], ip) for ip in endpoints)


def _captured_node(pod: str) -> str:
    """The node a pod of the capture ran on: its kernel holds the rules the connection met."""
    return next(p["NODE"] for p in _captured_pods() if p["NAME"] == pod)


# The pods and the connection of the lesson's own capture (docs/captures/, made by
# `make lesson-capture`), so the picture names what the lesson's outputs show.
NAMESPACE = "clusterip-demo"
_ROUTE = _captured_route()
FRONTEND_POD = (_ROUTE["frontend"][0], _ROUTE["frontend"][1].split()[0])
BACKEND_PODS = _captured_backend_pods()
# The pod that answered the route capture's request: the one this connection reached.
CHOSEN = next((i for i, (name, _) in enumerate(BACKEND_PODS) if name == _ROUTE["pod"][0]), 0)
FRONTEND_NODE = _captured_node(FRONTEND_POD[0])
BACKEND_IP = "10.96.40.39"
DNS_IP = "10.96.0.10"
PORT = 8000
CLIENT_PORT = int(_ROUTE["address"][1].rsplit(":", 1)[1])
FQDN = f"backend.{NAMESPACE}.svc.cluster.local"
# How `iptables -S` prints the probabilities kube-proxy writes as 1/3 and 1/2: the kernel
# keeps them as 32-bit fractions.
PRINTED_PROBABILITIES = ("0.33333333349", "0.50000000000")

BACKEND = ServicePortRules(f"{NAMESPACE}/backend:http", BACKEND_IP, PORT, "TCP")


class TextOverflowError(ValueError):
    """A line of text is wider than the box it is drawn in."""


@dataclass(frozen=True)
class Line:
    text: str
    style: str = "sans"  # sans, bold, mono, monobold, note
    size: int = 12

    @property
    def mono(self) -> bool:
        return self.style.startswith("mono")

    def width(self) -> float:
        return len(self.text) * self.size * ADVANCE["mono" if self.mono else "sans"]

    def height(self) -> int:
        return round(self.size * 1.45)


def head(text: str, size: int = 13) -> Line:
    return Line(text, "bold", size)


def code(text: str, size: int = 12) -> Line:
    return Line(text, "mono", size)


def note(text: str) -> Line:
    return Line(text, "note", 12)


@dataclass
class Svg:
    parts: list[str] = field(default_factory=list)
    # One arrowhead per stroke colour, so heads match their lines.
    markers: dict[str, str] = field(default_factory=dict)

    def text(self, x: float, y: float, line: Line, anchor: str = "start") -> None:
        weight = ' font-weight="bold"' if line.style in ("bold", "monobold") else ""
        italic = ' font-style="italic"' if line.style == "note" else ""
        fill = MUTED if line.style == "note" else INK
        family = "mono" if line.mono else "sans"
        # Code keeps its indentation: SVG collapses runs of spaces unless told not to.
        space = ' xml:space="preserve"' if line.mono else ""
        self.parts.append(
            f'<text x="{x:g}" y="{y:g}" class="{family}" font-size="{line.size}"'
            f'{weight}{italic}{space} fill="{fill}" text-anchor="{anchor}">'
            f"{escape(line.text)}</text>"
        )

    def rect(self, x: float, y: float, w: float, h: float, fill: str, stroke: str) -> None:
        self.parts.append(
            f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="6" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
        )

    def panel(
        self, x: float, y: float, w: float, lines: list[Line], fill: str, stroke: str
    ) -> float:
        """A box sized to its lines; returns its bottom edge."""
        for line in lines:
            if line.width() > w - 2 * PAD:
                raise TextOverflowError(
                    f"{line.text!r} needs {line.width():.0f} px, box has {w - 2 * PAD:g}"
                )
        h = 2 * PAD - 4 + sum(line.height() for line in lines)
        self.rect(x, y, w, h, fill, stroke)
        baseline = y + PAD - 3
        for line in lines:
            baseline += line.height()
            self.text(x + PAD, baseline - 4, line)
        return y + h

    def arrow(self, points: list[tuple[float, float]], color: str, dashed: bool = False) -> None:
        dash = ' stroke-dasharray="7 5"' if dashed else ""
        marker = self.markers.setdefault(color, f"head{len(self.markers)}")
        path = " ".join(f"{x:g},{y:g}" for x, y in points)
        self.parts.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"'
            f'{dash} marker-end="url(#{marker})"/>'
        )

    def label(self, x: float, y: float, text: str, color: str = ARROW, anchor: str = "start"):
        self.parts.append(
            f'<text x="{x:g}" y="{y:g}" class="sans" font-size="12" font-weight="bold" '
            f'fill="{color}" text-anchor="{anchor}">{escape(text)}</text>'
        )


TITLE = "A request's path from a frontend pod to a backend pod through the backend ClusterIP"
HEADING = "A request's path through the backend ClusterIP"
DESC = (
    f"The frontend pod {FRONTEND_POD[0]} ({FRONTEND_POD[1]}) resolves the name backend with "
    f"its resolver: resolv.conf has nameserver {DNS_IP}, the search path "
    f"{NAMESPACE}.svc.cluster.local svc.cluster.local cluster.local, and ndots:5, so {FQDN} "
    f"is asked first. The query goes to the kube-dns Service's ClusterIP {DNS_IP}, port 53, "
    f"and the DNS pod answers with the backend ClusterIP {BACKEND_IP}. The frontend opens a "
    f"TCP connection to {BACKEND_IP}:{PORT}. No machine owns that address: the node's kernel "
    "follows the NAT rules kube-proxy writes. In iptables mode: the CIP-SERVICES chain "
    "(kube-proxy's KUBE-SERVICES) jumps to the Service's CIP-SVC chain, which picks the "
    "first endpoint with statistic probability 1/3, the second with 1/2 of the rest, and "
    "the third otherwise; its CIP-SEP chain DNATs to the pod. In nftables mode: the "
    "service-ips verdict map sends the address, protocol and port to the Service's chain, "
    "where numgen random mod 3 picks an endpoint chain that does dnat to the pod. The "
    f"connection reaches one of the three backend pods, {BACKEND_PODS[0][1]}, "
    f"{BACKEND_PODS[1][1]} or {BACKEND_PODS[2][1]}, port {PORT}, on this node or across "
    "the nodes' network. conntrack records the rewrite: every later packet of the "
    f"connection gets the same pod, and each reply's source is rewritten back to "
    f"{BACKEND_IP}:{PORT}."
)


def sep_names() -> list[str]:
    return [
        sep_chain(BACKEND.port_name, BACKEND.protocol, f"{ip}:{PORT}") for _, ip in BACKEND_PODS
    ]


def short_endpoint(ip: str) -> str:
    """kube-proxy's endpoint chain name with its middle elided: the full one is too wide."""
    full = nftables.endpoint_chain(BACKEND, ip, PORT)
    prefix = full.split("-", 2)
    return f"{prefix[0]}-{prefix[1]}-…__{ip}/{PORT}"


def short_service() -> str:
    full = nftables.service_chain(BACKEND)
    return full.replace(f"{NAMESPACE}/", "…/")


LEFT, RIGHT = 64, WIDTH - 10
POD_W = 440
DNS_X = 650
KERNEL_TOP = 64 + TOP_H + 60
KERNEL_W = RIGHT - LEFT
IPT_FILL, NFT_FILL = "#e6f4ea", "#e0f2f1"
IPT_LINE, NFT_LINE = "#2e7d32", "#00695c"


@dataclass(frozen=True)
class Columns:
    """The kernel box's two columns, iptables mode on the left, nftables mode on the right."""

    gap: int = 12

    @property
    def width(self) -> float:
        return (KERNEL_W - 2 * PAD - self.gap) / 2

    @property
    def left(self) -> float:
        return LEFT + PAD

    @property
    def right(self) -> float:
        return self.left + self.width + self.gap


def render() -> str:
    svg = Svg()
    _frontend_pod(svg)
    _cluster_dns(svg)
    _connect(svg)
    kernel_bottom = _kernel(svg)
    pods_top, pods_bottom = _backend_pods(svg, kernel_bottom)
    _reply(svg, pods_top)
    height = pods_bottom + 56
    _footnotes(svg, height)
    return document(svg, height)


def _frontend_pod(svg: Svg) -> None:
    svg.rect(LEFT, 64, POD_W, TOP_H, "#e8f0fe", "#3c64b4")
    svg.text(LEFT + PAD, 86, head(f"frontend pod {FRONTEND_POD[0]}", 14))
    svg.text(LEFT + PAD, 106, code(f"{FRONTEND_POD[1]}   BACKEND_URL=http://backend:{PORT}"))
    svg.panel(
        LEFT + PAD,
        118,
        POD_W - 2 * PAD,
        [
            head("its resolver: /etc/resolv.conf (the kubelet's)", 12),
            code(f"nameserver {DNS_IP}"),
            code(f"search {NAMESPACE}.svc.cluster.local"),
            code("       svc.cluster.local cluster.local"),
            code("options ndots:5"),
            note('"backend" has fewer than 5 dots, so the search path'),
            note("comes first: the first name asked is"),
            Line(FQDN, "monobold", 12),
        ],
        "#ffffff",
        "#3c64b4",
    )


def _cluster_dns(svg: Svg) -> None:
    """The kube-dns Service and pod, and the query and answer (① ②)."""
    dns_w = RIGHT - DNS_X
    svg.rect(DNS_X, 64, dns_w, TOP_H, "#fff6d6", "#a07800")
    svg.text(DNS_X + PAD, 86, head("kube-dns Service", 14))
    svg.text(DNS_X + PAD, 104, Line("namespace kube-system"))
    svg.text(DNS_X + PAD, 122, code(f"ClusterIP {DNS_IP}"))
    svg.text(DNS_X + PAD, 140, code("53/UDP  53/TCP"))
    svg.text(DNS_X + PAD, 158, note("reached through the same"))
    svg.text(DNS_X + PAD, 174, note("NAT rules as every Service"))
    svg.panel(
        DNS_X + PAD,
        188,
        dns_w - 2 * PAD,
        [
            head("kube-dns pod (dnsmasq)", 12),
            code("backend.clusterip-demo"),
            code("  .svc.cluster.local."),
            code(f"  A {BACKEND_IP}", 12),
            note("the backend ClusterIP"),
        ],
        "#ffffff",
        "#a07800",
    )
    gap_l, gap_r = LEFT + POD_W, DNS_X
    svg.arrow([(gap_l, 150), (gap_r, 150)], ARROW)
    svg.label(gap_l + 8, 142, "① query A?")
    svg.label(gap_l + 8, 168, f"to {DNS_IP}:53")
    svg.arrow([(gap_r, 232), (gap_l, 232)], ARROW)
    svg.label(gap_r - 8, 224, "② answer", anchor="end")
    svg.label(gap_r - 8, 250, f"A {BACKEND_IP}", anchor="end")


def _connect(svg: Svg) -> None:
    """The connection leaves the pod for the node's kernel (③)."""
    svg.arrow([(250, 64 + TOP_H), (250, KERNEL_TOP)], ARROW)
    svg.label(262, 64 + TOP_H + 22, f"③ connect: TCP SYN {FRONTEND_POD[1]}:{CLIENT_PORT}")
    svg.label(262, 64 + TOP_H + 40, f"→ {BACKEND_IP}:{PORT}, an address no machine owns")


def _kernel(svg: Svg) -> float:
    """The node's kernel: conntrack, then one of the two rule sets. Returns its bottom."""
    cols = Columns()
    y = KERNEL_TOP + 8
    parts_before = len(svg.parts)  # the kernel box is drawn under its contents, at the end
    svg.text(LEFT + PAD, y + 16, head(f"the node's kernel ({FRONTEND_NODE})", 14))
    y = svg.panel(
        cols.left,
        y + 26,
        KERNEL_W - 2 * PAD,
        [
            head("conntrack", 12),
            Line(
                "A connection it already knows keeps the rewrite recorded for it: "
                "no rule is read again."
            ),
            Line(
                "A new connection's first packet goes through the NAT rules below "
                "(a node runs one of the two)."
            ),
        ],
        "#f3e8ff",
        "#7a3fb0",
    )
    y += 14
    svg.text(cols.left, y + 14, head("iptables mode (the default): nat table"))
    svg.text(cols.right, y + 14, head("nftables mode (GA since 1.33): table ip cip-kube-proxy"))
    y = _which_service(svg, cols, y + 24)
    a, b = _which_pod(svg, cols, y)
    kernel_bottom = _dnat(svg, cols, a, b, max(a, b) + 22)
    svg.parts.insert(
        parts_before,
        f'<rect x="{LEFT}" y="{KERNEL_TOP}" width="{KERNEL_W}" '
        f'height="{kernel_bottom - KERNEL_TOP:g}" rx="8" fill="#fafafa" stroke="#555555" '
        'stroke-width="1.5"/>',
    )
    return kernel_bottom


def _which_service(svg: Svg, cols: Columns, y: float) -> float:
    """1. Which Service is this? Returns the top of the next row."""
    a = svg.panel(
        cols.left,
        y,
        cols.width,
        [
            Line("CIP-SERVICES (kube-proxy's KUBE-SERVICES)", "monobold"),
            code(f"-d {BACKEND_IP}/32 -p tcp --dport {PORT}", 11),
            code(f"  -j {BACKEND.svc_chain}", 11),
        ],
        IPT_FILL,
        IPT_LINE,
    )
    b = svg.panel(
        cols.right,
        y,
        cols.width,
        [
            Line("chain services, map service-ips", "monobold"),
            code("ip daddr . meta l4proto . th dport vmap @service-ips", 11),
            code(f"{BACKEND_IP} . tcp . {PORT} :", 11),
            code(f"  goto {nftables.service_chain(BACKEND)}", 11),
        ],
        NFT_FILL,
        NFT_LINE,
    )
    y = max(a, b) + 22
    svg.arrow([(cols.left + 40, a), (cols.left + 40, y)], IPT_LINE)
    svg.arrow([(cols.right + 40, b), (cols.right + 40, y)], NFT_LINE)
    return y


def _which_pod(svg: Svg, cols: Columns, y: float) -> tuple[float, float]:
    """2. Which pod? One random pick per new connection. Returns each column's bottom."""
    seps = sep_names()
    a = svg.panel(
        cols.left,
        y,
        cols.width,
        [
            Line(f"{BACKEND.svc_chain} (KUBE-SVC-…)", "monobold"),
            code(f"-m statistic --mode random --probability {PRINTED_PROBABILITIES[0]}", 11),
            code(f"    -j {seps[0]}", 11),
            code(f"-m statistic --mode random --probability {PRINTED_PROBABILITIES[1]}", 11),
            code(f"    -j {seps[1]}", 11),
            code(f"-j {seps[2]}   (the rest)", 11),
            note("1/3; else 1/2 of the other 2/3; else the rest:"),
            note("each pod gets 1/3 of the new connections"),
        ],
        IPT_FILL,
        IPT_LINE,
    )
    b = svg.panel(
        cols.right,
        y,
        cols.width,
        [
            Line(f"chain {short_service()}", "monobold"),
            code("numgen random mod 3 vmap {", 11),
            *(
                code(f"  {i} : goto {short_endpoint(ip)}", 11)
                for i, (_, ip) in enumerate(BACKEND_PODS)
            ),
            code("}", 11),
            note("a random number, 0, 1 or 2: 1/3 each"),
        ],
        NFT_FILL,
        NFT_LINE,
    )
    return a, b


def _dnat(svg: Svg, cols: Columns, ipt_top: float, nft_top: float, y: float) -> float:
    """3. DNAT: the destination becomes the chosen pod. Returns the kernel box's bottom."""
    indent = 28
    box_y = y
    for column, fill, stroke, top, names, rule in (
        (
            cols.left,
            IPT_FILL,
            IPT_LINE,
            ipt_top,
            sep_names(),
            "-j DNAT --to-destination {ip}:{port}",
        ),
        (
            cols.right,
            NFT_FILL,
            NFT_LINE,
            nft_top,
            [short_endpoint(ip) for _, ip in BACKEND_PODS],
            "meta l4proto tcp dnat to {ip}:{port}",
        ),
    ):
        trunk = column + 14
        box_y = y
        mids = []
        for name, (_, ip) in zip(names, BACKEND_PODS, strict=True):
            end = svg.panel(
                column + indent,
                box_y,
                cols.width - indent,
                [Line(name, "monobold", 11), code(rule.format(ip=ip, port=PORT), 11)],
                fill,
                stroke,
            )
            mids.append((box_y + end) / 2)
            box_y = end + 8
        svg.parts.append(
            f'<line x1="{trunk:g}" y1="{top:g}" x2="{trunk:g}" y2="{mids[-1]:g}" '
            f'stroke="{stroke}" stroke-width="2"/>'
        )
        for mid in mids:
            svg.arrow([(trunk, mid), (column + indent, mid)], stroke)
    return box_y + 4


def _backend_pods(svg: Svg, kernel_bottom: float) -> tuple[float, float]:
    """4. The backend pods, each with its node, and the DNAT fan to them (④).
    Returns their boxes' top and bottom."""
    pods_top = kernel_bottom + 90
    pod_gap = 14
    pw = (KERNEL_W - 2 * pod_gap) / 3
    # A stub out of the kernel, labelled beside it, then a fan to the three pods.
    fan = (LEFT + KERNEL_W / 2, kernel_bottom + 40)
    svg.parts.append(
        f'<line x1="{fan[0]:g}" y1="{kernel_bottom:g}" x2="{fan[0]:g}" y2="{fan[1]:g}" '
        f'stroke="{ARROW}" stroke-width="2"/>'
    )
    svg.label(fan[0] + 10, kernel_bottom + 16, f"④ DNAT: to {BACKEND_PODS[CHOSEN][1]}:{PORT},")
    svg.label(fan[0] + 10, kernel_bottom + 32, "or to one of the other two")
    # The pod this connection reached first, beside the reply's way back up the margin.
    chosen, *others = [BACKEND_PODS[CHOSEN]] + [
        pod for i, pod in enumerate(BACKEND_PODS) if i != CHOSEN
    ]
    for i, (name, ip) in enumerate([chosen, *others]):
        x = LEFT + i * (pw + pod_gap)
        svg.arrow([fan, (x + pw / 2, pods_top)], ARROW, dashed=i != 0)
        svg.panel(
            x,
            pods_top,
            pw,
            [
                head(f"backend pod on {_captured_node(name)}", 12),
                code(name),
                code(f"{ip}:{PORT} (port http)"),
            ],
            "#fde7e9" if i == 0 else "#fff3f4",
            "#b0304a",
        )
    return pods_top, pods_top + 2 * PAD - 4 + head("", 12).height() + 2 * code("").height()


def _reply(svg: Svg, pods_top: float) -> None:
    """5. The reply, un-NATed by conntrack, back up the left margin."""
    gutter = 40
    svg.arrow(
        [
            (LEFT, pods_top + 30),
            (gutter, pods_top + 30),
            (gutter, 90),
            (LEFT, 90),
        ],
        REPLY,
        dashed=True,
    )
    mid = (90 + pods_top + 30) / 2
    svg.parts.append(
        f'<text transform="translate(22 {mid:g}) rotate(-90)" class="sans" font-size="12" '
        f'font-weight="bold" fill="{REPLY}" text-anchor="middle">'
        f"⑤ the reply: conntrack rewrites its source {BACKEND_PODS[CHOSEN][1]}:{PORT} back to "
        f"{BACKEND_IP}:{PORT}, the address the frontend dialled</text>"
    )


def _footnotes(svg: Svg, height: float) -> None:
    for offset, text in (
        (
            32,
            "CIP-… chains are kube-proxy's KUBE-… chains, and table ip cip-kube-proxy is its "
            "ip kube-proxy, renamed by the lab.",
        ),
        (
            14,
            "Hashes are computed as kube-proxy computes them; the rules that mark connections "
            "for masquerade are left out.",
        ),
    ):
        svg.text(WIDTH / 2, height - offset, note(text), anchor="middle")


def document(svg: Svg, height: float) -> str:
    head_lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:g}" '
        f'viewBox="0 0 {WIDTH} {height:g}" role="img" aria-labelledby="title desc">',
        f'<title id="title">{escape(TITLE)}</title>',
        f'<desc id="desc">{escape(DESC)}</desc>',
        "<defs>",
        f"<style>.sans {{ font-family: {SANS}; }} .mono {{ font-family: {MONO}; }}</style>",
        *(
            f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
            f'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{color}"/></marker>'
            for color, name in svg.markers.items()
        ),
        "</defs>",
        f'<rect width="{WIDTH}" height="{height:g}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2:g}" y="30" class="sans" font-size="17" font-weight="bold" '
        f'fill="{INK}" text-anchor="middle">{escape(HEADING)}</text>',
        f'<text x="{WIDTH / 2:g}" y="50" class="sans" font-size="12" fill="{MUTED}" '
        'text-anchor="middle">the lesson\'s ClusterIP lab: names and addresses from its '
        "capture (docs/lesson.md)</text>",
    ]
    return "\n".join([*head_lines, *svg.parts, "</svg>", ""])


def main() -> int:
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
