#!/usr/bin/env bash
# Builds the offline install package of edge hosts (layout: install-pkg/README.md):
#   $OUT/kube-linux-<arch>-v<k8s>.tar.gz and its .sha256 (what --install-pkg-sha256 takes)
#
# The binaries are the test environment's: the same pins (build/versions.env and the
# build/<group> modules) and the same recipes, because scripts/test-env.sh builds them.
# For the host's arch the package holds the very files the e2e tests run
# (.cache/test-env); another arch is cross-built by test-env.sh with GOARCH set, into
# .cache/install-pkg/<arch>. runc needs cgo and libseccomp: cross-building it needs a C
# cross compiler and libseccomp-dev for the target arch ('deps'); without them the build
# fails rather than ship a runc without seccomp.
#
# Usage: scripts/install-pkg.sh [build [ARCH...] | deps ARCH... | help]
#   build ARCH...  build the package for each ARCH (amd64, arm64; default: the host's)
#   deps ARCH...   install what cross-building for ARCH needs (root; Debian's apt):
#                  dpkg --add-architecture ARCH, gcc-<triplet>, libc6-dev-ARCH-cross, libseccomp-dev:ARCH,
#                  and qemu-user-static, with which the build runs the cross-built runc once
#
# Environment:
#   EDGEADM_INSTALL_PKG_OUT  output folder (default: <repo>/_output/install-pkg)
#   EDGEADM_TEST_CACHE       the test environment's cache (see scripts/test-env.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../build/versions.env
source "$ROOT/build/versions.env"

OUT=${EDGEADM_INSTALL_PKG_OUT:-$ROOT/_output/install-pkg}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
CACHE=$ROOT/.cache/install-pkg
TEST_ENV=$ROOT/scripts/test-env.sh

die() { echo "install-pkg: error: $*" >&2; exit 1; }
log() { echo "install-pkg: $*"; }

setup_go() {
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH=/usr/local/go/bin:$PATH
  fi
  command -v go >/dev/null || die "go not found (expected Go 1.26 at /usr/local/go)"
  HOST_ARCH=$(go env GOHOSTARCH)
}

# triplet ARCH: Debian's multiarch triplet.
triplet() {
  case $1 in
    amd64) echo x86_64-linux-gnu ;;
    arm64) echo aarch64-linux-gnu ;;
    *) die "unsupported arch '$1' (want amd64 or arm64)" ;;
  esac
}

