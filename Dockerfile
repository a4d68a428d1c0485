# clusterip-demo's two app images, from this one file: the build argument TIER names the
# tier. Build from the repository root (the build context):
#   docker build --build-arg TIER=backend  -t clusterip-demo/backend:0.1.0 .
#   docker build --build-arg TIER=frontend -t clusterip-demo/frontend:0.1.0 .
# (or `make images`, which builds both). What TIER selects: requirements/<tier>.txt, the
# <tier>/ package, and the last stage named for the tier (its labels, port and command).
#
# python:3.11.16-slim-bookworm is published for linux/amd64 and linux/arm64 (and more).
# For byte-for-byte repeatable builds pin its digest too, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:<digest>
# with the digest from `docker buildx imagetools inspect python:3.11.16-slim-bookworm`.
# Where Docker Hub cannot be reached, build a stand-in base from Debian's packages and
# use it: scripts/standin-images.sh, then `make images PYTHON_IMAGE=<the stand-in>`.
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm
# No default on purpose: the tiers differ in code, port and command, and a default would
# let `docker build -t clusterip-demo/frontend .` put a backend under the frontend's name.
# Without it, or with a tier that has no stage here, the build stops before installing
# anything: the classic builder at the check at the top of the builder stage, which names
# the argument; BuildKit already at the last FROM, which then names no stage.
ARG TIER

# --- builder: a virtualenv with the tier's pinned requirements -------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

ARG TIER
# Fails with a message naming the argument, before anything is copied or installed.
RUN case "${TIER}" in backend|frontend) ;; \
      *) echo "Dockerfile: build with --build-arg TIER=backend or TIER=frontend (TIER='${TIER}')" >&2; \
         exit 1 ;; \
    esac
COPY requirements/${TIER}.txt /tmp/requirements.txt
# The requirements are exported from uv.lock with the hash of every file PyPI serves:
# --require-hashes refuses anything else, and --only-binary=:all: refuses to build from
# source (every dependency ships a manylinux wheel for x86_64 and aarch64: no compiler).
# pip and setuptools are removed from the venv afterwards: the runtime installs nothing.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
       -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- runtime: what both tiers share ----------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.licenses="Apache-2.0"

# A numeric, non-root user with a passwd entry (Python's getpass and friends want one).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

# HOST: the apps bind 127.0.0.1 unless told otherwise; in a container they must listen
# on every interface for probes and Service traffic to reach them.
# HOME=/tmp: the only writable path once the root filesystem is read-only (emptyDir).
ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY common/ ./common/
# TIER is declared this late so that the steps above stay one cached layer for both tiers.
ARG TIER
# backend/ carries migrations/ and alembic.ini; frontend/ its templates/ and static/.
COPY ${TIER}/ ./${TIER}/
# Byte-compile now: at run time the filesystem is read-only.
RUN python -m compileall -q common "${TIER}"

USER 10001:10001

# --- one stage per tier: its labels, port and command ----------------------------------
# lab/runtime.py reads a tier's command from its stage here (the lab runs the same CMD).
FROM runtime AS backend
LABEL org.opencontainers.image.title="clusterip-demo-backend" \
      org.opencontainers.image.description="Guestbook API behind the ClusterIP Service backend:8000"
ENV PORT=8000
EXPOSE 8000
# `python -m backend.migrate` runs the migrations (init container, compose `migrate`).
CMD ["python", "-m", "backend"]

FROM runtime AS frontend
LABEL org.opencontainers.image.title="clusterip-demo-frontend" \
      org.opencontainers.image.description="Guestbook page that shows the route through the ClusterIP Service backend"
ENV PORT=8080
EXPOSE 8080
CMD ["python", "-m", "frontend"]

# --- the image: the stage TIER names ---------------------------------------------------
FROM ${TIER}
