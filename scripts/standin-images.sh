#!/usr/bin/env bash
# Stand-in base images for machines that cannot reach Docker Hub.
#
#   sudo scripts/standin-images.sh            # build what is missing or out of date
#   sudo scripts/standin-images.sh --force    # rebuild all three
#
# Use it only where `docker pull python:3.11-slim-bookworm` fails (an air-gapped or
# registry-less machine, this project's CI). It builds, from Debian 12's own packages
# (mmdebstrap, no registry needed):
#
#   clusterip-demo/standin-python:3.11-bookworm   → `make images PYTHON_IMAGE=…` builds on it
#   mysql:8.4.11          (Debian's MariaDB 10.11, an entrypoint like the official one's)
#   redis:7.4.11-bookworm (Debian's redis-server 7.0)
#
# The last two carry the exact names k8s/ and docker-compose.yml give the official
# images, so compose and the tests use them without a pull; every one is labelled
# STAND-IN and is not the official image. Where Docker Hub is reachable, do not run
# this: pull the real images (`docker pull mysql:8.4.11` replaces a stand-in tag).
#
# Each image is labelled with a hash of its recipe (this script and its scripts/standins/ folder):
# a later run reuses it by tag while the recipe is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

ENGINE=$(scripts/container-engine.sh)
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PYTHON_TAG=clusterip-demo/standin-python:3.11-bookworm
MYSQL_TAG=$(awk '$1 == "image:" && $2 ~ /^mysql:/ {print $2; exit}' docker-compose.yml)
REDIS_TAG=$(awk '$1 == "image:" && $2 ~ /^redis:/ {print $2; exit}' docker-compose.yml)

log() { echo "standin-images: $*" >&2; }

# The recipe of one stand-in: this script and its folder under scripts/standins/.
recipe() { cat "$0" scripts/standins/"$1"/* | sha256sum | cut -c1-16; }

current() { # tag recipe
  local label
  label=$($ENGINE image inspect --format '{{ index .Config.Labels "clusterip-demo.standin.recipe" }}' "$1" 2>/dev/null) || return 1
  [[ $label == "$2" ]]
}

# A user/group with a fixed id, written before the packages' postinst scripts run, so
# Debian's adduser reuses it: the official images run mysql and redis as 999.
fixed_user() {
  printf "echo '%s:x:999:999::%s:/usr/sbin/nologin' >>\"\$1/etc/passwd\"; echo '%s:x:999:' >>\"\$1/etc/group\"" "$1" "$2" "$1"
}

rootfs() { # kind packages [essential-hook]
  local kind=$1 packages=$2 hook=${3:-true}
  local tag=clusterip-demo/standin-rootfs:$kind
  log "debootstrapping $kind ($packages)"
  # The hooks' "$1" is mmdebstrap's, not ours (the root filesystem being built).
  # shellcheck disable=SC2016
  # The host's extra CA certificates (a TLS-inspecting proxy's) go in, so that pip and
  # apt inside builds trust what the host trusts.
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --essential-hook="$hook" \
    --include="$packages" \
    --customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true' \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1 || true' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" - \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main" |
    $ENGINE import - "$tag" >/dev/null
  echo "$tag"
}

build() { # kind tag packages [essential-hook]
  local kind=$1 tag=$2 packages=$3 hook=${4:-true} sum
  sum=$(recipe "$kind")
  if ((!FORCE)) && current "$tag" "$sum"; then
    log "$tag is up to date (recipe $sum)"
    return
  fi
  local base
  base=$(rootfs "$kind" "$packages" "$hook")
  $ENGINE build --quiet --network host --build-arg "ROOTFS=$base" \
    --label "clusterip-demo.standin.recipe=$sum" -t "$tag" "scripts/standins/$kind" >/dev/null
  $ENGINE rmi "$base" >/dev/null
  log "built $tag ($($ENGINE image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

command -v mmdebstrap >/dev/null || {
  log "mmdebstrap is missing: apt-get install -y mmdebstrap"
  exit 1
}

build python "$PYTHON_TAG" ca-certificates,python3,python3-venv,python-is-python3,passwd
build mysql "$MYSQL_TAG" ca-certificates,mariadb-server,mariadb-client,util-linux "$(fixed_user mysql /nonexistent)"
build redis "$REDIS_TAG" redis-server,util-linux "$(fixed_user redis /var/lib/redis)"
