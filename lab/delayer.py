"""A link's latency without `tc netem`: hold each packet in an NFQUEUE for a fixed delay.

`python -m lab.delayer --queue N --delay-ms D --iface IFACE --mark M` binds
netfilter queue N (the iptables rule `-j NFQUEUE --queue-num N --queue-bypass`
sends the pod's packets there, lab/faultrules.py) and releases each packet D
ms after it arrived, in arrival order: every packet is late by D, none is
reordered or lost. The verdict is NF_REPEAT with the mark bit M added: the
packet goes through the hook's rules again, skips the fault (which matches
unmarked packets only) and meets every rule after it, where an NF_ACCEPT
would skip them. Kernels built without `sch_netem` (this project's
CI machines) still have NFQUEUE, which is why the lab delays this way.

It speaks nfnetlink_queue directly (a raw netlink socket, metadata only, no
payload copied), so it needs no library. It exits on SIGTERM, and by itself
once IFACE (the pod's host-side veth) is gone: a lab stopped without `heal`
leaves no delayer behind. `--queue-bypass` on the rule means a dead delayer
lets packets through instead of black-holing the pod.
"""

from __future__ import annotations

import argparse
import collections
import errno
import os
import select
import signal
import socket
import struct
import time
from pathlib import Path

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_MARK = 3
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NF_REPEAT = 4
# Packets a delay of D ms at a few thousand packets a second keeps in flight, with room.
QUEUE_MAXLEN = 20_000
# How often the delayer checks that its pod's interface still exists.
IFACE_CHECK_SECONDS = 1.0


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def message(msg_type: int, queue: int, attrs: bytes, seq: int = 0, flags: int = 0) -> bytes:
    """One nfnetlink message: netlink header, nfgenmsg (family, version, queue), attributes."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    msg_type = (NFNL_SUBSYS_QUEUE << 8) | msg_type
    header = struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | flags, seq, 0)
    return header + body


def bind_messages(queue: int) -> list[bytes]:
    """Bind the queue, copy metadata only, a long queue, and fail open when it is full."""
    cmd = _attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0))
    params = _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
    maxlen = _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))
    flags = _attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)) + _attr(
        NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)
    )
    return [
        message(NFQNL_MSG_CONFIG, queue, cmd, seq=1, flags=NLM_F_ACK),
        message(NFQNL_MSG_CONFIG, queue, params + maxlen + flags, seq=2, flags=NLM_F_ACK),
    ]


def verdict(queue: int, packet_id: int, mark: int) -> bytes:
    """Release the packet into the hook again, carrying `mark` (its old mark and our bit)."""
    attrs = _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_REPEAT, packet_id))
    attrs += _attr(NFQA_MARK, struct.pack("!I", mark))
    return message(NFQNL_MSG_VERDICT, queue, attrs)


def queued(data: bytes) -> list[tuple[int, int]]:
    """(id, mark) of each queued packet in one datagram of netlink messages.

    An error message (a refused bind: another process holds the queue) raises.
    """
    ids: list[tuple[int, int]] = []
    offset = 0
    while offset + 16 <= len(data):
        length, msg_type = struct.unpack_from("=IH", data, offset)
        if length < 16:
            break
        if msg_type == NLMSG_ERROR:
            code = struct.unpack_from("=i", data, offset + 16)[0]
            if code != 0:
                raise OSError(-code, f"nfnetlink_queue: {os.strerror(-code)}")
        elif msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pos = offset + 20  # netlink header, then nfgenmsg
            end = offset + length
            packet_id, mark = None, 0
            while pos + 4 <= end:
                attr_len, attr_type = struct.unpack_from("=HH", data, pos)
                if attr_len < 4:
                    break
                if attr_type & 0x7FFF == NFQA_PACKET_HDR:
                    packet_id = struct.unpack_from("!I", data, pos + 4)[0]
                elif attr_type & 0x7FFF == NFQA_MARK:
                    mark = struct.unpack_from("!I", data, pos + 4)[0]
                pos += attr_len + (-attr_len % 4)
            if packet_id is not None:
                ids.append((packet_id, mark))
        offset += length + (-length % 4)
    return ids


def run(queue: int, delay: float, iface: str | None, mark_bit: int) -> None:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    for msg in bind_messages(queue):
        sock.send(msg)
        queued(sock.recv(4096))  # the acknowledgement, or the error it raises
    # Whoever started us waits for this line before sending packets our way.
    print("ready", flush=True)
    # (release time, packet id, mark to release it with), in arrival order.
    held: collections.deque[tuple[float, int, int]] = collections.deque()
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    next_check = 0.0
    while not stop:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, packet_id, mark = held.popleft()
            sock.send(verdict(queue, packet_id, mark))
        if iface is not None and now >= next_check:
            if not Path(f"/sys/class/net/{iface}").exists():
                break
            next_check = now + IFACE_CHECK_SECONDS
        wait = min(held[0][0] - now if held else IFACE_CHECK_SECONDS, IFACE_CHECK_SECONDS)
        try:
            ready, _, _ = select.select([sock], [], [], max(wait, 0.0))
        except InterruptedError:
            continue
        if not ready:
            continue
        try:
            data = sock.recv(1 << 16)
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # the kernel dropped messages: fail-open covers it
                continue
            raise
        arrived = time.monotonic()
        held.extend((arrived + delay, pid, mark | mark_bit) for pid, mark in queued(data))
    # Release what is held: a packet queued to nobody would wait for ever.
    for _, packet_id, mark in held:
        sock.send(verdict(queue, packet_id, mark))
    sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.delayer", description=__doc__)
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--iface", help="exit once this interface is gone")
    parser.add_argument("--mark", type=int, required=True, help="the bit a released packet gets")
    args = parser.parse_args(argv)
    run(args.queue, args.delay_ms / 1000, args.iface, args.mark)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
