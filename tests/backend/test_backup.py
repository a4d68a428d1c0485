"""k8s/components/backup/mysql-backup.sh, the script the backup and restore CronJobs run,
against the session's real MariaDB (Debian's mysqldump is MariaDB's): messages written
through the backend are dumped, the database is wiped, and the restore brings back every
message, per-pod count and Idempotency-Key, as the backend then proves by replaying a key."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

from tests.conftest import BackendFactory, missing
from tests.support.apps import REPO
from tests.support.servers import MariaDB

SCRIPT = REPO / "k8s" / "components" / "backup" / "mysql-backup.sh"
TABLES = {
    "messages": "id",
    "message_counts": "written_by",
    "idempotency_keys": "`key`",
    "alembic_version": "version_num",
}
# Characters an option file must carry as they are (the README rules out ' and \ for the
# official image's entrypoint; this script needs no such rule).
PASSWORD = 'b@ckup "pass" #1/\\ ok'


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _account(mariadb: MariaDB, database: str, tmp_path: Path) -> tuple[str, Path]:
    """An application account like the Secret's: all privileges on its database only."""
    user = f"u{uuid.uuid4().hex[:10]}"
    escaped = PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    mariadb.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{escaped}'")
    mariadb.sql(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "MYSQL_PASSWORD").write_text(PASSWORD + "\n")  # as an editor leaves it
    (secret / "MYSQL_DATABASE").write_text(database)
    return user, secret


def _rows(mariadb: MariaDB, database: str) -> dict[str, list[tuple[Any, ...]]]:
    connection = pymysql.connect(
        host="127.0.0.1", port=mariadb.port, user="root", database=database
    )
    try:
        with connection.cursor() as cursor:
            found = {}
            for table, order in TABLES.items():
                cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")
                found[table] = list(cursor.fetchall())
            return found
    finally:
        connection.close()


