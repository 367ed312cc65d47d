#!/usr/bin/env bash
# Builds the pinned test environment: a real Kubernetes control plane, a container runtime,
# CNI plugins, a pause image and a Debian root filesystem for edge hosts.
#
# Everything comes from the Go module proxy and the Debian mirror this machine is set up
# with; nothing else is downloaded. Versions are pinned in build/versions.env and, with
# their go.sum, in the small tool modules build/<group>/go.mod. Each component is skipped
# when its stamp says it was built from the same inputs, so a warm run takes seconds.
#
# Usage: scripts/test-env.sh [all|apt|binaries|images|rootfs|konnectivity|print-paths|verify|clean]   (default: all)
#   all          apt, binaries, images, rootfs, konnectivity, in that order
#   apt          install the Debian packages the test environment needs (only if missing)
#   binaries     $CACHE/bin/* and $CACHE/cni/bin/*
#   images       $CACHE/images/pause.tar (tag in $CACHE/images/pause.tag), and the control
#                plane's images (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
#                tagged as kubeadm names them, for a master that runs them as static pods
#   rootfs       $CACHE/rootfs/$DEBIAN_SUITE (debootstrap, once)
#   konnectivity $CACHE/konnectivity/{proxy-server,proxy-agent} and their image tarballs
#                (the tunnel, docs/tunnel.md; its e2e test runs them)
#   print-paths  print the layout as shell-sourceable KEY=VALUE lines (builds nothing)
#   verify       run every built binary's version command and check the pause tarball
#   clean        delete the cache, first unmounting anything left mounted inside it
#                (never crossing into another file system, unlike a plain rm -rf)
#
# Environment:
#   EDGEADM_TEST_CACHE     cache folder (default: <repo>/.cache/test-env, ignored by git)
#   EDGEADM_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one in /etc/apt/sources.list*)
#   GOARCH                 cross-build binaries and images for another arch (with CC set to a cross
#                          compiler for runc; scripts/install-pkg.sh does this, into its own cache):
#                          binaries are then checked by their build info instead of being run
#   EDGEADM_NODE_ONLY=1    binaries: only what a node runs (no etcd and control plane)
#
# Layout (a contract other code relies on):
#   $CACHE/bin/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler,kubeadm,kubelet,kubectl,
#               containerd,containerd-shim-runc-v2,ctr,runc,crictl}
#   $CACHE/cni/bin/{bridge,host-local,loopback,portmap}
#   $CACHE/images/pause.tar, $CACHE/images/pause.tag
#   $CACHE/images/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler}.tar (tags in .tag)
#   $CACHE/rootfs/$DEBIAN_SUITE/
#   $CACHE/tools/ociimage   (builds more image tarballs: build/ociimage/main.go)
#   $CACHE/konnectivity/{proxy-server,proxy-agent}
#   $CACHE/images/{proxy-server,proxy-agent}.tar (tags in .tag, $KONNECTIVITY_IMAGE_REPOSITORY)
#   $CACHE/stamps/, $CACHE/logs/   (internal)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../build/versions.env
source "$ROOT/build/versions.env"

