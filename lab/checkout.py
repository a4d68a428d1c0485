"""Whether the pods' own uid can read this checkout, and a copy it can read when not.

Without a container engine the frontend and backend pods run from the checkout
as the manifests' uid (10001), which is neither its owner nor in its group: every
directory on the way must be searchable by others. A clone in a Debian home
directory (mode 0700) is not, and neither is the venv inside it (.venv).

Then the lab places a copy of what those pods run in its own work directory,
which others may enter and `lab down` removes: the app's packages, and a venv
holding only the distributions the images install (requirements/backend.txt
and frontend.txt: 120 MB of the development venv's 780, which matters where
/tmp is a tmpfs). Files are hard-linked where the filesystem allows and others
may already read them (no space taken); anything else is copied and made
readable. Nothing in the checkout itself is changed: a hard link shares the
file's mode, so a file that is not readable by others is copied, never chmod-ed.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

# What the app's tiers import from the checkout (their templates, static files and
# migrations live inside them): the rest of the checkout is not the pods' business.
APP_PARTS = ("common", "backend", "frontend")
COPY_DIR = "app"  # under the lab's work directory
# What the images install (the Dockerfile's `pip install -r`): the copy's venv too.
IMAGE_REQUIREMENTS = ("requirements/backend.txt", "requirements/frontend.txt")


@dataclass(frozen=True)
class AppSource:
    """Where process pods run the app from: the directory on PYTHONPATH, and the Python."""

    root: Path
    python: str


def blocking_directory(checkout: Path) -> Path | None:
    """The first directory, from / down to `checkout`, that others may not enter."""
    resolved = checkout.resolve()
    for directory in [*reversed(resolved.parents), resolved]:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return directory
    return None


def current_venv() -> Path | None:
    """The venv this Python runs in (the checkout's .venv under `make`), or None."""
    return Path(sys.prefix) if sys.prefix != sys.base_prefix else None


def copy_plan(checkout: Path, dest: Path) -> list[tuple[Path, Path]]:
    """(source, target) directories of the app's packages in the copy."""
    return [(checkout / part, dest / part) for part in APP_PARTS]


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares them (PyYAML, typing_extensions)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(text: str) -> set[str]:
    """The distributions a pinned requirements file names (`name==version` lines)."""
    names = set()
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==", line.strip())
        if match:
            names.add(normalized(match.group(1)))
    return names


def venv_files(venv: Path, names: set[str]) -> list[Path]:
    """The installed files of those distributions in `venv`'s lib/ (not its console scripts in
    bin/, whose shebangs name the original venv: the pods run `python -m`)."""
    root = venv.resolve() / "lib"
    files: list[Path] = []
    for distribution in importlib.metadata.distributions():
        if normalized(distribution.metadata["Name"]) not in names:
            continue
        for entry in distribution.files or []:
            path = Path(str(distribution.locate_file(entry))).resolve()
            if path.is_relative_to(root) and path.is_file():
                files.append(path)
    return sorted(set(files))


def interpreter_blocker(executable: Path) -> Path | None:
    """The directory that keeps uid 10001 from the interpreter the venv was made with.

    The copy carries the venv's packages, not its base Python: a pyenv build under a
    0700 home cannot be run by the pods (or, where the system has a libpython of the
    same minor version, runs that one instead, with packages picked for another).
    """
    return blocking_directory(executable.resolve().parent)


def python_in_copy(executable: Path, venv: Path | None, dest: Path) -> str:
    """The copy's own interpreter: the venv's `bin/python` at the same place under the copy,
    so it finds the copied site-packages. Outside a venv the system's Python serves."""
    if venv is None:
        return str(executable)
    try:
        inside = executable.relative_to(venv)
    except ValueError:  # not spelt under the venv's path (a symlink on the way)
        inside = Path("bin") / executable.name
    return str(dest / ".venv" / inside)


def linkable(mode: int, same_device: bool) -> bool:
    """Whether a file can be shared by a hard link: same filesystem, and readable by others
    already (a link cannot be made readable without changing the original)."""
    return same_device and bool(mode & stat.S_IROTH)


def readable_mode(mode: int) -> int:
    """A copied file's mode: readable by all, executable by all if it was by anyone."""
    return 0o755 if mode & 0o111 else 0o644


def _place_file(source: Path, target: Path, dest_device: int) -> None:
    info = source.lstat()
    if linkable(info.st_mode, info.st_dev == dest_device):
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # e.g. a filesystem without hard links: copy instead
    shutil.copyfile(source, target)
    target.chmod(readable_mode(info.st_mode))


def place_tree(source: Path, target: Path) -> int:
    """`source` under `target`, every directory 0755; the number of files placed.
    Symbolic links are kept as links (a venv's bin/python → /usr/bin/python3.11)."""
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    target.chmod(0o755)
    device = target.stat().st_dev
    count = 0
    for directory, dirnames, filenames in os.walk(source):
        here = Path(directory)
        there = target / here.relative_to(source)
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)  # os.walk does not descend; keep it as a link
                os.symlink(os.readlink(here / name), there / name)
            else:
                (there / name).mkdir(mode=0o755)
                (there / name).chmod(0o755)  # the umask of a root shell may be 077
        for name in filenames:
            path = here / name
            if path.is_symlink():
                os.symlink(os.readlink(path), there / name)
            else:
                _place_file(path, there / name, device)
                count += 1
    return count


def place_file(source: Path, target: Path) -> None:
    """One file at `target`, its missing parent directories made 0755."""
    for parent in reversed(target.parents):
        if not parent.exists():
            parent.mkdir(mode=0o755)
            parent.chmod(0o755)  # the umask of a root shell may be 077
    _place_file(source, target, target.parent.stat().st_dev)


def place_venv(venv: Path, target: Path, files: list[Path]) -> int:
    """A venv at `target` with only `files` installed: its pyvenv.cfg and interpreter links
    (bin/python → /usr/bin/python3.11), so `target/bin/python` finds the copied packages."""
    root = venv.resolve()
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    place_file(root / "pyvenv.cfg", target / "pyvenv.cfg")
    (target / "bin").mkdir(mode=0o755, exist_ok=True)
    for link in (root / "bin").iterdir():
        if link.is_symlink() and link.name.startswith("python"):
            os.symlink(os.readlink(link), target / "bin" / link.name)
    if (root / "lib64").is_symlink():
        os.symlink(os.readlink(root / "lib64"), target / "lib64")
    for path in files:
        place_file(path, target / path.relative_to(root))
    return len(files)


def place_copy(checkout: Path, workdir: Path) -> AppSource:
    """The copy of what process pods run, under `workdir`; where to run it from."""
    dest = workdir / COPY_DIR
    for source, target in copy_plan(checkout, dest):
        place_tree(source, target)
    venv = current_venv()
    if venv is not None:
        names: set[str] = set()
        for requirements in IMAGE_REQUIREMENTS:
            names |= requirement_names((checkout / requirements).read_text())
        place_venv(venv, dest / ".venv", venv_files(venv, names))
    return AppSource(dest, python_in_copy(Path(sys.executable), venv, dest))
