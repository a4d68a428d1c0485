#!/usr/bin/env bash
# `make images`: builds clusterip-demo/backend and clusterip-demo/frontend from the one
# Dockerfile (--build-arg TIER names the tier) with the machine's container engine
# (Docker or podman), for the host's architecture, tagged
# with the tag k8s/base/kustomization.yaml pins: the manifests and the images cannot drift.
#
#   make images                                                 # on python:3.11.16-slim-bookworm
#   make images PYTHON_IMAGE=clusterip-demo/standin-python:3.11-bookworm   # no Docker Hub
#
# Prints the two image references it built, one per line.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=$(scripts/container-engine.sh)
TAG=$(scripts/image-tag.sh)

build_args=()
[[ -n ${PYTHON_IMAGE:-} ]] && build_args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

for tier in backend frontend; do
  ref=clusterip-demo/$tier:$TAG
  echo "images: building $ref${PYTHON_IMAGE:+ on $PYTHON_IMAGE}" >&2
  # --network host: a builder on a private engine (scripts/docker-engine.sh) has no
  # route out otherwise, and pip must reach the package index.
  if ! $ENGINE build --quiet --network host --build-arg "TIER=$tier" "${build_args[@]}" \
    --label "org.opencontainers.image.version=$TAG" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.base.name=${PYTHON_IMAGE:-python:3.11.16-slim-bookworm}" \
    -f Dockerfile -t "$ref" . >/dev/null; then
    echo "images: building $ref failed. Without Docker Hub, build the stand-in base first:" >&2
    echo "  sudo scripts/standin-images.sh && make images PYTHON_IMAGE=clusterip-demo/standin-python:3.11-bookworm" >&2
    exit 1
  fi
  echo "$ref"
done
