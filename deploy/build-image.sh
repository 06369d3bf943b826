#!/usr/bin/env bash
# Build the hashfed container image FROM scratch around a static binary.
#   bash deploy/build-image.sh [TAG]      (default tag: hashfed:dev)
# Needs Go and a Docker engine; pulls nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-hashfed:dev}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
export GOTOOLCHAIN=local
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$ctx/hashfed" ./cmd/hashfed
mkdir -p "$ctx/data/tmp"
cp deploy/Dockerfile "$ctx/Dockerfile"
docker build -q -t "$tag" "$ctx" >/dev/null
echo "$tag"
