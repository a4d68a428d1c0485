#!/bin/sh
# Stand-in entrypoint: what the official redis image's entrypoint does that matters here.
set -eu
# `docker run redis --maxmemory 64mb` means `redis-server --maxmemory 64mb`.
case "${1:-}" in
  -*) set -- redis-server "$@" ;;
  "") set -- redis-server ;;
esac
if [ "$1" = "redis-server" ]; then
  shift
  # No config file: the official image's build default is protected mode off.
  set -- redis-server --protected-mode no "$@"
  if [ "$(id -u)" = "0" ]; then
    find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
