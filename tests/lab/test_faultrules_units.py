"""Network faults rendered as iptables rules, and the delayer's netlink messages: no root."""

from __future__ import annotations

import struct

import pytest

from lab import delayer
from lab.faultrules import (
    FAULT_MARK,
    Fault,
    FaultError,
    apply_commands,
    chain,
    delayer_argv,
    parse_delay,
    parse_loss,
    queue_number,
    remove_commands,
)
from lab.naming import host_iface

POD = "redis-7d9f8b6c5-abcde"


@pytest.mark.parametrize(
    ("text", "ms"), [("300ms", 300.0), ("0.3s", 300.0), ("300", 300.0), ("500us", 0.5)]
)
def test_delay_reads_like_tc_netem(text: str, ms: float) -> None:
    assert parse_delay(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "fast", "3x", "-5ms"])
def test_a_delay_that_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(FaultError, match="duration"):
        parse_delay(text)


def test_loss_is_a_percentage() -> None:
    assert parse_loss("5%") == 5.0
    assert parse_loss("0.5") == 0.5
    with pytest.raises(FaultError, match="percentage"):
        parse_loss("half")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no fault"),
        ({"loss_percent": 101}, "between 0 and 100"),
        ({"delay_ms": -1}, "between 0 and 60 s"),
        ({"partition": True, "delay_ms": 10}, "no delay or loss"),
    ],
)
def test_meaningless_faults_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(FaultError, match=message):
        Fault(**kwargs)  # type: ignore[arg-type]


def _jumps(commands: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [c for c in commands if "-I" in c]


def test_a_partition_drops_both_directions_first_in_forward() -> None:
    commands = apply_commands(POD, Fault(partition=True))
    name = chain(POD)
    assert name.startswith("CIP-FAULT-") and len(name) <= 28  # iptables' limit on names
    assert commands[0] == ("-t", "filter", "-N", name)
    assert ("-t", "filter", "-A", name, "-j", "DROP") in commands
    jumps = _jumps(commands)
    # Both directions of the pod's host-side veth, before the lab's own FORWARD rules,
    # and only packets the delayer has not released already.
    assert [j[j.index("1") + 1 : j.index("1") + 3] for j in jumps] == [
        ("-i", host_iface(POD)),
        ("-o", host_iface(POD)),
    ]
    for jump in jumps:
        assert jump[:5] == ("-t", "filter", "-I", "FORWARD", "1")
        assert jump[-2:] == ("-j", name)
        assert f"{FAULT_MARK:#x}/{FAULT_MARK:#x}" in jump and "!" in jump
    # The jumps come last: no packet meets a half-built chain.
    assert commands[-2:] == jumps


def test_delay_and_loss() -> None:
    commands = apply_commands(POD, Fault(delay_ms=300, loss_percent=5))
    name = chain(POD)
    body = [c for c in commands if c[:4] == ("-t", "filter", "-A", name)]
    # Loss first (a lost packet is not worth delaying), then the queue to the delayer.
    assert body[0][4:] == (
        "-m", "statistic", "--mode", "random", "--probability", "0.0500", "-j", "DROP",
    )  # fmt: skip
    assert body[1][4:] == (
        "-j", "NFQUEUE", "--queue-num", str(queue_number(POD)), "--queue-bypass",
    )  # fmt: skip
    # Half the round trip each way: both directions pass the same queue.
    argv = delayer_argv("/py", POD, Fault(delay_ms=300))
    assert argv[:3] == ("/py", "-m", "lab.delayer")
    assert argv[argv.index("--delay-ms") + 1] == "150"
    assert argv[argv.index("--iface") + 1] == host_iface(POD)
    assert int(argv[argv.index("--mark") + 1]) == FAULT_MARK


def test_loss_alone_starts_no_delayer_queue() -> None:
    commands = apply_commands(POD, Fault(loss_percent=10))
    assert not any("NFQUEUE" in c for c in commands)


def test_each_pod_has_its_own_chain_and_queue() -> None:
    other = "redis-7d9f8b6c5-fghjk"
    assert chain(POD) != chain(other)
    assert queue_number(POD) != queue_number(other)
    assert 0 < queue_number(POD) < 65536
    assert queue_number(POD) == queue_number(POD)


def test_removal_from_what_iptables_lists() -> None:
    name = chain(POD)
    other = chain("backend-1")
    listed = [
        "-P FORWARD ACCEPT",
        f"-N {name}",
        f"-N {other}",
        f"-A FORWARD -i {host_iface(POD)} -m mark ! --mark 0x100000/0x100000 "
        f'-m comment --comment "clusterip-demo lab fault: {POD}" -j {name}',
        f"-A FORWARD -o {host_iface('backend-1')} -j {other}",
        "-A FORWARD -j CIP-FORWARD",
        f"-A {name} -j DROP",
    ]
    commands = remove_commands(name, listed)
    assert commands == [
        (
            "-t", "filter", "-D", "FORWARD", "-i", host_iface(POD),
            "-m", "mark", "!", "--mark", "0x100000/0x100000",
            "-m", "comment", "--comment", f"clusterip-demo lab fault: {POD}", "-j", name,
        ),
        ("-t", "filter", "-F", name),
        ("-t", "filter", "-X", name),
    ]  # fmt: skip
    assert remove_commands(chain("gone"), listed) == []


# --- the delayer's nfnetlink messages ------------------------------------------------


def _packet_message(packet_id: int, mark: int | None) -> bytes:
    attrs = delayer._attr(delayer.NFQA_PACKET_HDR, struct.pack("!IHB", packet_id, 0x0800, 2))
    if mark is not None:
        attrs += delayer._attr(delayer.NFQA_MARK, struct.pack("!I", mark))
    return delayer.message(delayer.NFQNL_MSG_PACKET, 7, attrs)


def test_queued_packets_are_read_with_their_marks() -> None:
    data = _packet_message(41, None) + _packet_message(42, 0x4000)
    assert delayer.queued(data) == [(41, 0), (42, 0x4000)]


def test_a_refused_bind_raises() -> None:
    error = struct.pack("=IHHII", 36, delayer.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -16)
    error += b"\0" * 16  # the echoed request header
    with pytest.raises(OSError, match="busy"):
        delayer.queued(error)
    ack = struct.pack("=IHHII", 36, delayer.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", 0)
    assert delayer.queued(ack + b"\0" * 16) == []


def test_a_verdict_repeats_the_packet_with_the_mark() -> None:
    msg = delayer.verdict(7, 42, 0x4000 | FAULT_MARK)
    length, msg_type = struct.unpack_from("=IH", msg)
    assert length == len(msg)
    assert msg_type == (delayer.NFNL_SUBSYS_QUEUE << 8) | delayer.NFQNL_MSG_VERDICT
    assert struct.unpack_from("!H", msg, 18)[0] == 7  # the queue, network order
    assert struct.unpack_from("!II", msg, 24) == (delayer.NF_REPEAT, 42)
    assert struct.unpack_from("!I", msg, 36)[0] == 0x4000 | FAULT_MARK