install_deps() {
  local arch t pkgs=()
  [ "$(id -u)" = 0 ] || die "installing cross-build dependencies needs root"
  for arch in "$@"; do
    [ "$arch" = "$HOST_ARCH" ] && continue
    t=$(triplet "$arch")
    dpkg --print-foreign-architectures | grep -qx "$arch" || { log "dpkg --add-architecture $arch"; dpkg --add-architecture "$arch"; }
    pkgs+=("gcc-${t//_/-}" "libc6-dev-$arch-cross" "libseccomp-dev:$arch")
  done
  # Optional: lets the build run the cross-built runc once to see its libseccomp.
  [ ${#pkgs[@]} -eq 0 ] || pkgs+=(qemu-user-static)
  [ ${#pkgs[@]} -gt 0 ] || { log "deps: nothing to install for the host's own arch"; return; }
  log "apt: installing ${pkgs[*]}"
  mkdir -p "$CACHE"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"; } \
    >"$CACHE/apt.log" 2>&1 || { tail -n 30 "$CACHE/apt.log" >&2; die "apt-get failed; full log: $CACHE/apt.log"; }
}

# binaries ARCH: build (or find up to date) the node binaries and the pause image for
# ARCH with scripts/test-env.sh, and set BIN, CNI_BIN, PAUSE_TAR from its layout.
binaries() {
  local arch=$1 env=(EDGEADM_NODE_ONLY=1)
  if [ "$arch" != "$HOST_ARCH" ]; then
    local t
    t=$(triplet "$arch")
    command -v "$t-gcc" >/dev/null && [ -f "/usr/lib/$t/libseccomp.a" ] ||
      die "cross-building runc for $arch needs $t-gcc and libseccomp-dev:$arch (runc without seccomp is not shipped); run: sudo scripts/install-pkg.sh deps $arch"
    env+=(GOARCH="$arch" CC="$t-gcc" PKG_CONFIG_LIBDIR="/usr/lib/$t/pkgconfig:/usr/share/pkgconfig"
      EDGEADM_TEST_CACHE="$CACHE/$arch")
  fi
  env "${env[@]}" "$TEST_ENV" binaries
  env "${env[@]}" "$TEST_ENV" images
  local paths
  paths=$(env "${env[@]}" "$TEST_ENV" print-paths)
  BIN=$(sed -n 's/^EDGEADM_TEST_BIN=//p' <<<"$paths")
  CNI_BIN=$(sed -n 's/^EDGEADM_TEST_CNI_BIN=//p' <<<"$paths")
  PAUSE_TAR=$(sed -n 's/^EDGEADM_TEST_PAUSE_TAR=//p' <<<"$paths")
  [ -n "$BIN" ] && [ -n "$CNI_BIN" ] && [ -n "$PAUSE_TAR" ] || die "scripts/test-env.sh print-paths gave no layout"
}

# check_binary FILE ARCH: a static Go binary for linux/ARCH. runc must have cgo and the
# seccomp tag: a runc without seccomp fails every pod ("seccomp not supported").
check_binary() {
  local f=$1 arch=$2 info
  info=$(go version -m "$f") || die "$f is not a Go binary"
  grep -q "GOARCH=$arch\$" <<<"$info" || die "$f is not built for $arch"
  grep -q "GOOS=linux\$" <<<"$info" || die "$f is not built for linux"
  if readelf -l "$f" 2>/dev/null | grep -q 'Requesting program interpreter'; then
    die "$f is dynamically linked; edge hosts get static binaries"
  fi
  if [ "$(basename "$f")" = runc ]; then
    grep -q 'CGO_ENABLED=1$' <<<"$info" && grep -Eq -- '-tags=(.*,)?seccomp(,|$)' <<<"$info" ||
      die "$f was built without seccomp (needs CGO_ENABLED=1 and -tags seccomp); refusing to ship it"
    # Where it can run (natively, or under qemu-user-static for another arch), it must
    # report its libseccomp.
    local run=()
    if [ "$arch" != "$HOST_ARCH" ]; then
      local q
      q=qemu-$(triplet "$arch" | cut -d- -f1)-static
      command -v "$q" >/dev/null && run=("$q")
    fi
    if [ "$arch" = "$HOST_ARCH" ] || [ ${#run[@]} -gt 0 ]; then
      "${run[@]}" "$f" --version | grep -q '^libseccomp: ' || die "$f does not report libseccomp; refusing to ship it"
    fi
  fi
}

# check_containerd_config CONTAINERD FILE: the host's containerd of the same version
# parses the config, sees its values, and merges a host drop-in over it as
# install-pkg/README.md says join uses it.
check_containerd_config() {
  local ctd=$1 cfg=$2 tmp out
  tmp=$(mktemp -d)
  mkdir "$tmp/conf.d"
  sed "s#/etc/containerd/conf.d/#$tmp/conf.d/#" "$cfg" >"$tmp/config.toml"
  printf 'version = 3\n[plugins.%s]\n  restrict_oom_score_adj = true\n' "'io.containerd.cri.v1.runtime'" >"$tmp/conf.d/10-edgeadm-host.toml"
  out=$("$ctd" --config "$tmp/config.toml" config dump 2>&1) || { rm -rf "$tmp"; die "containerd rejects $cfg: $out"; }
  rm -rf "$tmp"
  local want
  for want in "sandbox = '$PAUSE_IMAGE'" "SystemdCgroup = true" "restrict_oom_score_adj = true" "bin_dirs = \['/opt/cni/bin'\]"; do
    grep -q "$want" <<<"$out" || die "containerd's view of $cfg lacks \"$want\":"$'\n'"$out"
  done
}

build_pkg() {
  local arch=$1 start
  start=$(date +%s)
  binaries "$arch"
  local stage=$CACHE/stage-$arch
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/cni/bin" "$stage/images" "$stage/config" "$OUT"
  local b
  for b in kubelet kubectl crictl containerd containerd-shim-runc-v2 ctr runc; do
    [ -f "$BIN/$b" ] || die "$BIN/$b is missing"
    check_binary "$BIN/$b" "$arch"
    cp "$BIN/$b" "$stage/bin/$b"
  done
  for b in bridge host-local loopback portmap; do
    [ -f "$CNI_BIN/$b" ] || die "$CNI_BIN/$b is missing"
    check_binary "$CNI_BIN/$b" "$arch"
    cp "$CNI_BIN/$b" "$stage/cni/bin/$b"
  done
  cp "$PAUSE_TAR" "$stage/images/pause.tar"
  cp -r "$ROOT/install-pkg/systemd" "$stage/"
  sed "s#@PAUSE_IMAGE@#$PAUSE_IMAGE#" "$ROOT/install-pkg/config/containerd.toml" >"$stage/config/containerd.toml"
  ! grep -q '@[A-Z_]*@' "$stage/config/containerd.toml" || die "containerd.toml has an unfilled placeholder"
  # The host's containerd (same pin) reads the config; the build already made it.
  check_containerd_config "$HOST_CONTAINERD" "$stage/config/containerd.toml"

  # edgehub and its unit: both or neither (install-pkg/README.md). Built here from this
  # tree, static, for ARCH; while cmd/edgehub has no main package yet, the package goes
  # without both and join warns that the node has no offline autonomy.
  if compgen -G "$ROOT/cmd/edgehub/*.go" >/dev/null; then
    [ -f "$ROOT/install-pkg/systemd/edgehub.service" ] || die "cmd/edgehub exists but install-pkg/systemd/edgehub.service does not"
    CGO_ENABLED=0 GOOS=linux GOARCH=$arch nice -n 10 go build -C "$ROOT" -trimpath -ldflags "-s -w" \
      -o "$stage/bin/edgehub" ./cmd/edgehub || die "go build ./cmd/edgehub for $arch failed"
    check_binary "$stage/bin/edgehub" "$arch"
  else
    log "cmd/edgehub is not there yet: kube-linux-$arch goes without bin/edgehub and systemd/edgehub.service"
    rm -f "$stage/systemd/edgehub.service"
  fi

  local file
  file=$OUT/kube-linux-$arch-v${KUBERNETES_VERSION#v}.tar.gz
  "$TOOL" pack -stage "$stage" -o "$file" -arch "$arch" -kubernetes-version "$KUBERNETES_VERSION" \
    -version kubernetes="$KUBERNETES_VERSION" -version containerd="$CONTAINERD_VERSION" -version runc="$RUNC_VERSION" \
    -version cni-plugins="$CNI_PLUGINS_VERSION" -version crictl="$CRICTL_VERSION" \
    -image images/pause.tar="$PAUSE_IMAGE"
  rm -rf "$stage"
  log "kube-linux-$arch: $(du -h "$file" | cut -f1) in $(($(date +%s) - start))s: $file"
}

main() {
  local cmd=${1:-build}
  [ $# -eq 0 ] || shift
  setup_go
  case $cmd in
    build)
      local arches=("$@")
      [ ${#arches[@]} -gt 0 ] || arches=("$HOST_ARCH")
      local a
      for a in "${arches[@]}"; do triplet "$a" >/dev/null; done
      mkdir -p "$CACHE/tools"
      # The packer uses the same reader edgeadm join does (pkg/installpkg).
      TOOL=$CACHE/tools/installpkg
      GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly" nice -n 10 go build -C "$ROOT" -o "$TOOL" ./build/installpkg
      # The host's node binaries first: its containerd checks every package's config.
      binaries "$HOST_ARCH"
      HOST_CONTAINERD=$BIN/containerd
      for a in "${arches[@]}"; do build_pkg "$a"; done
      ;;
    deps) [ $# -gt 0 ] || die "deps: name the arch(es) to cross-build for"; install_deps "$@" ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (want build, deps or help)" ;;
  esac
}

main "$@"
