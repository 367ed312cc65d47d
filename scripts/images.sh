#!/usr/bin/env bash
# scripts/images.sh ARCH... — the image tarballs of `make images` (docs/images.md).
#
# For each image of ours (edge-controller, edge-coredns) and each ARCH it
# cross-builds a static binary (CGO_ENABLED=0), then packs them with
# build/images into _output/images/<name>.tar: an OCI image layout holding a
# multi-arch index tagged $IMAGE_REPOSITORY/<name>:$EDGE_VERSION, which
# `ctr -n k8s.io images import` loads. It prints each tarball's sha256 and
# writes <name>.tar.sha256 next to it.
#
# Warm runs are quick: every binary and tarball has a stamp holding the key of
# its inputs (Go version, arch, flags, the sources it is built from), and is
# rebuilt only when the key changes.
#
# Environment: IMAGE_REPOSITORY, EDGE_VERSION (both required; the Makefile
# passes its defaults), LDFLAGS (edge-controller's, from the Makefile),
# IMAGES_OUT (default _output/images).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH=/usr/local/go/bin:$PATH

die() { echo "images: $*" >&2; exit 1; }
log() { echo "images: $*" >&2; }
key_of() { sha256sum | cut -c1-64; }

[ $# -gt 0 ] || die "usage: scripts/images.sh ARCH... (amd64 arm64)"
for a in "$@"; do
  case $a in amd64 | arm64) ;; *) die "unsupported arch '$a': use amd64 and/or arm64" ;; esac
done
ARCHES=("$@")
: "${IMAGE_REPOSITORY:?set IMAGE_REPOSITORY (make images sets it; default docker.io/superedge)}"
: "${EDGE_VERSION:?set EDGE_VERSION (make images sets it to the Makefile VERSION)}"
LDFLAGS=${LDFLAGS:-"-s -w"}
OUT=${IMAGES_OUT:-$ROOT/_output/images}
WORK=$OUT/.work
STAMPS=$WORK/stamps
mkdir -p "$OUT" "$WORK/bin" "$STAMPS"
GO_VERSION=$(go env GOVERSION)
# The recipe of this script is part of every key: changing it rebuilds all.
RECIPE=$(key_of <"$0")

# build_bin NAME ARCH MODDIR PKG LDFLAGS SRCKEY -> $WORK/bin/NAME-ARCH
build_bin() {
  local name=$1 arch=$2 moddir=$3 pkg=$4 ldflags=$5 srckey=$6
  local out=$WORK/bin/$name-$arch stamp=$STAMPS/$name-$arch key start
  key=$(printf '%s\n' "$RECIPE" "$GO_VERSION" "$arch" "$pkg" "$ldflags" "$srckey" | key_of)
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
    return
  fi
  start=$(date +%s)
  rm -f "$stamp"
  if ! CGO_ENABLED=0 GOOS=linux GOARCH=$arch nice -n 10 go build -C "$moddir" -trimpath -buildvcs=false \
      -ldflags "$ldflags" -o "$out.tmp" "$pkg" >"$WORK/$name-$arch.log" 2>&1; then
    tail -n 40 "$WORK/$name-$arch.log" >&2
    rm -f "$out.tmp"
    die "building $name for $arch failed; full log: $WORK/$name-$arch.log"
  fi
  mv -f "$out.tmp" "$out"
  echo "$key" >"$stamp"
  log "built $name for $arch ($(du -h "$out" | cut -f1)) in $(($(date +%s) - start))s"
}

# Key of the main module's sources a package is built from: every .go file
# of its non-standard dependencies inside this module, plus go.mod and go.sum.
main_src_key() {
  local pkg=$1
  {
    cat go.mod go.sum
    go list -deps -f '{{if and (not .Standard) .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}' "$pkg" |
      while read -r d; do for f in "$d"/*.go; do case $f in *_test.go) ;; *) echo "$f"; cat "$f" ;; esac; done; done
  } | key_of
}

# The builder itself.
TOOL_KEY=$(cat build/images/go.mod build/images/go.sum build/images/*.go | key_of)
build_bin images "$(go env GOHOSTARCH)" build/images . "-s -w" "$TOOL_KEY"
TOOL=$WORK/bin/images-$(go env GOHOSTARCH)

# pack NAME ENTRYPOINT USER [builder flags...]: one tarball from the NAME-<arch> binaries.
pack() {
  local name=$1 entry=$2 user=$3
  shift 3
  local ref=$IMAGE_REPOSITORY/$name:$EDGE_VERSION tar=$OUT/$name.tar stamp=$STAMPS/$name.tar key args=()
  key=$( {
    printf '%s\n' "$RECIPE" "$ref" "$entry" "$user" "$*" "$TOOL_KEY"
    for a in "${ARCHES[@]}"; do echo "$a"; sha256sum <"$WORK/bin/$name-$a"; done
  } | key_of)
  for a in "${ARCHES[@]}"; do args+=(-bin "$a=$entry=$WORK/bin/$name-$a"); done
  if [ ! -f "$tar" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$key" ]; then
    rm -f "$stamp"
    "$TOOL" build -o "$tar" -ref "$ref" -entrypoint "$entry" -user "$user" "${args[@]}" "$@"
    (cd "$OUT" && sha256sum "$name.tar" >"$name.tar.sha256")
    echo "$key" >"$stamp"
  fi
  echo "$(cut -d' ' -f1 "$OUT/$name.tar.sha256")  $tar  $ref  ($(du -h "$tar" | cut -f1), ${ARCHES[*]})"
}

# edge-controller: the main module's cmd/edge-controller, stamped like bin/edgeadm.
EC_KEY=$(main_src_key ./cmd/edge-controller)
for a in "${ARCHES[@]}"; do
  build_bin edge-controller "$a" "$ROOT" ./cmd/edge-controller "$LDFLAGS" "$EC_KEY"
done
pack edge-controller /edge-controller 65532:65532

# edge-coredns: CoreDNS with the edge's plugins, from build/coredns (its own module).
DNS_KEY=$(cat build/coredns/go.mod build/coredns/go.sum build/coredns/*.go | key_of)
for a in "${ARCHES[@]}"; do
  build_bin edge-coredns "$a" build/coredns . "-s -w" "$DNS_KEY"
done
# Non-root, with cap_net_bind_service on the binary, as upstream's image: port
# 53 on the node's address (manifests/templates/55-edge-coredns.yaml).
pack edge-coredns /coredns 65532:65532 -netbind /coredns
