"""One lab at a time: the lock, the state file, the control socket's path.

The lab's address ranges are fixed, so two labs cannot share a machine. The
lock (flock on /run/cip-lab/lock) is held for the lab's whole life; start-up
cleanup and `lab down` only ever clean up when they hold it, so they never
pull the network from under a running lab.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from lab.naming import STATE_DIR

STATE = Path(STATE_DIR)
LOCK_FILE = STATE / "lock"
STATE_FILE = STATE / "state.json"
CONTROL_SOCKET = STATE / "control.sock"


class LabBusy(RuntimeError):
    pass


class Lock:
    def __init__(self) -> None:
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, waiting up to `wait` seconds for a running lab to finish."""
        deadline = time.monotonic() + wait
        while True:
            STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    owner = read_state().get("pid", "?")
                    raise LabBusy(
                        f"a lab is already running (pid {owner}); `make lab-down` stops it"
                    ) from None
                time.sleep(0.2)
                continue
            # The lock file may have been removed by the holder we waited for
            # (its cleanup deletes /run/cip-lab): a lock on a deleted file
            # locks nothing, so check it is still the file at the path.
            try:
                same = os.fstat(fd).st_ino == os.stat(LOCK_FILE).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)

    def release(self, remove_state_dir: bool) -> None:
        if self.fd is None:
            return
        if remove_state_dir:
            # Removed while still locked, so nobody can lock the old file after us.
            shutil.rmtree(STATE, ignore_errors=True)
        os.close(self.fd)
        self.fd = None


def read_state() -> dict[str, Any]:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def write_state(data: dict[str, Any]) -> None:
    STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(STATE_FILE)


def lock_is_held() -> bool:
    try:
        fd = os.open(LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def stop_running_lab(timeout: float = 60.0) -> int | None:
    """SIGTERM the running lab (it cleans up after itself) and wait. Returns its pid."""
    if not lock_is_held():
        return None
    pid = read_state().get("pid")
    if not isinstance(pid, int):
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and lock_is_held():
        time.sleep(0.1)
    if lock_is_held():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    return pid