CACHE=${EDGEADM_TEST_CACHE:-$ROOT/.cache/test-env}
case $CACHE in /*) ;; *) CACHE=$PWD/$CACHE ;; esac
BIN=$CACHE/bin
CNI_BIN=$CACHE/cni/bin
IMAGES=$CACHE/images
ROOTFS_DIR=$CACHE/rootfs
TOOLS=$CACHE/tools
STAMPS=$CACHE/stamps
LOGS=$CACHE/logs
# Bump when a build step changes in a way its inputs below do not show.
RECIPE=1

APT_PACKAGES=(
  iproute2 iptables systemd-container debootstrap debian-archive-keyring util-linux kmod curl
  vsftpd conntrack ethtool socat ca-certificates
  # runc is built with cgo and seccomp, statically.
  libseccomp-dev gcc libc6-dev pkg-config
  # verify: file(1) tells static binaries.
  file
)
ROOTFS_INCLUDE=systemd,systemd-sysv,dbus,iproute2,iptables,ca-certificates,libseccomp2,kmod,procps,util-linux,mount,conntrack,ethtool,socat

die() { echo "test-env: error: $*" >&2; exit 1; }
log() { echo "test-env: $*"; }
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
# report NAME WHAT START: one line per component, with how long it took.
report() { log "$(printf '%-26s %-34s %s' "$1" "$2" "$(fmt_secs $(($(date +%s) - $3)))")"; }
size_of() { du -sh "$1" | cut -f1; }
key_of() { sha256sum | cut -c1-64; }

print_paths() {
  cat <<EOF
EDGEADM_TEST_CACHE=$CACHE
EDGEADM_TEST_BIN=$BIN
EDGEADM_TEST_CNI_BIN=$CNI_BIN
EDGEADM_TEST_PAUSE_TAR=$IMAGES/pause.tar
EDGEADM_TEST_PAUSE_IMAGE=$PAUSE_IMAGE
EDGEADM_TEST_ROOTFS=$ROOTFS_DIR/$DEBIAN_SUITE
EDGEADM_TEST_OCIIMAGE=$TOOLS/ociimage
EOF
  grep -E '^[A-Z_]+=' "$ROOT/build/versions.env"
}

# ---------------------------------------------------------------------------------- Go setup

setup_go() {
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH=/usr/local/go/bin:$PATH
  fi
  command -v go >/dev/null || die "go not found (expected Go 1.26 at /usr/local/go)"
  # Only the module proxy: never fall back to fetching from version control hosts.
  local proxy
  proxy=$(go env GOPROXY | tr ',|' '\n' | { grep -v -x -e direct -e off -e '' || true; } | paste -sd, -)
  export GOPROXY=${proxy:-https://proxy.golang.org}
  # go.mod and go.sum of the tool modules are committed: never rewrite them here. The
  # modules sit inside this git tree, whose state must not leak into the binaries.
  export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly -buildvcs=false"
  GO_VERSION=$(go env GOVERSION)
  GOARCH=$(go env GOARCH)
  HOST_GOARCH=$(go env GOHOSTARCH)
}

# modver DIR MODULE: the version build/DIR/go.mod requires of MODULE.
modver() {
  awk -v m="$2" '
    $1=="require" && $2==m {print $3; exit}
    $1=="require" && $2=="(" {r=1; next}
    r && $1==")" {r=0}
    r && $1==m {print $2; exit}' "$ROOT/build/$1/go.mod"
}

# check_pin DIR MODULE WANT: versions.env and build/DIR/go.mod must agree.
check_pin() {
  local got
  got=$(modver "$1" "$2")
  [ "$got" = "$3" ] || die "build/$1/go.mod requires $2 ${got:-(nothing)} but build/versions.env pins $3; bump both (see build/versions.env)"
}

# go_bin NAME DIR PKG OUT CGO TAGS LDFLAGS EXPECT VERSION-ARGS...
# Builds PKG of the module build/DIR into OUT unless its stamp matches, then checks that
# OUT VERSION-ARGS prints EXPECT.
go_bin() {
  local name=$1 dir=$2 pkg=$3 out=$4 cgo=$5 tags=$6 ldflags=$7 expect=$8
  shift 8
  local start key stamp=$STAMPS/$name extra=""
  start=$(date +%s)
  if [ "$cgo" = 1 ]; then extra="cc=${CC:+$CC }$(${CC:-gcc} -dumpfullversion 2>/dev/null) $(dpkg-query -W -f='${Package}=${Version} ' "libseccomp-dev:$(dpkg --print-architecture)" "libc6-dev:$(dpkg --print-architecture)" 2>/dev/null || true)"; fi
  # The project's own tools (pause, ociimage, konnectivity) have their source in build/DIR.
  extra+=" src=$(find "$ROOT/build/$dir" -name '*.go' -type f | LC_ALL=C sort | { xargs -r cat || true; } | key_of)"
  key=$(printf '%s\n' "recipe=$RECIPE" "go=$GO_VERSION/$GOARCH" "pkg=$pkg" "cgo=$cgo" "tags=$tags" \
    "ldflags=$ldflags" "extra=$extra" "$(cat "$ROOT/build/$dir/go.mod" "$ROOT/build/$dir/go.sum" 2>/dev/null)" | key_of)
  if [ -x "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    report "$name" "up to date ($(size_of "$out"))" "$start"
    return
  fi
  mkdir -p "$(dirname "$out")" "$STAMPS" "$LOGS"
  rm -f "$stamp"
  local tmp=$out.tmp.$$ logf=$LOGS/$name.log
  if ! CGO_ENABLED=$cgo nice -n 10 go build -C "$ROOT/build/$dir" -trimpath -tags "$tags" \
      -ldflags "$ldflags" -o "$tmp" "$pkg" >"$logf" 2>&1; then
    rm -f "$tmp"
    tail -n 40 "$logf" >&2
    die "building $name ($pkg) failed; full log: $logf"
  fi
  local got
  if [ "$GOARCH" != "$HOST_GOARCH" ]; then
    # Cross-built: cannot run here; its build info must say what it was built for.
    got=$(go version -m "$tmp" 2>&1 || true)
    expect="GOARCH=$GOARCH"
  else
    got=$("$tmp" "$@" 2>&1 || true)
  fi
  if ! grep -qF -- "$expect" <<<"$got"; then
    rm -f "$tmp"
    die "$name: '$(basename "$out") $*' printed '${got:0:300}', expected it to contain '$expect'"
  fi
  mv -f "$tmp" "$out"
  echo "$key" >"$stamp"
  report "$name" "built $(basename "$out") ($(size_of "$out"))" "$start"
}

# ------------------------------------------------------------------------------- components

k8s_ldflags() {
  # Stamped like upstream's hack/lib/version.sh, so every binary (and kubeadm's version
  # skew checks against them) sees a real v1.37.1. buildDate is the release's time on the
  # module proxy, so the flags (and the stamp) stay the same from run to run. The git
  # commit is not known from the proxy, so it stays empty rather than made up.
  local v=$KUBERNETES_VERSION date major minor
  [[ $v =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "KUBERNETES_VERSION=$v does not look like v1.37.1"
  major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
  date=$(go list -C "$ROOT/build/kubernetes" -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes) ||
    die "cannot read the release time of k8s.io/kubernetes $v from the module proxy"
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  echo "$flags"
}

build_binaries() {
  setup_go
  check_pin kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION"
  check_pin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  check_pin containerd github.com/containerd/containerd/v2 "$CONTAINERD_VERSION"
  check_pin runc github.com/opencontainers/runc "$RUNC_VERSION"
  check_pin cni github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION"
  check_pin crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION"

  local kv=$KUBERNETES_VERSION k8s_flags
  k8s_flags=$(k8s_ldflags)
  if [ "${EDGEADM_NODE_ONLY:-}" != 1 ]; then
  go_bin etcd etcd go.etcd.io/etcd/server/v3 "$BIN/etcd" 0 "" "-s -w" \
    "etcd Version: ${ETCD_VERSION#v}" --version
  go_bin kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$BIN/kube-apiserver" 0 "" "$k8s_flags" \
    "Kubernetes $kv" --version
  go_bin kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$BIN/kube-controller-manager" 0 "" "$k8s_flags" \
    "Kubernetes $kv" --version
  go_bin kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$BIN/kube-scheduler" 0 "" "$k8s_flags" \
    "Kubernetes $kv" --version
  # kubeadm init makes the master of the tunnel's e2e test (static pods, as on a user's master).
  go_bin kubeadm kubernetes k8s.io/kubernetes/cmd/kubeadm "$BIN/kubeadm" 0 "" "$k8s_flags" \
    "GitVersion:\"$kv\"" version
  fi
  go_bin kubelet kubernetes k8s.io/kubernetes/cmd/kubelet "$BIN/kubelet" 0 "" "$k8s_flags" \
    "Kubernetes $kv" --version
  go_bin kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$BIN/kubectl" 0 "" "$k8s_flags" \
    "Client Version: $kv" version --client

  local ctd=github.com/containerd/containerd/v2 ctd_tags="no_btrfs no_devmapper no_zfs"
  local ctd_flags="-s -w -X $ctd/version.Version=$CONTAINERD_VERSION -X $ctd/version.Package=$ctd"
  go_bin containerd containerd $ctd/cmd/containerd "$BIN/containerd" 0 "$ctd_tags" "$ctd_flags" \
    "$ctd $CONTAINERD_VERSION" --version
  go_bin containerd-shim-runc-v2 containerd $ctd/cmd/containerd-shim-runc-v2 "$BIN/containerd-shim-runc-v2" 0 "$ctd_tags" "$ctd_flags" \
    "Version:  $CONTAINERD_VERSION" -v
  go_bin ctr containerd $ctd/cmd/ctr "$BIN/ctr" 0 "$ctd_tags" "$ctd_flags" \
    "ctr $ctd $CONTAINERD_VERSION" --version

  # runc needs cgo for libseccomp (pods fail with "seccomp not supported" without it).
  # Linked statically like upstream's release binaries (netgo/osusergo keep glibc's NSS
  # out), so it runs on any edge host whatever its libseccomp.
  [ -f /usr/lib/"$(${CC:-gcc} -print-multiarch)"/libseccomp.a ] ||
    die "libseccomp.a not found: run 'scripts/test-env.sh apt' first (needs libseccomp-dev)"
  go_bin runc runc github.com/opencontainers/runc "$BIN/runc" 1 "seccomp netgo osusergo urfave_cli_no_docs" \
    "-s -w -extldflags -static" "libseccomp: " --version

  go_bin crictl crictl sigs.k8s.io/cri-tools/cmd/crictl "$BIN/crictl" 0 "" \
    "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" "crictl version $CRICTL_VERSION" --version

  local cni=github.com/containernetworking/plugins p
  for p in main/bridge ipam/host-local main/loopback meta/portmap; do
    go_bin "cni-${p#*/}" cni "$cni/plugins/$p" "$CNI_BIN/${p#*/}" 0 "" \
      "-s -w -X $cni/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" "CNI ${p#*/} plugin $CNI_PLUGINS_VERSION"
  done
}

