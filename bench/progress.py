"""The bench's progress lines, stamped, on stdout as they happen."""

from __future__ import annotations

import time


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
