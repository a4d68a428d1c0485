#!/usr/bin/env bash
# make e2e-kind: the whole app on a real (kind) cluster, end to end.
#
#   1. build both images from this checkout with `make images` (tag from k8s/base/kustomization.yaml)
#   2. create the kind cluster if it does not exist, and load the images into it
#   3. kubectl apply -k k8s/, wait for the StatefulSet and every Deployment
#   4. port-forward svc/frontend and run tests/e2e against it:
#        the page answers; /api/spread over fresh connections reaches all 3 backend
#        pods; a message written (201) survives deleting a backend pod
#
# Needs docker (with a running engine), kind and kubectl. Nothing here runs on the
# project's own development machines, which have no container engine.
#
# Environment:
#   KIND_CLUSTER_NAME   cluster to use or create            (default: clusterip-demo)
#   E2E_LOCAL_PORT      local port for the port-forward    (default: 18080)
#   E2E_KEEP_CLUSTER=1  keep a cluster this script created (default: delete it)
#   PYTHON              interpreter with pytest            (default: .venv/bin/python)
set -euo pipefail

die() {
    printf 'e2e-kind: ERROR: %s\n' "$*" >&2
    exit 1
}
note() { printf 'e2e-kind: %s\n' "$*" >&2; }

cd "$(dirname "$0")/.."

CLUSTER="${KIND_CLUSTER_NAME:-clusterip-demo}"
CONTEXT="kind-${CLUSTER}"
NAMESPACE="clusterip-demo"
LOCAL_PORT="${E2E_LOCAL_PORT:-18080}"
PYTHON="${PYTHON:-.venv/bin/python}"

# --- preflight: fail loudly, and say what is missing ---------------------------------
command -v docker >/dev/null 2>&1 ||
    die "docker is not installed (https://docs.docker.com/engine/install/); this target needs a container engine"
docker info >/dev/null 2>&1 ||
    die "docker is installed but its engine is not reachable ('docker info' failed): start Docker, or check DOCKER_HOST"
command -v kind >/dev/null 2>&1 ||
    die "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
command -v kubectl >/dev/null 2>&1 ||
    die "kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3 || true)"
[ -n "$PYTHON" ] || die "no Python interpreter: create .venv (make dev) or set PYTHON"
"$PYTHON" -c 'import pytest' 2>/dev/null ||
    die "$PYTHON cannot import pytest: run it from the project's venv (make dev) or set PYTHON"

TAG="$(scripts/image-tag.sh)" || die "could not read one image tag (newTag) from k8s/base/kustomization.yaml"
BACKEND_IMAGE="clusterip-demo/backend:${TAG}"
FRONTEND_IMAGE="clusterip-demo/frontend:${TAG}"

KUBECTL=(kubectl --context "$CONTEXT" --namespace "$NAMESPACE")
PF_PID=""
CREATED=0

diagnose() {
    note "diagnostics follow"
    "${KUBECTL[@]}" get pods,svc,endpointslices -o wide >&2 || true
    "${KUBECTL[@]}" get events --sort-by=.lastTimestamp >&2 || true
    for app in mysql redis backend frontend; do
        "${KUBECTL[@]}" logs -l "app.kubernetes.io/name=${app}" --all-containers \
            --prefix --tail=50 >&2 || true
    done
}

cleanup() {
    status=$?
    if [ -n "$PF_PID" ]; then kill "$PF_PID" 2>/dev/null || true; fi
    if [ "$status" -ne 0 ]; then diagnose; fi
    if [ "$CREATED" -eq 1 ] && [ "${E2E_KEEP_CLUSTER:-0}" != "1" ]; then
        note "deleting the kind cluster ${CLUSTER} (E2E_KEEP_CLUSTER=1 keeps it)"
        kind delete cluster --name "$CLUSTER" || true
    fi
    if [ "$status" -ne 0 ]; then note "FAILED (exit ${status})"; else note "passed"; fi
    exit "$status"
}
trap cleanup EXIT

# --- 1. images -------------------------------------------------------------------------
note "building ${BACKEND_IMAGE} and ${FRONTEND_IMAGE}"
# The same build as `make images` (PYTHON_IMAGE is passed through when set).
scripts/build-images.sh >/dev/null

# --- 2. cluster ------------------------------------------------------------------------
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    note "creating kind cluster ${CLUSTER}"
    kind create cluster --name "$CLUSTER" --wait 120s
    CREATED=1
fi
kind load docker-image --name "$CLUSTER" "$BACKEND_IMAGE" "$FRONTEND_IMAGE"

# --- 3. apply and wait -----------------------------------------------------------------
kubectl --context "$CONTEXT" apply -k k8s/
# MySQL's first start initialises the data directory: give it time.
"${KUBECTL[@]}" rollout status statefulset/mysql --timeout=600s
for deployment in redis backend frontend; do
    "${KUBECTL[@]}" rollout status "deployment/${deployment}" --timeout=300s
done

# --- 4. port-forward and the checks ----------------------------------------------------
"${KUBECTL[@]}" port-forward svc/frontend "${LOCAL_PORT}:80" >/dev/null 2>&1 &
PF_PID=$!
ready=0
for _ in $(seq 1 60); do
    kill -0 "$PF_PID" 2>/dev/null || die "kubectl port-forward svc/frontend exited"
    if "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:${LOCAL_PORT}/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 1
done
[ "$ready" -eq 1 ] || die "the frontend did not answer /readyz through the port-forward within 60 s"

note "running tests/e2e against http://127.0.0.1:${LOCAL_PORT}"
E2E_BASE_URL="http://127.0.0.1:${LOCAL_PORT}" \
E2E_KUBECTL_CONTEXT="$CONTEXT" \
E2E_NAMESPACE="$NAMESPACE" \
    "$PYTHON" -m pytest tests/e2e -v -p no:cacheprovider
