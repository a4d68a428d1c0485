"""frontend/spread.py: the `n` of /spread, read or refused in words."""

from __future__ import annotations

import pytest

from frontend.spread import SpreadInputError, parse_n


@pytest.mark.parametrize(("raw", "expected"), [(None, 30), ("", 30), (" 7 ", 7), ("200", 200)])
def test_n_accepts(raw: str | None, expected: int) -> None:
    assert parse_n(raw, 30, 200) == expected


@pytest.mark.parametrize("raw", ["0", "201", "-1", "1.5", "ten", "1e2", "9" * 30])
def test_n_refuses(raw: str) -> None:
    with pytest.raises(SpreadInputError, match="from 1 to 200"):
        parse_n(raw, 30, 200)
