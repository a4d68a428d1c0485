"""The DNS pod's nanny: runs dnsmasq and restarts it when its SRV file changes.

kube-dns's dnsmasq container ran `dnsmasq-nanny`, which restarted dnsmasq
whenever its configuration changed, because dnsmasq reads its configuration
(and so its `srv-host=` records) only at start. This is that nanny:

    python -m lab.dnsnanny --watch FILE [--program dnsmasq] -- DNSMASQ-ARGS…

It stays the container's main process: SIGTERM/SIGINT are passed on to
dnsmasq, and when dnsmasq exits on its own the nanny exits with its status,
so the kubelet sees the crash and restarts the container.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL = 0.5


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _log(message: str) -> None:
    print(f"dnsnanny: {message}", file=sys.stderr, flush=True)


def _exit_status(code: int) -> int:
    """As a shell reports it: 128 + the signal for a child killed by one."""
    return 128 - code if code < 0 else code


def run(watch: Path, argv: list[str], poll: float = POLL) -> int:
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    seen = _stamp(watch)
    child = subprocess.Popen(argv)
    _log(f"started {argv[0]} (pid {child.pid})")
    while True:
        code = child.poll()
        if stopping:
            if code is None:
                child.send_signal(stopping[0])
                code = child.wait()
            return _exit_status(code)
        if code is not None:
            _log(f"{argv[0]} exited with {code}")
            # Never 0: a DNS server that stops by itself is a failed container.
            return _exit_status(code) or 1
        now = _stamp(watch)
        if now != seen:
            seen = now
            _log(f"{watch} changed: restarting {argv[0]}")
            child.terminate()
            child.wait()
            child = subprocess.Popen(argv)
            _log(f"started {argv[0]} (pid {child.pid})")
        time.sleep(poll)


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.dnsnanny")
    parser.add_argument("--watch", type=Path, required=True, help="restart when this file changes")
    parser.add_argument("--program", default="dnsmasq")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then the program's arguments")
    opts = parser.parse_args(args)
    rest = opts.rest[1:] if opts.rest[:1] == ["--"] else opts.rest
    program = shutil.which(opts.program)
    if program is None:
        _log(f"{opts.program} is not installed (apt-get install dnsmasq-base)")
        return 127
    return run(opts.watch, [program, *rest])


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
