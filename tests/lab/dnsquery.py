"""A minimal DNS client for the lab tests: one question over UDP, the answers decoded.

Enough for A and SRV (RFC 1035, RFC 2782), so a test can ask the cluster DNS
for an SRV record from inside a pod without dig or dnspython.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import sys

TYPES = {"A": 1, "SRV": 33}


def build_query(name: str, qtype: str, ident: int) -> bytes:
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # recursion desired
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return header + labels + b"\0" + struct.pack("!HH", TYPES[qtype], 1)


def _name(data: bytes, at: int) -> tuple[str, int]:
    """A possibly compressed name at `at`; returns it and the offset after it."""
    parts: list[str] = []
    end = None
    while True:
        length = data[at]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = at + 2
            at = struct.unpack("!H", data[at : at + 2])[0] & 0x3FFF
            continue
        if length == 0:
            return ".".join(parts), end if end is not None else at + 1
        parts.append(data[at + 1 : at + 1 + length].decode())
        at += 1 + length


def parse_answer(data: bytes) -> tuple[int, list[str]]:
    """(rcode, answers as text: "1.2.3.4" or "priority weight port target")."""
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    at = 12
    for _ in range(qd):
        _, at = _name(data, at)
        at += 4
    answers = []
    for _ in range(an):
        _, at = _name(data, at)
        rtype, _, _, length = struct.unpack("!HHIH", data[at : at + 10])
        at += 10
        rdata = data[at : at + length]
        if rtype == 1:
            answers.append(socket.inet_ntoa(rdata))
        elif rtype == 33:
            priority, weight, port = struct.unpack("!HHH", rdata[:6])
            target, _ = _name(data, at + 6)
            answers.append(f"{priority} {weight} {port} {target}")
        at += length
    return flags & 0xF, answers


def query(server: str, name: str, qtype: str = "A", timeout: float = 3.0) -> tuple[int, list[str]]:
    ident = random.randrange(65536)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(build_query(name, qtype, ident), (server, 53))
        data, _ = sock.recvfrom(4096)
    return parse_answer(data)


if __name__ == "__main__":
    # python -m tests.lab.dnsquery SERVER NAME TYPE → {"rcode": n, "answers": [...]}, or
    # {"error": "timeout"} when no answer comes (a policy dropped the query).
    try:
        rcode, found = query(sys.argv[1], sys.argv[2], sys.argv[3])
        print(json.dumps({"rcode": rcode, "answers": found}))
    except TimeoutError:
        print(json.dumps({"error": "timeout"}))
