"""`make run`: migrate the local database, then run the tiers until Ctrl-C.

Uses the same commands as the containers (`python -m backend.migrate`,
`python -m backend`, `python -m frontend`) with the local defaults: SQLite
under var/, no Redis, BACKEND_URL=http://127.0.0.1:8000.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    env = os.environ.copy()
    env.setdefault("PYTHONPATH", str(REPO))
    # A laptop is a development setup: the backend accepts the shipped development
    # password here (it refuses it anywhere ENVIRONMENT is not "development").
    env.setdefault("ENVIRONMENT", "development")
    subprocess.run([sys.executable, "-m", "backend.migrate"], cwd=REPO, env=env, check=True)
    tiers = ["backend"]
    if (REPO / "frontend" / "__main__.py").exists():
        tiers.append("frontend")
    procs = [subprocess.Popen([sys.executable, "-m", tier], cwd=REPO, env=env) for tier in tiers]
    print(
        "\n  backend  http://127.0.0.1:8000/api/info"
        + ("\n  frontend http://127.0.0.1:8080/" if "frontend" in tiers else "")
        + "\n  Ctrl-C stops both\n",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    # Ctrl-C is a normal stop; report only a tier that failed on its own.
    failed = [p.returncode for p in procs if p.returncode and p.returncode > 0]
    return failed[0] if failed else 0


if __name__ == "__main__":
    sys.exit(main())
