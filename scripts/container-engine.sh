#!/usr/bin/env bash
# Prints the container engine command this machine has: `docker` when a Docker
# daemon answers (DOCKER_HOST, the default socket, or scripts/docker-engine.sh's
# private one), else `podman`. Exits 1 with the reason when there is none.
set -euo pipefail

private=/run/clusterip-demo/docker.sock
if command -v docker >/dev/null; then
  if docker info >/dev/null 2>&1; then
    echo docker
    exit 0
  fi
  if [[ -z ${DOCKER_HOST:-} && -S $private ]] && DOCKER_HOST=unix://$private docker info >/dev/null 2>&1; then
    echo "env DOCKER_HOST=unix://$private docker"
    exit 0
  fi
fi
if command -v podman >/dev/null && podman info >/dev/null 2>&1; then
  echo podman
  exit 0
fi
echo "no container engine answers: start Docker (or sudo scripts/docker-engine.sh start), or install podman" >&2
exit 1
