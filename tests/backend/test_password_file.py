"""The database password as a file, and the refusal of the shipped development password,
checked on real backend processes against a real MariaDB: the refusal is what a
deployment that kept the sample credentials sees, so it is tested the way it happens."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from backend.config import SHIPPED_DEVELOPMENT_PASSWORD
from localservers.apps import REPO, base_env
from tests.conftest import BackendFactory
from tests.support.ports import free_port
from tests.support.servers import MariaDB


def _account(mariadb: MariaDB, password: str) -> str:
    """A database and a user owning it with this password; returns the URL, no password."""
    if mariadb.proc is None:
        mariadb.start()
    database = mariadb.create_database("pw")
    user = f"u_{uuid.uuid4().hex[:12]}"
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    mariadb.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{quoted}'")
    mariadb.sql(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    return f"mysql+pymysql://{user}@127.0.0.1:{mariadb.port}/{database}"


def _secret_file(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "MYSQL_PASSWORD"
    # A final newline, as an editor leaves it: not part of the password.
    path.write_text(password + "\n")
    path.chmod(0o400)
    return path


@pytest.mark.parametrize("module", ["backend", "backend.migrate"])
def test_the_shipped_password_is_refused_outside_development(
    mariadb: MariaDB, tmp_path: Path, module: str
) -> None:
    url = _account(mariadb, SHIPPED_DEVELOPMENT_PASSWORD)
    env = base_env() | {
        "DATABASE_URL": url,
        "DATABASE_PASSWORD_FILE": str(_secret_file(tmp_path, SHIPPED_DEVELOPMENT_PASSWORD)),
        "PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", module],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "refusing to start" in output
    assert "ENVIRONMENT=development" in output  # how to say it is development
    assert "mysql-credentials" in output and "DATABASE_PASSWORD_FILE" in output  # how to fix
    assert "Traceback" not in output
    assert SHIPPED_DEVELOPMENT_PASSWORD not in output


def test_the_shipped_password_works_in_development(
    mariadb: MariaDB, tmp_path: Path, backend_factory: BackendFactory
) -> None:
    url = _account(mariadb, SHIPPED_DEVELOPMENT_PASSWORD)
    app = backend_factory(
        url,
        environment="development",
        database_password_file=str(_secret_file(tmp_path, SHIPPED_DEVELOPMENT_PASSWORD)),
    )
    # Ready means the database answered: the password from the file logged in.
    info = httpx.get(f"{app.url}/api/info", timeout=5).json()
    assert info["database"] == "mysql"


def test_a_real_password_from_a_file_needs_no_environment_setting(
    mariadb: MariaDB, tmp_path: Path, backend_factory: BackendFactory
) -> None:
    password = f"real-{uuid.uuid4().hex}@/:'x"
    url = _account(mariadb, password)
    app = backend_factory(url, database_password_file=str(_secret_file(tmp_path, password)))
    assert password != SHIPPED_DEVELOPMENT_PASSWORD
    assert password not in app.logs()
