"""From a container in the manifests to the real process that plays it.

There is no container engine: each image is mapped to the program it would
run, started inside the pod's network namespace.

- clusterip-demo/<tier>:* → the container's command/args, or the CMD of the
  Dockerfile's stage for the tier (`python -m backend`), with this repository
  on PYTHONPATH and the lab's Python (the venv's) as `python`;
- redis:* → Debian's `redis-server` with the container's args, protected mode
  off as in the official image;
- mysql:* / mariadb:* → Debian's `mariadbd`, its datadir initialised the way
  the official image's entrypoint does it (database, user and root password
  from the MYSQL_* environment), with MySQL 8.4's defaults where MariaDB's
  differ (utf8mb4, listening on all addresses, no name resolution).

Volumes: an emptyDir is a fresh directory per pod; a Secret volume is a
directory of the Secret's files (lab/volumes.py); a StatefulSet's claim is a
directory per claim and pod name that outlives the pod, as a PVC does. There
is no mount namespace, so paths under a mount path in args and in env values
(DATABASE_PASSWORD_FILE=/run/secrets/mysql/…) are rewritten to the host
directory: the process opens the same file the container would.

securityContext: runAsUser/runAsGroup are honoured with `setpriv`, and
`capabilities.drop: [ALL]` / `allowPrivilegeEscalation: false` become an empty
bounding set and no_new_privs. What a namespace-only lab cannot do
(readOnlyRootFilesystem, seccomp, resource limits) is not enforced.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lab.checkout import AppSource
from lab.dockerfile import tier_command
from lab.manifests import REPO, Container, ManifestError, PodTemplate, SecurityContext

# The image's default user when the manifests set none: the app images'
# Dockerfile says USER 10001; the official redis and mysql images start as
# root and drop to their own user (999).
IMAGE_DEFAULT_USER = {"app": 10001, "redis": 999, "mysql": 999, "dnsmasq": 0}

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Launch:
    """What to exec for one container, and what to prepare first."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    security: SecurityContext
    kind: str  # app, redis, mysql
    # For mysql: the datadir, whether it needs initialising, and the SQL for it.
    datadir: Path | None = None
    tmpdir: Path | None = None
    init_sql: str | None = None
    notes: list[str] = field(default_factory=list)


def image_kind(image: str) -> tuple[str, str]:
    """("app" | "redis" | "mysql", tier) from an image reference."""
    name = image.split("@", 1)[0]
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    last = repo.rsplit("/", 1)[-1]
    if repo.startswith("clusterip-demo/"):
        return "app", last
    if last == "redis":
        return "redis", last
    if last in ("mysql", "mariadb"):
        return "mysql", last
    if "dnsmasq" in last:  # the lab's kube-dns pod (lab/dns.py)
        return "dnsmasq", last
    raise ManifestError(
        f"image {image!r}: the lab knows clusterip-demo/*, redis, mysql and mariadb images only"
    )


def dockerfile_cmd(tier: str) -> list[str]:
    """ENTRYPOINT + CMD of the tier's stage in <repo>/Dockerfile, as `docker run` would use."""
    return tier_command(REPO / "Dockerfile", tier)


@functools.cache
def can_run_as(uid: int, gid: int, program: str) -> bool:
    """Whether `program` starts under that uid (a home directory like /root may be closed)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return False
    args = [program, "-c", "pass"] if "python" in Path(program).name else [program, "--version"]
    done = subprocess.run(
        [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *args],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


def privilege_prefix(uid: int, gid: int, security: SecurityContext) -> list[str]:
    """`setpriv …` to become the container's user, or nothing to stay root."""
    if uid == 0 and gid == 0 and not security.no_new_privileges:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ManifestError("setpriv (util-linux) is needed to run containers as their user")
    # The kubelet adds the pod's fsGroup as a supplementary group: it owns the Secret
    # volume's files, so a container whose own group differs can still read them.
    fs_group = security.fs_group
    groups = (
        f"--groups={fs_group}" if fs_group is not None and fs_group != gid else "--clear-groups"
    )
    prefix = [setpriv, f"--reuid={uid}", f"--regid={gid}", groups]
    if security.drop_all_capabilities:
        prefix += ["--inh-caps=-all", "--bounding-set=-all"]
    if security.no_new_privileges:
        prefix.append("--no-new-privs")
    return prefix


