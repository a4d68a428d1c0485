#!/bin/bash
# Stand-in entrypoint: on first start, what the official mysql image's entrypoint does
# (temporary socket-only server, database, user, root password), then exec the server.
set -euo pipefail

log() { echo "$(date -u +%FT%TZ) [Entrypoint] (stand-in) $*" >&2; }

# VAR or VAR_FILE (a mounted secret), never both: as the official image.
file_env() {
  local var=$1 file_var="${1}_FILE" default=${2:-}
  if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
    log "both $var and $file_var are set (but are exclusive)"
    exit 1
  fi
  local value=$default
  if [[ -n ${!var:-} ]]; then
    value=${!var}
  elif [[ -n ${!file_var:-} ]]; then
    value=$(<"${!file_var}")
  fi
  export "$var"="$value"
  unset "$file_var"
}

# `docker run mysql --flag` means `mysqld --flag`.
if [[ ${1:-} == -* ]]; then
  set -- mysqld "$@"
fi
if [[ ${1:-} != mysqld && ${1:-} != mariadbd ]]; then
  exec "$@"
fi

datadir=/var/lib/mysql
for arg in "$@"; do
  case $arg in --datadir=*) datadir=${arg#--datadir=} ;; esac
done

if [[ $(id -u) == 0 ]]; then
  mkdir -p "$datadir"
  chown -R mysql:mysql "$datadir" /var/run/mysqld
  exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" "$@"
fi

sql_escape() { printf '%s' "${1//\'/\'\'}"; }

if [[ ! -d $datadir/mysql ]]; then
  file_env MYSQL_ROOT_PASSWORD
  file_env MYSQL_DATABASE
  file_env MYSQL_USER
  file_env MYSQL_PASSWORD
  if [[ -z $MYSQL_ROOT_PASSWORD && -z ${MYSQL_ALLOW_EMPTY_PASSWORD:-} && -z ${MYSQL_RANDOM_ROOT_PASSWORD:-} ]]; then
    log "database is uninitialized and password option is not specified"
    log "You need to specify one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD and MYSQL_RANDOM_ROOT_PASSWORD"
    exit 1
  fi
  log "Initializing database files in $datadir"
  mkdir -p "$datadir"
  mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve >/dev/null
  log "Starting temporary server"
  "$@" --datadir="$datadir" --skip-networking --socket=/var/run/mysqld/mysqld.sock &
  pid=$!
  for _ in $(seq 1 300); do
    mariadb-admin --socket=/var/run/mysqld/mysqld.sock ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { log "temporary server exited"; exit 1; }
    sleep 0.1
  done
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "DELETE FROM mysql.user WHERE user NOT IN ('mysql.sys', 'mariadb.sys', 'root') OR host NOT IN ('localhost');"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sql_escape "$MYSQL_ROOT_PASSWORD")';"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(sql_escape "$MYSQL_ROOT_PASSWORD")';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [[ -n $MYSQL_DATABASE ]]; then
      log "Creating database $MYSQL_DATABASE"
      echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
    fi
    if [[ -n $MYSQL_USER && -n $MYSQL_PASSWORD ]]; then
      log "Creating user $MYSQL_USER"
      echo "CREATE USER '$(sql_escape "$MYSQL_USER")'@'%' IDENTIFIED BY '$(sql_escape "$MYSQL_PASSWORD")';"
      if [[ -n $MYSQL_DATABASE ]]; then
        echo "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$(sql_escape "$MYSQL_USER")'@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket=/var/run/mysqld/mysqld.sock -uroot
  log "Stopping temporary server"
  kill "$pid"
  wait "$pid" || true
  log "MySQL init process done. Ready for start up."
fi

exec "$@" --datadir="$datadir"
