#!/usr/bin/env bash
# A private Docker engine for machines without systemd (CI, these development VMs).
#
#   sudo scripts/docker-engine.sh start    # containerd + dockerd, socket below
#   export DOCKER_HOST=unix:///run/clusterip-demo/docker.sock
#   sudo scripts/docker-engine.sh stop     # stops both, removes the links and mounts they leave
#
# On a machine whose Docker already runs (a desktop, a CI runner with Docker), you
# do not need this: `make images` and the tests use that engine.
#
# Why the flags: without --iptables=false --ip-forward=false dockerd rewrites the
# host's firewall (FORWARD policy DROP, its own chains) and turns on
# net.ipv4.ip_forward, which the ClusterIP lab and the tests' leave-nothing-behind
# checks forbid. With them, containers on one network still reach each other and
# published ports still work (docker-proxy); nothing reaches outside, so builds use
# --network host. nofile above 20000 fails on these VMs (no CAP_SYS_RESOURCE).
set -euo pipefail

# Images outlive the engine (data root), so stand-ins and app images built once are
# reused by tag by later runs; the runtime state does not.
DATA=${ENGINE_DATA:-/var/lib/clusterip-demo/engine}
RUN=${ENGINE_RUN:-/run/clusterip-demo}
SOCK=$RUN/docker.sock

log() { echo "docker-engine: $*" >&2; }

running() { [[ -S $SOCK ]] && DOCKER_HOST=unix://$SOCK docker info >/dev/null 2>&1; }

start() {
  if running; then
    log "already running at unix://$SOCK"
    return 0
  fi
  # An engine killed uncleanly (a session ended under it) leaves sockets, pid files and
  # mounts that would fool the readiness checks below: clear them first.
  if [[ -e $SOCK || -e $RUN/dockerd.pid || -e $RUN/containerd.pid ]]; then
    stop
  fi
  for bin in containerd dockerd runc; do
    command -v "$bin" >/dev/null || {
      log "$bin is missing: apt-get install -y docker.io runc"
      exit 1
    }
  done
  mkdir -p "$DATA/containerd" "$DATA/docker" "$RUN/containerd" "$RUN/exec"
  cat >"$RUN/containerd.toml" <<EOF
version = 2
root = "$DATA/containerd"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$RUN/containerd/containerd.sock"
[ttrpc]
  address = "$RUN/containerd/containerd.sock.ttrpc"
[debug]
  address = "$RUN/containerd/debug.sock"
EOF
  close_inherited_fds
  setsid containerd --config "$RUN/containerd.toml" >"$RUN/containerd.log" 2>&1 &
  echo $! >"$RUN/containerd.pid"
  wait_for "containerd" test -S "$RUN/containerd/containerd.sock"
  setsid dockerd --containerd "$RUN/containerd/containerd.sock" \
    --data-root "$DATA/docker" --exec-root "$RUN/exec" -H "unix://$SOCK" \
    --pidfile "$RUN/dockerd.pid" --iptables=false --ip-forward=false --ip-masq=false \
    --default-ulimit nofile=20000:20000 --storage-driver overlay2 \
    >"$RUN/dockerd.log" 2>&1 &
  wait_for "dockerd" running
  log "running; export DOCKER_HOST=unix://$SOCK"
}

# A caller's descriptors (a `flock` on a lock file, a pipe) would otherwise be
# inherited by the daemons and held open for as long as they run.
close_inherited_fds() {
  local fd
  for fd in "/proc/$$/fd"/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then
      eval "exec $fd>&-" 2>/dev/null || true
    fi
  done
}

wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 150); do
    "$@" && return 0
    sleep 0.2
  done
  log "$what did not start; its log:"
  tail -n 30 "$RUN/$what.log" >&2 || true
  exit 1
}

stop_pid() {
  local file=$1
  [[ -f $file ]] || return 0
  local pid
  pid=$(cat "$file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  stop_pid "$RUN/dockerd.pid"
  stop_pid "$RUN/containerd.pid"
  # What dockerd leaves behind: its bridges and a bind mount of the host's netns.
  local link
  for link in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^(docker0|br-[0-9a-f]{12})$' || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  local mnt
  awk -v run="$RUN" 'index($2, run) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
  rm -rf "${RUN:?}/exec" "$RUN/containerd" "$SOCK"
  log "stopped"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status)
    if running; then echo "running: unix://$SOCK"; else
      echo "not running"
      exit 3
    fi
    ;;
  socket) echo "unix://$SOCK" ;;
  *)
    echo "usage: $0 start|stop|status|socket" >&2
    exit 2
    ;;
esac
