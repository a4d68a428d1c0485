"""Limits both tiers must agree on, stated once.

The backend enforces them (and its database columns are sized by them); the
frontend repeats them to the browser (`maxlength` on the form) and checks the
shape of what it forwards, so a change here reaches both at once.
"""

from __future__ import annotations

# A message's fields, in characters after trimming.
AUTHOR_MAX = 64
TEXT_MAX = 1000

# Message ids are BIGINT: anything above cannot exist, and is refused with a
# 422 rather than reaching the database as an out-of-range number.
MAX_ID = 2**63 - 1

# An Idempotency-Key: 1 to 128 of these characters, safe in a header, a log
# line and a Redis key alike.
IDEMPOTENCY_KEY_MAX = 128
IDEMPOTENCY_KEY_PATTERN = rf"^[A-Za-z0-9._:-]{{1,{IDEMPOTENCY_KEY_MAX}}}$"

# A page of messages: how many when the client does not say, and at most.
PAGE_LIMIT_DEFAULT = 20
PAGE_LIMIT_MAX = 100
