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
apt_pkgs=(skopeo umoci redis-server docker-registry apache2-utils prometheus ca-certificates)
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

if [ "${1:-}" = "--bench" ]; then
  go_install_binary registry-v3 github.com/distribution/distribution/v3/cmd/registry@v3.1.2
fi
step "done"