build_images() {
  setup_go
  check_pin ociimage github.com/google/go-containerregistry "$GO_CONTAINERREGISTRY_VERSION"
  # A tool: it runs here, whatever GOARCH the image is for.
  GOARCH=$HOST_GOARCH go_bin ociimage ociimage github.com/edgeadm/edgeadm/build/ociimage "$TOOLS/ociimage" 0 "" "-s -w" "usage: ociimage"
  local tag=${PAUSE_IMAGE##*:}
  go_bin pause-binary pause github.com/edgeadm/edgeadm/build/pause "$TOOLS/pause" 0 "" \
    "-s -w -X main.version=$tag" "pause.go $tag" -v

  build_pause_image
  if [ "${EDGEADM_NODE_ONLY:-}" != 1 ]; then build_control_plane_images; fi
}

build_pause_image() {
  local start key stamp=$STAMPS/pause-image
  start=$(date +%s)
  key=$(printf '%s\n' "recipe=$RECIPE" "image=$PAUSE_IMAGE" "$(cat "$STAMPS/ociimage" "$STAMPS/pause-binary")" | key_of)
  if [ -f "$IMAGES/pause.tar" ] && [ -f "$IMAGES/pause.tag" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    report pause-image "up to date ($(size_of "$IMAGES/pause.tar"))" "$start"
    return
  fi
  mkdir -p "$IMAGES"
  rm -f "$stamp"
  # User 65535 as upstream's pause image.
  "$TOOLS/ociimage" build -o "$IMAGES/pause.tar" -tag "$PAUSE_IMAGE" -arch "$GOARCH" -entrypoint /pause -user 65535:65535 \
    -add "/pause=$TOOLS/pause" || die "building $IMAGES/pause.tar failed"
  echo "$PAUSE_IMAGE" >"$IMAGES/pause.tag"
  verify_pause_image >/dev/null
  echo "$key" >"$stamp"
  report pause-image "built pause.tar $PAUSE_IMAGE" "$start"
}

# build_control_plane_images: the cached etcd and control plane binaries, each alone in an
# image at /usr/local/bin (kubeadm's manifests run them by name), tagged as kubeadm v1.37
# names them (registry.k8s.io, etcd 3.7.0-0), so a master made with kubeadm init runs
# them as static pods without a registry. Needs "binaries" first.
build_control_plane_images() {
  local c start key tag stamp bin out
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    start=$(date +%s)
    bin=$BIN/$c
    [ -x "$bin" ] && [ -f "$STAMPS/$c" ] || die "$bin is missing: run scripts/test-env.sh binaries first"
    case $c in
      etcd) tag=registry.k8s.io/etcd:${ETCD_VERSION#v}-0 ;;
      *) tag=registry.k8s.io/$c:$KUBERNETES_VERSION ;;
    esac
    stamp=$STAMPS/$c-image
    key=$(printf '%s\n' "recipe=$RECIPE" "image=$tag" "arch=$GOARCH" "$(cat "$STAMPS/ociimage" "$STAMPS/$c")" | key_of)
    if [ -f "$IMAGES/$c.tar" ] && [ -f "$IMAGES/$c.tag" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
      report "$c-image" "up to date ($(size_of "$IMAGES/$c.tar"))" "$start"
      continue
    fi
    mkdir -p "$IMAGES"
    rm -f "$stamp"
    "$TOOLS/ociimage" build -o "$IMAGES/$c.tar" -tag "$tag" -arch "$GOARCH" -entrypoint "/usr/local/bin/$c" \
      -add "/usr/local/bin/$c=$bin" || die "building $IMAGES/$c.tar failed"
    echo "$tag" >"$IMAGES/$c.tag"
    out=$("$TOOLS/ociimage" inspect -tag "$tag" "$IMAGES/$c.tar") || die "$IMAGES/$c.tar does not load"
    grep -q "^platform: linux/$GOARCH\$" <<<"$out" || die "$IMAGES/$c.tar is not a linux/$GOARCH image tagged $tag"
    echo "$key" >"$stamp"
    report "$c-image" "built $c.tar $tag" "$start"
  done
}

# build_konnectivity: Konnectivity's proxy server and agent from the module proxy
# (build/konnectivity: upstream's go.mod has a replace, so they are built through two
# small mains), static, for $GOARCH, and an image tarball of each, tagged as upstream's.
build_konnectivity() {
  setup_go
  check_pin konnectivity sigs.k8s.io/apiserver-network-proxy "$KONNECTIVITY_VERSION"
  check_pin ociimage github.com/google/go-containerregistry "$GO_CONTAINERREGISTRY_VERSION"
  GOARCH=$HOST_GOARCH go_bin ociimage ociimage github.com/edgeadm/edgeadm/build/ociimage "$TOOLS/ociimage" 0 "" "-s -w" "usage: ociimage"
  local c start key tag stamp out
  for c in proxy-server proxy-agent; do
    go_bin "konnectivity-$c" konnectivity "github.com/edgeadm/edgeadm/build/konnectivity/$c" "$CACHE/konnectivity/$c" 0 "" "-s -w" \
      "$c sigs.k8s.io/apiserver-network-proxy $KONNECTIVITY_VERSION" version
    start=$(date +%s)
    tag=$KONNECTIVITY_IMAGE_REPOSITORY/$c:$KONNECTIVITY_VERSION
    stamp=$STAMPS/konnectivity-$c-image
    key=$(printf '%s\n' "recipe=$RECIPE" "image=$tag" "arch=$GOARCH" "$(cat "$STAMPS/ociimage" "$STAMPS/konnectivity-$c")" | key_of)
    if [ -f "$IMAGES/$c.tar" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
      report "konnectivity-$c-image" "up to date ($(size_of "$IMAGES/$c.tar"))" "$start"
      continue
    fi
    mkdir -p "$IMAGES"
    rm -f "$stamp"
    "$TOOLS/ociimage" build -o "$IMAGES/$c.tar" -tag "$tag" -arch "$GOARCH" -entrypoint "/$c" \
      -add "/$c=$CACHE/konnectivity/$c" || die "building $IMAGES/$c.tar failed"
    echo "$tag" >"$IMAGES/$c.tag"
    out=$("$TOOLS/ociimage" inspect -tag "$tag" "$IMAGES/$c.tar") || die "$IMAGES/$c.tar does not load"
    grep -q "^platform: linux/$GOARCH\$" <<<"$out" && grep -q "^entrypoint: \[\"/$c\"\]\$" <<<"$out" ||
      die "$IMAGES/$c.tar is not a linux/$GOARCH image of /$c tagged $tag"
    echo "$key" >"$stamp"
    report "konnectivity-$c-image" "built $c.tar $tag" "$start"
  done
}

# verify_pause_image: read the tarball back with go-containerregistry and check that it
# holds one static /pause that runs as the entrypoint.
verify_pause_image() {
  local tmp out
  tmp=$(mktemp -d)
  out=$("$TOOLS/ociimage" inspect -tag "$(cat "$IMAGES/pause.tag")" -extract "/pause=$tmp/pause" "$IMAGES/pause.tar") ||
    { rm -rf "$tmp"; die "$IMAGES/pause.tar does not load"; }
  echo "$out"
  local desc
  desc=$(file -b "$tmp/pause")
  echo "/pause: $desc"
  rm -rf "$tmp"
  grep -q "^tags: $PAUSE_IMAGE\$" <<<"$out" || die "pause.tar is not tagged $PAUSE_IMAGE"
  grep -q '^entrypoint: \["/pause"\]$' <<<"$out" || die "pause.tar's entrypoint is not /pause"
  grep -q "^platform: linux/$GOARCH\$" <<<"$out" || die "pause.tar is not linux/$GOARCH"
  grep -q 'statically linked' <<<"$desc" || die "/pause in pause.tar is not static: $desc"
}

# ------------------------------------------------------------------------------------- apt

install_apt() {
  local start missing=() p
  start=$(date +%s)
  for p in "${APT_PACKAGES[@]}"; do
    # One line per installed architecture (another engineer may add :arm64 ones).
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    report apt "all ${#APT_PACKAGES[@]} packages present" "$start"
    return
  fi
  [ "$(id -u)" = 0 ] || die "missing Debian packages (${missing[*]}); run as root to install them"
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Daemons (vsftpd) must not start on the host: the tests start their own. PID 1 is not
  # systemd here, so invoke-rc.d asks policy-rc.d; 101 means "do not start".
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Temporary, written by edgeadm scripts/test-env.sh.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  local before rc=0
  before=$(pgrep -x vsftpd || true)
  mkdir -p "$LOGS"
  { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$LOGS/apt.log" 2>&1 || rc=$?
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
  if [ $rc -ne 0 ]; then
    tail -n 30 "$LOGS/apt.log" >&2
    die "apt-get failed; full log: $LOGS/apt.log"
  fi
  # Belt and braces: stop a vsftpd this install started anyway (by PID, only new ones).
  for p in $(pgrep -x vsftpd || true); do
    grep -qx "$p" <<<"$before" || { log "apt: stopping vsftpd (pid $p) that the install started"; kill "$p" || true; }
  done
  report apt "installed ${#missing[@]} packages" "$start"
}

# ---------------------------------------------------------------------------------- rootfs

# debian_mirror: the Debian mirror this machine's apt uses for $DEBIAN_SUITE.
debian_mirror() {
  if [ -n "${EDGEADM_DEBIAN_MIRROR:-}" ]; then echo "$EDGEADM_DEBIAN_MIRROR"; return; fi
  local f m
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk -v s="$DEBIAN_SUITE" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && enabled != "no" && uris != "") {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = suites = uris = enabled = ""
      }
      /^[ \t]*#/ {next}
      /^[ \t]*$/ {flush(); next}
      {
        k = tolower($1); sub(/:$/, "", k); $1 = ""; v = $0; sub(/^ +/, "", v)
        if (k == "types") types = v; else if (k == "uris") uris = v
        else if (k == "suites") suites = v; else if (k == "enabled") enabled = tolower(v)
      }
      END {if (!found) flush()}' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(awk -v s="$DEBIAN_SUITE" '
      $1 == "deb" {
        i = 2
        if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == s) { print $i; exit }
      }' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  return 1
}

# remove_tree DIR: unmount whatever an interrupted debootstrap left mounted below DIR, then
# delete it without ever crossing into another file system (a bind-mounted /dev, say).
remove_tree() {
  local d=$1 m
  [ -e "$d" ] || return 0
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$d" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/self/mounts | sort -r)
  ! awk -v d="$d" '$2 == d || index($2, d "/") == 1 {found = 1} END {exit !found}' /proc/self/mounts ||
    die "cannot unmount everything below $d; remove it by hand"
  rm -rf --one-file-system "$d"
}

build_rootfs() {
  local start suite=$DEBIAN_SUITE final=$ROOTFS_DIR/$DEBIAN_SUITE stamp=$STAMPS/rootfs-$DEBIAN_SUITE key
  start=$(date +%s)
  # The mirror is not part of the key: any mirror of the suite gives the same rootfs.
  key=$(printf '%s\n' "recipe=$RECIPE" "suite=$suite" "include=$ROOTFS_INCLUDE" | key_of)
  if [ -d "$final" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    report "rootfs-$suite" "up to date" "$start"
    return
  fi
  [ "$(id -u)" = 0 ] || die "building the rootfs needs root (debootstrap)"
  command -v debootstrap >/dev/null || die "debootstrap not found: run 'scripts/test-env.sh apt' first"
  local mirror
  mirror=$(debian_mirror) || die "no Debian mirror for '$suite' in /etc/apt/sources.list*; set EDGEADM_DEBIAN_MIRROR"
  mkdir -p "$ROOTFS_DIR" "$STAMPS" "$LOGS"
  rm -f "$stamp"
  # Leftovers of interrupted runs. Build under a temp name and rename when complete, so a
  # half-made rootfs never sits at the final path.
  local old
  for old in "$ROOTFS_DIR"/.tmp-* "$ROOTFS_DIR"/.old-*; do remove_tree "$old"; done
  local tmp=$ROOTFS_DIR/.tmp-$suite.$$
  log "rootfs-$suite: debootstrap from $mirror (log: $LOGS/rootfs-$suite.log)"
  if ! nice -n 10 debootstrap --variant=minbase --include="$ROOTFS_INCLUDE" "$suite" "$tmp" "$mirror" \
      >"$LOGS/rootfs-$suite.log" 2>&1; then
    tail -n 30 "$LOGS/rootfs-$suite.log" >&2
    remove_tree "$tmp"
    die "debootstrap failed; full log: $LOGS/rootfs-$suite.log"
  fi
  # Every host made from this rootfs gets its own machine ID at first boot (systemd-nspawn
  # passes one), instead of all sharing the one debootstrap wrote.
  : >"$tmp/etc/machine-id"
  rm -f "$tmp/var/lib/dbus/machine-id"
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages
  if [ -e "$final" ]; then
    mv "$final" "$ROOTFS_DIR/.old-$suite.$$"
  fi
  mv "$tmp" "$final"
  remove_tree "$ROOTFS_DIR/.old-$suite.$$"
  echo "$key" >"$stamp"
  report "rootfs-$suite" "built ($(size_of "$final"))" "$start"
}

# ---------------------------------------------------------------------------------- verify

verify_all() {
  setup_go
  local b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet containerd ctr runc crictl; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run scripts/test-env.sh binaries"
    echo "== $b --version"; "$BIN/$b" --version
  done
  echo "== kubectl version --client"; "$BIN/kubectl" version --client
  if [ -x "$BIN/kubeadm" ]; then echo "== kubeadm version -o short"; "$BIN/kubeadm" version -o short; fi
  echo "== containerd-shim-runc-v2 -v"; "$BIN/containerd-shim-runc-v2" -v
  for b in bridge host-local loopback portmap; do
    [ -x "$CNI_BIN/$b" ] || die "$CNI_BIN/$b is missing: run scripts/test-env.sh binaries"
    echo "== $b"; "$CNI_BIN/$b" 2>&1 | head -n 1 || true
  done
  echo "== file"; (cd "$BIN" && file -- * "$CNI_BIN"/* | sed 's/, BuildID[^,]*//')
  echo "== pause.tar"; verify_pause_image
  if [ -d "$ROOTFS_DIR/$DEBIAN_SUITE" ]; then
    echo "== rootfs"; du -sh "$ROOTFS_DIR/$DEBIAN_SUITE"; cat "$ROOTFS_DIR/$DEBIAN_SUITE/etc/debian_version"
  fi
}

# ------------------------------------------------------------------------------------ main

main() {
  local cmd=${1:-all}
  case $cmd in
    print-paths) print_paths; return ;;
    all | apt | binaries | images | rootfs | konnectivity | verify | clean) ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return ;;
    *) die "unknown command '$cmd' (want all, apt, binaries, images, rootfs, konnectivity, print-paths, verify or clean)" ;;
  esac
  [ $# -le 1 ] || die "one command at a time"
  mkdir -p "$CACHE"
  # One run at a time per cache (two make test-env in parallel would race on the outputs).
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    log "waiting for another test-env.sh using $CACHE"
    flock 9
  fi
  # Outputs are written as *.tmp.<pid> and renamed when complete; drop those an
  # interrupted run left (the lock above says no other run is writing them now).
  rm -f "$BIN"/*.tmp.* "$CNI_BIN"/*.tmp.* "$TOOLS"/*.tmp.* "$IMAGES"/*.tmp
  local start
  start=$(date +%s)
  case $cmd in
    all) install_apt; build_binaries; build_images; build_rootfs; build_konnectivity ;;
    apt) install_apt ;;
    binaries) build_binaries ;;
    images) build_images ;;
    rootfs) build_rootfs ;;
    konnectivity) build_konnectivity ;;
    verify) verify_all ;;
    clean)
      exec 9>&-
      remove_tree "$CACHE"
      log "clean: removed $CACHE"
      return
      ;;
  esac
  log "$cmd: done in $(fmt_secs $(($(date +%s) - start))) (cache: $CACHE)"
}

# Sourcing defines the functions only (for tests of this script).
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
