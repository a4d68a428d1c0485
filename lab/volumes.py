"""Secret volumes, written the way the kubelet writes them.

The kubelet projects a Secret's keys into files in a per-pod directory (a
tmpfs on a node) and mounts it read-only: the owner is root, the group is the
pod's fsGroup when it sets one, and the mode is the volume's defaultMode —
with fsGroup also group-readable, as the kubelet's volume ownership step
makes it. A missing Secret or key keeps the pod from starting (FailedMount),
unless the volume is optional.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from lab.manifests import ManifestError, Volume


class MountError(ManifestError):
    """The kubelet's FailedMount: the Secret or one of its keys does not exist."""


def secret_files(volume: Volume, data: Mapping[str, str] | None) -> dict[str, str]:
    """Relative path -> content, for one secret volume and the Secret's data."""
    if data is None:
        if volume.optional:
            return {}
        raise MountError(f"volume {volume.name}: Secret {volume.secret_name!r} not found")
    if not volume.items:
        return dict(data)
    files: dict[str, str] = {}
    for key, path in volume.items:
        if key not in data:
            if volume.optional:
                continue
            raise MountError(
                f"volume {volume.name}: key {key!r} not found in Secret {volume.secret_name!r}"
            )
        files[path] = data[key]
    return files


def write_secret_volume(
    directory: Path, volume: Volume, data: Mapping[str, str] | None, fs_group: int | None
) -> None:
    """The Secret's files under `directory` (replaced if present), owned as on a node."""
    files = secret_files(volume, data)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    mode = volume.default_mode | (0o440 if fs_group is not None else 0)
    as_root = os.geteuid() == 0
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        if as_root:
            os.chown(path, 0, fs_group if fs_group is not None else 0)
        path.chmod(mode)
    # Root's directory: the container's user can read it, not change it.
    for folder in {p.parent for p in directory.rglob("*")} | {directory}:
        if as_root:
            os.chown(folder, 0, fs_group if fs_group is not None else 0)
        folder.chmod(0o755)
