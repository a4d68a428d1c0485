"""The backend's address read from the connection a call used, without a lookup."""

from __future__ import annotations

from frontend.backend_address import backend_address, literal_address
from frontend.backend_client import Attempt


def _attempt(peer: str | None, opened_at: float | None = 1_700_000_000.0) -> Attempt:
    attempt = Attempt(fresh_client=False)
    attempt.peer_addr = peer
    attempt.connection_opened_at = opened_at
    return attempt


def test_literal_addresses_need_no_lookup() -> None:
    assert literal_address("10.96.0.12") == "10.96.0.12"
    assert literal_address("[::1]") == "::1"
    assert literal_address("backend") is None


def test_a_name_resolved_to_the_connections_peer_when_it_opened() -> None:
    target = backend_address("backend", 8000, _attempt("10.96.0.12:8000"))
    assert not target.literal
    assert target.address == "10.96.0.12" and target.addresses == ("10.96.0.12",)
    assert target.resolved_at == 1_700_000_000.0
    v6 = backend_address("backend", 8000, _attempt("[fd00::12]:8000"))
    assert v6.address == "fd00::12"


def test_no_connection_means_no_answer_known() -> None:
    assert backend_address("backend", 8000, None).address is None
    assert backend_address("backend", 8000, _attempt(None, None)).addresses == ()


def test_a_literal_host_is_its_own_address() -> None:
    target = backend_address("127.0.0.1", 8000, None)
    assert target.literal and target.address == "127.0.0.1" and target.resolved_at is None
