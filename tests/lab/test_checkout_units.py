"""The lab refuses, with a reason, a checkout its process pods could not read."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.checkout import blocking_directory


@pytest.fixture
def open_root() -> Iterator[Path]:
    # Not pytest's tmp_path: its root is private (0700), the very thing tested.
    with tempfile.TemporaryDirectory(dir="/tmp") as name:
        root = Path(name)
        root.chmod(0o755)
        yield root


def test_a_checkout_in_a_private_home_is_blocked_at_the_home(open_root: Path) -> None:
    home = open_root / "home"
    checkout = home / "clusterip-demo"
    checkout.mkdir(parents=True)
    home.chmod(0o700)
    assert blocking_directory(checkout) == home


def test_a_checkout_others_may_enter_is_not_blocked(open_root: Path) -> None:
    checkout = open_root / "srv" / "clusterip-demo"
    checkout.mkdir(parents=True)
    for directory in (checkout, checkout.parent):
        directory.chmod(0o755)
    assert blocking_directory(checkout) is None
