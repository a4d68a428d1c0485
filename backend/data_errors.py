"""What the data layer raises (backend/database.py, queries.py, idempotency.py):
its own terms, no HTTP.

backend/api_errors.py maps each to its JSON answer, so the data layer can be
used (and read) without knowing it sits behind an API.
"""

from __future__ import annotations


class DataError(Exception):
    """Something the data layer could not do, in terms a caller can act on."""


class DatabaseUnavailable(DataError):
    """The database could not be reached or did not answer in time."""

    def __init__(self) -> None:
        super().__init__("the database is unavailable")


class IdempotencyKeyReused(DataError):
    """An Idempotency-Key already stored for a different message."""

    def __init__(self, key: str) -> None:
        super().__init__("this Idempotency-Key was already used for a different message")
        self.key = key