class VolumeMap:
    """Mount paths inside the container → directories on the host."""

    def __init__(self, mounts: Mapping[str, Path]) -> None:
        # Longest path first, so /var/lib/mysql/data wins over /var/lib/mysql.
        self.mounts = dict(sorted(mounts.items(), key=lambda kv: -len(kv[0])))

    def host_path(self, path: str) -> str:
        for mount, host in self.mounts.items():
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return str(host) + path[len(mount.rstrip("/")) :]
        return path

    def rewrite_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """Values that are paths under a mount path → the same file in the host directory."""
        return {k: self.host_path(v) if v.startswith("/") else v for k, v in env.items()}

    def rewrite_arg(self, arg: str) -> str:
        """`--datadir=/var/lib/mysql/data` → `--datadir=<host dir>/data`."""
        if arg.startswith("/"):
            return self.host_path(arg)
        if arg.startswith("--") and "=" in arg:
            key, _, value = arg.partition("=")
            if value.startswith("/"):
                return f"{key}={self.host_path(value)}"
        return arg


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_ident(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


# The variables the official mysql image's entrypoint also reads from VAR_FILE (file_env).
FILE_ENV = (
    "MYSQL_ROOT_PASSWORD",
    "MYSQL_PASSWORD",
    "MYSQL_USER",
    "MYSQL_DATABASE",
    "MYSQL_ROOT_HOST",
)


def file_env(env: Mapping[str, str]) -> dict[str, str]:
    """The entrypoint's file_env: VAR_FILE's content becomes VAR ($(< file) drops trailing
    newlines); setting both is refused, as the image refuses it."""
    resolved = dict(env)
    for name in FILE_ENV:
        path = resolved.pop(f"{name}_FILE", None)
        if path is None:
            continue
        if name in resolved:
            raise ManifestError(f"mysql container: both {name} and {name}_FILE are set")
        try:
            resolved[name] = Path(path).read_text().rstrip("\n")
        except OSError as exc:
            raise ManifestError(f"mysql container: {name}_FILE={path}: {exc.strerror}") from None
    return resolved


def mysql_init_sql(env: Mapping[str, str]) -> str:
    """What the official mysql image's entrypoint does on an empty datadir."""
    root_password = env.get("MYSQL_ROOT_PASSWORD")
    if root_password is None and not env.get("MYSQL_ALLOW_EMPTY_PASSWORD"):
        raise ManifestError(
            "mysql container: database is uninitialized and MYSQL_ROOT_PASSWORD is not set "
            "(the official image refuses to start the same way)"
        )
    root_host = env.get("MYSQL_ROOT_HOST", "%")
    password = _sql_string(root_password or "")
    statements = [
        # mariadb-install-db adds root@127.0.0.1, root@::1, root@<hostname> and
        # anonymous users; the official mysql image has root@localhost only.
        "DELETE FROM mysql.global_priv WHERE NOT (User = 'root' AND Host = 'localhost') "
        "AND User NOT IN ('mariadb.sys', 'mysql.sys')",
        "FLUSH PRIVILEGES",
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY {password}",
    ]
    if root_host and root_host != "localhost":
        statements += [
            f"CREATE USER 'root'@{_sql_string(root_host)} IDENTIFIED BY {password}",
            f"GRANT ALL ON *.* TO 'root'@{_sql_string(root_host)} WITH GRANT OPTION",
        ]
    database = env.get("MYSQL_DATABASE")
    if database:
        statements.append(f"CREATE DATABASE IF NOT EXISTS {_sql_ident(database)}")
    user, user_password = env.get("MYSQL_USER"), env.get("MYSQL_PASSWORD")
    if user and user_password:
        if user == "root":
            raise ManifestError("MYSQL_USER=root is refused by the official image too")
        statements.append(
            f"CREATE USER {_sql_string(user)}@'%' IDENTIFIED BY {_sql_string(user_password)}"
        )
        if database:
            statements.append(f"GRANT ALL ON {_sql_ident(database)}.* TO {_sql_string(user)}@'%'")
    statements.append("FLUSH PRIVILEGES")
    return ";\n".join(statements) + ";\n"


def plan(
    container: Container,
    template: PodTemplate,
    command: list[str],
    args: list[str],
    env: Mapping[str, str],
    volumes: VolumeMap,
    source: AppSource | None = None,
) -> Launch:
    """How to run one container: argv, env, cwd, user. `source`: where the project's
    images' code and Python come from (default: this checkout and this Python)."""
    source = source or AppSource(REPO, sys.executable)
    kind, tier = image_kind(container.image)
    env = volumes.rewrite_env(env)
    pod_sec, sec = template.security, container.security
    uid = sec.run_as_user if sec.run_as_user is not None else pod_sec.run_as_user
    gid = sec.run_as_group if sec.run_as_group is not None else pod_sec.run_as_group
    if uid is None:
        uid = IMAGE_DEFAULT_USER[kind]
    if gid is None:
        gid = uid
    merged = SecurityContext(
        run_as_user=uid,
        run_as_group=gid,
        fs_group=pod_sec.fs_group,
        drop_all_capabilities=sec.drop_all_capabilities,
        no_new_privileges=sec.no_new_privileges,
    )
    full_env = {"PATH": BASE_PATH, "HOME": "/"}
    notes: list[str] = []
    tmp = volumes.host_path("/tmp")
    if tmp != "/tmp":
        full_env["TMPDIR"] = tmp

    if kind == "app":
        argv = command + args if command else dockerfile_cmd(tier) + args
        if argv and argv[0] in ("python", "python3"):
            # The Dockerfile's python is the image venv's; the lab's is this one.
            argv[0] = source.python
        full_env.update(
            {
                "PATH": f"{Path(source.python).parent}:{BASE_PATH}",
                "PYTHONPATH": str(source.root),
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        full_env.update(env)
        cwd = container.working_dir and volumes.host_path(container.working_dir)
        launch = Launch(
            argv, full_env, cwd or str(source.root), uid, gid, merged, kind, notes=notes
        )
    elif kind == "dnsmasq":
        # Debian's dnsmasq under the nanny that restarts it for new SRV records
        # (lab/dnsnanny.py); it binds port 53 as root, then drops to nobody.
        argv = [sys.executable, "-m", "lab.dnsnanny", *command, *args]
        full_env.update({"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
        full_env.update(env)
        launch = Launch(argv, full_env, "/", uid, gid, merged, kind)
        notes.append("image k8s-dns-dnsmasq-nanny → Debian's dnsmasq (kube-dns's DNS server)")
    elif kind == "redis":
        binary = shutil.which("redis-server")
        if binary is None:
            raise ManifestError(
                "redis image: redis-server is not installed (apt-get install redis-server)"
            )
        if command:
            argv = command + args
        elif args and not args[0].startswith("-"):
            argv = list(args)  # e.g. ["redis-server", "--save", ""]
        else:
            argv = ["redis-server", *args]
        if argv[0] == "redis-server":
            argv[0] = binary
            # The official image builds redis with protected mode off, so it
            # answers other pods without a password; Debian's binary needs it said.
            argv += ["--protected-mode", "no"]
        argv = [volumes.rewrite_arg(a) for a in argv]
        full_env.update(env)
        data = volumes.host_path("/data")
        launch = Launch(argv, full_env, data if data != "/data" else "/", uid, gid, merged, kind)
    else:
        binary = shutil.which("mariadbd") or shutil.which("mysqld")
        if binary is None:
            raise ManifestError(
                "mysql image: mariadbd is not installed (apt-get install mariadb-server)"
            )
        rest = command[1:] + args if command else list(args)
        if rest and not rest[0].startswith("-"):
            if rest[0] not in ("mysqld", "mariadbd"):
                raise ManifestError(f"mysql container: cannot run {rest[0]!r}")
            rest = rest[1:]
        rest = [volumes.rewrite_arg(a) for a in rest]
        datadir = Path(volumes.host_path("/var/lib/mysql"))
        for arg in rest:
            if arg.startswith("--datadir="):
                datadir = Path(arg.split("=", 1)[1])
        if str(datadir).startswith("/var/lib/mysql"):
            raise ManifestError("mysql container: its datadir is not on a volume")
        run_dir = Path(volumes.host_path("/var/run/mysqld"))
        if str(run_dir).startswith("/var/run"):
            run_dir = datadir.parent
        # Never the shared /tmp: MariaDB names its temporary files in a way
        # that collides between servers (and their bootstraps) sharing a tmpdir.
        tmpdir = Path(tmp) if tmp != "/tmp" else datadir.parent / "tmp"
        argv = [
            binary,
            # Debian's /etc/mysql config (bind 127.0.0.1, its own paths) is not
            # the image's: start from nothing and say what the image says.
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={run_dir / 'mysqld.sock'}",
            f"--pid-file={run_dir / 'mysqld.pid'}",
            f"--tmpdir={tmpdir}",
            # MySQL 8.4 defaults that MariaDB 10.11 does not share.
            "--bind-address=0.0.0.0",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            # The image's docker.cnf: no reverse DNS for client addresses.
            "--skip-name-resolve",
            "--innodb-log-file-size=16M",
            *[a for a in rest if not a.startswith("--datadir=")],
        ]
        if uid == 0:
            argv.append("--user=root")  # as root, mariadbd refuses to start without it
        full_env.update(env)
        init_sql = None if (datadir / "mysql").is_dir() else mysql_init_sql(file_env(env))
        launch = Launch(
            argv,
            full_env,
            str(datadir.parent),
            uid,
            gid,
            merged,
            kind,
            datadir=datadir,
            tmpdir=tmpdir,
            init_sql=init_sql,
        )
        notes.append("image mysql → Debian's mariadbd (same protocol)")
    launch.notes = notes
    return launch


def effective_user(launch: Launch) -> tuple[int, int, str | None]:
    """The uid/gid to run as; falls back to root (with a note) when the uid cannot start it."""
    if launch.uid == 0:
        return 0, launch.gid, None
    program = launch.argv[0]
    if can_run_as(launch.uid, launch.gid, program):
        return launch.uid, launch.gid, None
    return 0, 0, f"uid {launch.uid} cannot start {program} on this host: running it as root"


def install_mysql_datadir(launch: Launch, log: Path) -> None:
    """mariadb-install-db as the container's user, into a fresh directory renamed into place.

    A failed or interrupted install leaves no half-made datadir behind, so the
    next start initialises again instead of starting on broken system tables.
    """
    assert launch.datadir is not None and launch.tmpdir is not None
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if install is None:
        raise ManifestError("mariadb-install-db is not installed (apt-get install mariadb-server)")
    staging = launch.datadir.with_name(launch.datadir.name + ".installing")
    shutil.rmtree(staging, ignore_errors=True)
    for path in (staging, launch.tmpdir):
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, launch.uid, launch.gid)
    args = [
        install,
        "--no-defaults",
        f"--datadir={staging}",
        f"--tmpdir={launch.tmpdir}",
        # Without it root uses unix-socket auth and TCP logins fail (1698).
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--skip-name-resolve",
        "--innodb-log-file-size=16M",
    ]
    prefix = privilege_prefix(launch.uid, launch.gid, launch.security)
    if launch.uid == 0:
        args.append("--user=root")
    with log.open("ab") as out:
        done = subprocess.run(
            prefix + args, stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False
        )
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = log.read_text(errors="replace").strip().splitlines()[-8:]
        raise RuntimeError(
            f"mariadb-install-db failed (exit {done.returncode}): " + " | ".join(tail)
        )
    if launch.datadir.exists():
        shutil.rmtree(launch.datadir)
    staging.rename(launch.datadir)