@dataclass
class BackupScript:
    """The script against the test's database, run as the CronJobs run it."""

    mariadb: MariaDB
    database: str
    user: str
    secret: Path
    backups: Path

    def run(self, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG")}
        env |= {
            "MYSQL_HOST": "127.0.0.1",
            "MYSQL_PORT": str(self.mariadb.port),
            "MYSQL_USER": self.user,  # as a variable here; the CronJob gives the *_FILE forms
            "MYSQL_DATABASE_FILE": str(self.secret / "MYSQL_DATABASE"),
            "MYSQL_PASSWORD_FILE": str(self.secret / "MYSQL_PASSWORD"),
            "BACKUP_DIR": str(self.backups),
            "TMPDIR": str(self.backups.parent),
        } | extra
        return subprocess.run(
            ["bash", str(SCRIPT), *argv], env=env, capture_output=True, text=True, timeout=120
        )

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        return _rows(self.mariadb, self.database)


@pytest.fixture
def script(mariadb: MariaDB, mysql_url: str, tmp_path: Path) -> BackupScript:
    """The script, an application account like the Secret's, and where the dumps go."""
    if shutil.which("mysqldump") is None or shutil.which("mysql") is None:
        missing("mysqldump/mysql not found (Debian: apt-get install mariadb-client)")
    database = _database(mysql_url)
    user, secret = _account(mariadb, database, tmp_path)
    return BackupScript(mariadb, database, user, secret, tmp_path / "backups")


def test_dump_wipe_restore_brings_every_row_back(
    script: BackupScript, mysql_url: str, backend_factory: BackendFactory
) -> None:
    database, backups = script.database, script.backups
    keys = [uuid.uuid4().hex for _ in range(6)]
    for pod in ("backend-a", "backend-b"):
        app = backend_factory(mysql_url, pod_name=pod)
        for key in keys[:3] if pod == "backend-a" else keys[3:]:
            posted = httpx.post(
                f"{app.url}/api/messages",
                json={"author": "Backup", "text": f"message {key} ünïcödé ✓"},
                headers={"Idempotency-Key": key},
                timeout=10,
            )
            assert posted.status_code == 201, posted.text
        app.stop()
    before = script.rows()
    assert len(before["messages"]) == 6 and len(before["idempotency_keys"]) == 6
    assert {row[0]: row[1] for row in before["message_counts"]} == {"backend-a": 3, "backend-b": 3}

    dumped = script.run("dump")
    assert dumped.returncode == 0, dumped.stderr
    (dump,) = backups.glob(f"{database}-*.sql")
    assert PASSWORD not in dump.read_text() + dumped.stdout + dumped.stderr
    assert not list(backups.glob(".*partial"))

    # Lost: the database and everything in it.
    script.mariadb.sql(f"DROP DATABASE `{database}`")
    script.mariadb.sql(
        f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    restored = script.run("restore")
    assert restored.returncode == 0, restored.stderr
    assert script.rows() == before

    # The backend agrees: a retried request with a restored key replays, writes nothing.
    app = backend_factory(mysql_url, pod_name="backend-c")
    replay = httpx.post(
        f"{app.url}/api/messages",
        json={"author": "Backup", "text": f"message {keys[0]} ünïcödé ✓"},
        headers={"Idempotency-Key": keys[0]},
        timeout=10,
    )
    assert replay.status_code == 201
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["id"] == before["messages"][0][0]
    assert httpx.get(f"{app.url}/api/stats", timeout=10).json()["messages"] == 6


def test_a_restore_replaces_what_was_written_after_the_dump(
    script: BackupScript, mysql_url: str, backend_factory: BackendFactory
) -> None:
    app = backend_factory(mysql_url)
    httpx.post(f"{app.url}/api/messages", json={"author": "a", "text": "kept"}, timeout=10)
    assert script.run("dump").returncode == 0
    httpx.post(f"{app.url}/api/messages", json={"author": "a", "text": "after"}, timeout=10)
    app.stop()
    (dump,) = script.backups.glob("*.sql")
    # By name, as BACKUP_FILE names one in the restore CronJob.
    restored = script.run("restore", BACKUP_FILE=dump.name)
    assert restored.returncode == 0, restored.stderr
    texts = [row[2] for row in script.rows()["messages"]]
    assert texts == ["kept"]


def test_a_failed_dump_leaves_no_backup_and_says_so(script: BackupScript, tmp_path: Path) -> None:
    (script.secret / "MYSQL_PASSWORD").write_text("not the password")
    failed = script.run("dump")
    assert failed.returncode != 0
    assert "no backup was written" in failed.stderr
    assert list(script.backups.iterdir()) == []
    assert list(tmp_path.glob("mysql-backup.*")) == []  # the option file is gone too


def test_only_the_newest_dumps_are_kept(script: BackupScript) -> None:
    backups = script.backups
    backups.mkdir()
    old = [backups / f"{script.database}-2020010{i}T000000Z.sql" for i in range(1, 4)]
    for path in old:
        path.write_text("-- an old dump\n")
    done = script.run("dump", BACKUP_KEEP="2")
    assert done.returncode == 0, done.stderr
    kept = sorted(p.name for p in backups.glob("*.sql"))
    assert len(kept) == 2 and kept[0] == old[-1].name
    listed = script.run("list")
    assert [Path(line).name for line in listed.stdout.split()] == kept


def test_the_script_passes_shellcheck() -> None:
    found = shutil.which("shellcheck")
    if found is None:
        pytest.skip("shellcheck not installed (Debian: apt-get install -y shellcheck)")
    result = subprocess.run([found, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_the_script_is_what_the_cronjobs_run() -> None:
    # One file: the component generates its ConfigMap from it (kustomization.yaml).
    text = (SCRIPT.parent / "kustomization.yaml").read_text()
    assert "- mysql-backup.sh" in text
    assert "--single-transaction" in SCRIPT.read_text()
