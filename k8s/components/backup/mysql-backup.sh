#!/usr/bin/env bash
# Dump the guestbook's MySQL database to a file, or restore it from one.
#
#   mysql-backup.sh dump              write $BACKUP_DIR/<database>-<UTC time>.sql, keep the newest $BACKUP_KEEP
#   mysql-backup.sh restore [FILE]    load FILE (default: $BACKUP_FILE, else the newest dump) into the database
#   mysql-backup.sh list              the dumps, oldest first
#
# The CronJob of k8s/components/backup runs this very file (kustomize puts it in a
# ConfigMap), and tests/backend/test_backup.py runs it against a real MariaDB.
#
# The dump is consistent without stopping the app: --single-transaction reads every
# table in one InnoDB snapshot, and the backend writes a message, its per-pod count and
# its Idempotency-Key in one transaction, so a dump holds all three or none. It is
# written under a temporary name and renamed when complete: a dump that failed halfway
# never looks like a backup. A restore replaces the tables the dump holds (DROP TABLE,
# CREATE TABLE, INSERT), so stop the writers first (docs/kubernetes.md, "Backups").
#
# Settings, from the environment; every credential is read from a file:
#   MYSQL_HOST (mysql), MYSQL_PORT (3306)
#   MYSQL_USER or MYSQL_USER_FILE, MYSQL_DATABASE or MYSQL_DATABASE_FILE
#   MYSQL_PASSWORD_FILE       never a variable: it would show in `kubectl describe`
#   BACKUP_DIR (/backups), BACKUP_KEEP (14), BACKUP_FILE (restore only)
#   MYSQLDUMP (mysqldump), MYSQL (mysql): the client programs (MariaDB's work too)
set -euo pipefail
umask 077

die() {
    echo "mysql-backup: $*" >&2
    exit 1
}

from_file_or_env() { # NAME: the value of $NAME, or of the file $NAME_FILE names
    local name=$1 file_var="${1}_FILE"
    if [[ -n "${!file_var:-}" ]]; then
        [[ -r "${!file_var}" ]] || die "$file_var=${!file_var} is not a readable file"
        printf '%s' "$(<"${!file_var}")"
    elif [[ -n "${!name:-}" ]]; then
        printf '%s' "${!name}"
    else
        die "set $name or $file_var"
    fi
}

HOST=${MYSQL_HOST:-mysql}
PORT=${MYSQL_PORT:-3306}
USER_NAME=$(from_file_or_env MYSQL_USER)
DATABASE=$(from_file_or_env MYSQL_DATABASE)
BACKUP_DIR=${BACKUP_DIR:-/backups}
BACKUP_KEEP=${BACKUP_KEEP:-14}
MYSQLDUMP=${MYSQLDUMP:-mysqldump}
MYSQL=${MYSQL:-mysql}
[[ "$DATABASE" =~ ^[A-Za-z0-9_]+$ ]] || die "unexpected database name: $DATABASE"
[[ "$BACKUP_KEEP" =~ ^[1-9][0-9]*$ ]] || die "BACKUP_KEEP must be a positive number"

# The password goes to the clients in an option file of our own (mode 0600, removed on
# exit), never on a command line (`ps` shows those) or in the environment.
options_file() {
    [[ -n "${MYSQL_PASSWORD_FILE:-}" && -r "$MYSQL_PASSWORD_FILE" ]] \
        || die "MYSQL_PASSWORD_FILE must name a readable file"
    local password
    password=$(<"$MYSQL_PASSWORD_FILE")
    [[ "$password" != *$'\n'* ]] || die "the password file holds more than one line"
    password=${password//\\/\\\\}
    password=${password//\"/\\\"}
    OPTIONS=$(mktemp "${TMPDIR:-/tmp}/mysql-backup.XXXXXX")
    trap 'rm -f "$OPTIONS"' EXIT
    printf '[client]\nhost="%s"\nport=%s\nuser="%s"\npassword="%s"\n' \
        "$HOST" "$PORT" "$USER_NAME" "$password" >"$OPTIONS"
}

dumps() { # the complete dumps of this database, oldest first (the names sort by time)
    find "$BACKUP_DIR" -maxdepth 1 -type f -name "$DATABASE-*.sql" | LC_ALL=C sort
}

dump() {
    mkdir -p "$BACKUP_DIR"
    local stamp target partial extra=()
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    target="$BACKUP_DIR/$DATABASE-$stamp.sql"
    partial="$BACKUP_DIR/.$DATABASE-$stamp.sql.partial"
    # MySQL's client adds GTID statements a non-root restore cannot run; MariaDB's has no such option.
    if ! "$MYSQLDUMP" --version | grep -q MariaDB; then
        extra+=(--set-gtid-purged=OFF)
    fi
    if ! "$MYSQLDUMP" --defaults-extra-file="$OPTIONS" \
        --single-transaction --quick --no-tablespaces --skip-lock-tables \
        --hex-blob --default-character-set=utf8mb4 "${extra[@]}" \
        "$DATABASE" >"$partial"; then
        rm -f "$partial"
        die "the dump of $DATABASE failed; no backup was written"
    fi
    # mysqldump ends a complete dump with this line; without it the dump was cut short.
    tail -n 1 "$partial" | grep -q '^-- Dump completed' || {
        rm -f "$partial"
        die "the dump of $DATABASE is incomplete; no backup was written"
    }
    mv "$partial" "$target"
    echo "mysql-backup: wrote $target ($(wc -c <"$target") bytes)"
    local all
    mapfile -t all < <(dumps)
    local surplus=$((${#all[@]} - BACKUP_KEEP))
    for ((i = 0; i < surplus; i++)); do
        rm -f "${all[i]}"
        echo "mysql-backup: removed ${all[i]} (keeping the newest $BACKUP_KEEP)"
    done
}

restore() {
    local file=${1:-${BACKUP_FILE:-}}
    if [[ -z "$file" ]]; then
        file=$(dumps | tail -n 1)
        [[ -n "$file" ]] || die "no dump of $DATABASE in $BACKUP_DIR"
    elif [[ "$file" != */* ]]; then
        file="$BACKUP_DIR/$file"
    fi
    [[ -r "$file" ]] || die "$file is not a readable file"
    echo "mysql-backup: restoring $DATABASE from $file"
    "$MYSQL" --defaults-extra-file="$OPTIONS" --default-character-set=utf8mb4 \
        "$DATABASE" <"$file"
    echo "mysql-backup: restored $DATABASE from $file"
}

case "${1:-}" in
    dump)
        options_file
        dump
        ;;
    restore)
        options_file
        restore "${2:-}"
        ;;
    list) dumps ;;
    *) die "usage: mysql-backup.sh dump | restore [FILE] | list" ;;
esac
