"""A checkout its process pods could not read, and the copy of it they run from."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.checkout import (
    APP_PARTS,
    COPY_DIR,
    IMAGE_REQUIREMENTS,
    blocking_directory,
    copy_plan,
    current_venv,
    interpreter_blocker,
    linkable,
    place_copy,
    place_tree,
    place_venv,
    python_in_copy,
    readable_mode,
    requirement_names,
    venv_files,
)
from lab.manifests import REPO


@pytest.fixture
def open_root() -> Iterator[Path]:
    # Not pytest's tmp_path: its root is private (0700), the very thing tested.
    with tempfile.TemporaryDirectory(dir="/tmp") as name:
        root = Path(name)
        root.chmod(0o755)
        yield root


def test_a_checkout_in_a_private_home_is_blocked_at_the_home(open_root: Path) -> None:
    home = open_root / "home"
    checkout = home / "clusterip-demo"
    checkout.mkdir(parents=True)
    home.chmod(0o700)
    assert blocking_directory(checkout) == home


def test_a_checkout_others_may_enter_is_not_blocked(open_root: Path) -> None:
    checkout = open_root / "srv" / "clusterip-demo"
    checkout.mkdir(parents=True)
    for directory in (checkout, checkout.parent):
        directory.chmod(0o755)
    assert blocking_directory(checkout) is None


def test_a_venv_made_from_a_python_in_a_private_home_is_blocked_at_the_home(
    open_root: Path,
) -> None:
    # A pyenv build under a 0700 home: the copy of the venv cannot run without it.
    home = open_root / "home"
    real = home / ".pyenv" / "versions" / "3.11.7" / "bin" / "python3.11"
    real.parent.mkdir(parents=True)
    real.touch()
    venv_bin = open_root / "copy" / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(real)
    home.chmod(0o700)
    assert interpreter_blocker(venv_bin / "python") == home
    home.chmod(0o755)
    assert interpreter_blocker(venv_bin / "python") is None


def test_the_copy_holds_the_app_parts(tmp_path: Path) -> None:
    checkout, dest = tmp_path / "co", tmp_path / "work" / "app"
    assert copy_plan(checkout, dest) == [
        (checkout / "common", dest / "common"),
        (checkout / "backend", dest / "backend"),
        (checkout / "frontend", dest / "frontend"),
    ]


def test_requirement_names_are_the_pinned_lines_normalised() -> None:
    text = (
        "# via uv\nPyYAML==6.0.2\n    # via uvicorn\n"
        "uvicorn[standard]==0.30.0\ntyping_extensions==4.1\n"
    )
    assert requirement_names(text) == {"pyyaml", "uvicorn", "typing-extensions"}


def test_the_venv_copy_holds_what_the_images_install_and_no_more() -> None:
    venv = current_venv()
    if venv is None:
        pytest.skip("the tests run outside a venv")
    names: set[str] = set()
    for requirements in IMAGE_REQUIREMENTS:
        names |= requirement_names((REPO / requirements).read_text())
    files = venv_files(venv, names)
    site = {path.relative_to(venv.resolve() / "lib").parts[1] for path in files}
    assert site == {"site-packages"}
    tops = {path.relative_to(venv.resolve() / "lib").parts[2] for path in files}
    assert {"fastapi", "sqlalchemy", "redis", "jinja2"} <= tops
    assert "pytest" not in tops and "_pytest" not in tops  # development only


def test_the_copy_runs_its_own_venv_python(tmp_path: Path) -> None:
    venv = tmp_path / "co" / ".venv"
    dest = tmp_path / "app"
    assert python_in_copy(venv / "bin" / "python", venv, dest) == str(dest / ".venv/bin/python")
    # No venv: the system's Python, which any uid may run.
    assert python_in_copy(Path("/usr/bin/python3"), None, dest) == "/usr/bin/python3"


def test_only_a_file_others_can_read_on_the_same_filesystem_is_linked() -> None:
    assert linkable(0o100644, same_device=True)
    assert not linkable(0o100600, same_device=True)  # a link would stay unreadable
    assert not linkable(0o100644, same_device=False)
    assert readable_mode(0o100700) == 0o755
    assert readable_mode(0o100600) == 0o644


def test_place_tree_links_readable_files_copies_private_ones_keeps_symlinks(
    open_root: Path,
) -> None:
    source = open_root / "home" / "venv"
    (source / "bin").mkdir(parents=True)
    (source / "lib").mkdir()
    (source / "lib" / "mod.py").write_text("x = 1\n")
    (source / "lib" / "mod.py").chmod(0o644)
    (source / "bin" / "tool").write_text("#!/bin/sh\n")
    (source / "bin" / "tool").chmod(0o700)
    (source / "bin" / "python").symlink_to("/usr/bin/python3")
    (source / "lib64").symlink_to("lib")
    (source / "bin").chmod(0o700)
    target = open_root / "work" / "venv"

    assert place_tree(source, target) == 2

    linked, copied = target / "lib" / "mod.py", target / "bin" / "tool"
    assert linked.stat().st_ino == (source / "lib" / "mod.py").stat().st_ino
    assert copied.stat().st_ino != (source / "bin" / "tool").stat().st_ino
    assert stat.S_IMODE(copied.stat().st_mode) == 0o755
    assert stat.S_IMODE((source / "bin" / "tool").stat().st_mode) == 0o700  # untouched
    assert stat.S_IMODE((target / "bin").stat().st_mode) == 0o755
    assert os.readlink(target / "bin" / "python") == "/usr/bin/python3"
    assert os.readlink(target / "lib64") == "lib"
    assert blocking_directory(target) is None


def test_the_copy_of_a_private_checkout_is_open_to_others(open_root: Path) -> None:
    home = open_root / "home"
    checkout = home / "clusterip-demo"
    for part in APP_PARTS:
        (checkout / part).mkdir(parents=True)
        (checkout / part / "__init__.py").write_text("")
    (checkout / "requirements").mkdir()
    for requirements in IMAGE_REQUIREMENTS:
        (checkout / requirements).write_text("fastapi==0.1\n")
    home.chmod(0o700)
    workdir = open_root / "work"
    workdir.mkdir()

    source = place_copy(checkout, workdir)

    assert source.root == workdir / COPY_DIR
    for part in APP_PARTS:
        assert (source.root / part / "__init__.py").is_file()
        assert blocking_directory(source.root / part) is None
    assert blocking_directory(checkout) == home
    if current_venv() is not None:
        assert Path(source.python) == source.root / ".venv" / "bin" / Path(sys.executable).name
        site = next((source.root / ".venv" / "lib").glob("python3*/site-packages"))
        assert (site / "fastapi" / "__init__.py").is_file()
        assert not (site / "pytest").exists()


def test_place_venv_keeps_the_interpreter_links_and_the_chosen_files(open_root: Path) -> None:
    venv = open_root / "home" / ".venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "fastapi").mkdir(parents=True)
    (site / "pytest").mkdir()
    (site / "fastapi" / "__init__.py").write_text("")
    (site / "pytest" / "__init__.py").write_text("")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    (venv / "bin" / "pytest").write_text("#!/home/.venv/bin/python\n")
    (venv / "lib64").symlink_to("lib")
    target = open_root / "work" / ".venv"

    assert place_venv(venv, target, [site / "fastapi" / "__init__.py"]) == 1

    copied = target / "lib" / "python3.11" / "site-packages"
    assert (copied / "fastapi" / "__init__.py").is_file()
    assert not (copied / "pytest").exists()
    assert not (target / "bin" / "pytest").exists()
    assert os.readlink(target / "bin" / "python") == "/usr/bin/python3"
    assert os.readlink(target / "lib64") == "lib"
    assert (target / "pyvenv.cfg").read_text() == "home = /usr/bin\n"
    assert stat.S_IMODE(copied.stat().st_mode) == 0o755
