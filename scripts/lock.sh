#!/usr/bin/env bash
# `make lock`: one resolution for the whole project (uv.lock, from pyproject.toml), and
# the requirement files exported from it with hashes. Every set is a slice of the same
# resolution, so a package shared by two sets has the same version in both.
#
#   scripts/lock.sh                    re-resolve (keeping every pin it can), then export
#   scripts/lock.sh --upgrade NAME     the same, moving only NAME (and what it drags along)
#   scripts/lock.sh --export           export only, from uv.lock as it is
#   scripts/lock.sh --check            fail if uv.lock is stale for pyproject.toml or
#                                      requirements/*.txt differ from it (offline)
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}

# file: the extras it holds. backend/frontend go into the images, run into `make run`,
# dev into the test venv.
sets=(
  "backend:--extra backend"
  "frontend:--extra frontend"
  "run:--extra backend --extra frontend"
  "dev:--extra dev"
)

export_to() {
  local dir=$1 entry name
  for entry in "${sets[@]}"; do
    name=${entry%%:*}
    # shellcheck disable=SC2086 # the extras are separate words on purpose
    "$UV" export --frozen --no-emit-project --quiet ${entry#*:} \
      -o "$dir/$name.txt" >/dev/null
    # The header names the output path: keep it the same wherever the export ran.
    sed -i "s#-o $dir/$name.txt#-o requirements/$name.txt#" "$dir/$name.txt"
  done
}

case ${1:-} in
  --check)
    status=0
    # uv.lock still satisfies pyproject.toml (no network: the lock carries the metadata).
    if ! "$UV" lock --check --offline --python 3.11 --quiet; then
      echo "lock: uv.lock does not match pyproject.toml: run make lock" >&2
      status=1
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    export_to "$tmp"
    for entry in "${sets[@]}"; do
      name=${entry%%:*}
      if ! diff -u "requirements/$name.txt" "$tmp/$name.txt"; then
        echo "lock: requirements/$name.txt is not what uv.lock exports: run make lock" >&2
        status=1
      fi
    done
    exit "$status"
    ;;
  --export) ;;
  --upgrade)
    "$UV" lock --python 3.11 --upgrade-package "${2:?--upgrade needs a package name}"
    ;;
  "")
    "$UV" lock --python 3.11
    ;;
  *)
    echo "usage: $0 [--upgrade NAME | --export | --check]" >&2
    exit 2
    ;;
esac
export_to requirements
