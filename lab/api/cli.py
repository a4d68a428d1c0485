"""`python -m lab apiserver` (serve the API alone, root-free) and `python -m lab kubeconfig`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from lab.api import kubeconfig
from lab.api.server import STATE_FILE, serve
from lab.controlplane import API_DIR


def state_dir() -> Path:
    """Where a running API server leaves its address, CA and token (mode 0700).

    Not named cip-lab-…: `lab up` removes every /tmp/cip-lab-* as a previous lab's leftover.
    """
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"clusterip-lab-api-{os.getuid()}"


def cmd_apiserver(args: argparse.Namespace) -> int:
    workdir = state_dir()
    workdir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(workdir, 0o700)
    print(
        f"lab: API server on https://127.0.0.1:{args.port or '<free port>'}; "
        "`python -m lab kubeconfig > lab.kubeconfig` to point kubectl at it",
        flush=True,
    )
    try:
        asyncio.run(serve(workdir, args.port, nodes=args.nodes))
    except KeyboardInterrupt:
        pass
    finally:
        (workdir / STATE_FILE).unlink(missing_ok=True)
    return 0


def _running_lab_server() -> Path | None:
    """The state file of the server `sudo make lab` runs (readable by root only)."""
    path = API_DIR / STATE_FILE
    try:
        return path if path.exists() else None
    except PermissionError:
        return None


def cmd_kubeconfig(_args: argparse.Namespace) -> int:
    # A server someone started with `lab apiserver` first, else the one `sudo make lab` runs.
    path = state_dir() / STATE_FILE
    if not path.exists():
        path = _running_lab_server() or path
    if not path.exists():
        print(
            "lab: no API server is running (start one with `python -m lab apiserver`)",
            file=sys.stderr,
        )
        return 1
    state = json.loads(path.read_text())
    config = kubeconfig.standalone(state["server"], state["ca"].encode(), state["token"])
    sys.stdout.write(kubeconfig.dump(config))
    return 0


def add_parsers(sub: Any) -> None:
    apiserver = sub.add_parser(
        "apiserver", help="serve the lab's Kubernetes API alone (no root needed)"
    )
    apiserver.add_argument("--port", type=int, default=6443)
    apiserver.add_argument(
        "--nodes",
        type=int,
        default=1,
        choices=range(1, 10),
        metavar="N",
        help="how many Node objects (lab-node-1..N, two zones) the scheduler places pods on",
    )
    apiserver.set_defaults(func=cmd_apiserver)
    config = sub.add_parser(
        "kubeconfig", help="print a kubeconfig for the running API server (as kind get kubeconfig)"
    )
    config.set_defaults(func=cmd_kubeconfig)
