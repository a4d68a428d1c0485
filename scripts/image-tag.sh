#!/usr/bin/env bash
# Prints the tag k8s/base/kustomization.yaml pins for the project's images: the one source
# of truth for `make images`, the tests and the lab. Both images must share it.
set -euo pipefail
cd "$(dirname "$0")/.."
tags=$(awk '
  $1 == "-" && $2 == "name:" { name = $3 }
  $1 == "name:" { name = $2 }
  $1 == "newTag:" && name ~ /^clusterip-demo\// { print $2 }
' k8s/base/kustomization.yaml | tr -d "\"'" | sort -u)
if [[ $(wc -l <<<"$tags") != 1 || -z $tags ]]; then
  echo "image-tag: expected one newTag for clusterip-demo/* in k8s/base/kustomization.yaml, got: ${tags:-none}" >&2
  exit 1
fi
echo "$tags"
