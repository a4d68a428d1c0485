"""Kubeconfigs for the lab's API server: a standalone one, and the `clusterip-lab` context.

Like kind: `python -m lab kubeconfig` prints a whole kubeconfig; `sudo make lab` adds a
cluster, user and context named clusterip-lab to the invoking user's kubeconfig (and
`lab down` removes them), leaving every other entry as it was.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pwd
import tempfile
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "clusterip-lab"


def _entries(server: str, ca_pem: bytes, token: str) -> dict[str, Any]:
    return {
        "cluster": {
            "name": CONTEXT,
            "cluster": {
                "server": server,
                "certificate-authority-data": base64.b64encode(ca_pem).decode(),
            },
        },
        "user": {"name": CONTEXT, "user": {"token": token}},
        "context": {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}},
    }


def standalone(server: str, ca_pem: bytes, token: str) -> dict[str, Any]:
    entries = _entries(server, ca_pem, token)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [entries["cluster"]],
        "users": [entries["user"]],
        "contexts": [entries["context"]],
        "current-context": CONTEXT,
    }


def dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a kubeconfig")
    return loaded


def _replace(
    items: list[dict[str, Any]] | None, entry: dict[str, Any] | None
) -> list[dict[str, Any]]:
    kept = [i for i in items or [] if i.get("name") != CONTEXT]
    return kept + ([entry] if entry else [])


def _owner() -> tuple[int, int] | None:
    """The user who ran sudo, who should own the file written for them."""
    name = os.environ.get("SUDO_USER")
    if os.geteuid() != 0 or not name:
        return None
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    return None


def _write(path: Path, config: dict[str, Any]) -> None:
    """Replace the file atomically, mode 0600, owned by the sudo user when there is one."""
    owner = _owner()
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
        if owner:
            os.chown(path.parent, *owner)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".kubeconfig-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(dump(config))
        os.chmod(temp, 0o600)
        if owner:
            os.chown(temp, *owner)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def add_context(path: Path, server: str, ca_pem: bytes, token: str) -> None:
    config = _read(path)
    entries = _entries(server, ca_pem, token)
    config["clusters"] = _replace(config.get("clusters"), entries["cluster"])
    config["users"] = _replace(config.get("users"), entries["user"])
    config["contexts"] = _replace(config.get("contexts"), entries["context"])
    config["current-context"] = CONTEXT
    _write(path, config)


def remove_context(path: Path) -> bool:
    """Take the clusterip-lab entries out; False when there were none."""
    if not path.exists():
        return False
    config = _read(path)
    before = [len(config.get(k) or []) for k in ("clusters", "users", "contexts")]
    for key in ("clusters", "users", "contexts"):
        config[key] = _replace(config.get(key), None)
    removed = before != [len(config[k]) for k in ("clusters", "users", "contexts")]
    if config.get("current-context") == CONTEXT:
        config["current-context"] = ""
    if removed:
        _write(path, config)
    return removed


def default_path() -> Path:
    """$KUBECONFIG's first file, else the (sudo) user's ~/.kube/config."""
    listed = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if listed:
        return Path(listed)
    name = os.environ.get("SUDO_USER") if os.geteuid() == 0 else None
    home = Path(pwd.getpwnam(name).pw_dir) if name else Path.home()
    return home / ".kube" / "config"
