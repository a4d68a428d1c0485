"""How often CPython makes a thread hand over the GIL, for a server with worker threads."""

from __future__ import annotations

import sys

# CPython's default is 5 ms. The backend runs every database call on a
# worker thread (PyMySQL blocks); when one of them holds the GIL, the event
# loop that wants it back (a response to send, the next request to read)
# can wait up to the whole interval, and so does every request queued
# behind it. At 1 ms the backend's database list served ~1.3-1.4x the
# requests under wrk on the 2-core bench machine (587 → 756-830 req/s).
_SWITCH_INTERVAL_SECONDS = 0.001


def share_gil_sooner() -> None:
    sys.setswitchinterval(_SWITCH_INTERVAL_SECONDS)
