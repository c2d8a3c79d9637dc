#!/usr/bin/env bash
# Builds the operator image from the Dockerfile with buildah, into an OCI archive that
# `kind load image-archive`, `docker load` and `podman load` take, and prints the archive's path.
#
#   tools/image.sh [--base local|IMAGE] [--output FILE]
#
# --base      the Dockerfile's BASE: empty (default) for the public base pinned by digest there;
#             `local` for a base made here from Debian's packages alone (debootstrap minbase plus
#             Debian's python3), for machines that reach no container registry; or any image.
# --output    also copy the archive to FILE (`make image` puts it under build/).
#
# Both images are cached outside the work tree (ZKREGISTRY_CACHE, default ~/.cache/zkregistry):
# the local base under a key of its recipe, the operator image under a key of everything it is
# built from (the Dockerfile, .dockerignore, the pins, pyproject.toml, operator/, the base, this
# script). An unchanged tree therefore builds nothing. buildah keeps its images in
# $cache/containers (vfs storage: no kernel overlay or fuse needed), apart from the system's.
# Concurrent runs take turns on a lock. Runs as root: debootstrap and buildah's vfs storage need it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")

base=""
output=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=${2-}; shift 2 ;;
    --output) output=${2-}; shift 2 ;;
    *) echo "usage: $0 [--base local|IMAGE] [--output FILE]" >&2; exit 2 ;;
  esac
done

log() { echo "[image] $*" >&2; }
if [ "$(id -u)" != 0 ]; then
  log "needs root: debootstrap and buildah's storage write as root (try: sudo $0 $*)"
  exit 1
fi

# The same pattern as tools/env.sh: install what is missing, once, from Debian's packages.
# runc runs the built image in the tests (buildah's own `run` cannot make its root read-only).
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v runc >/dev/null || missing+=(runc)
if [ "$base" = local ]; then command -v debootstrap >/dev/null || missing+=(debootstrap); fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2
fi

cache="${ZKREGISTRY_CACHE:-$HOME/.cache/zkregistry}"
mkdir -p "$cache/image"
buildah=(buildah --root "$cache/containers/storage" --runroot "$cache/containers/run" --storage-driver vfs)
exec 9>"$cache/image.lock"
flock 9

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$top/operator/zkregistry/__init__.py")
[ -n "$version" ] || { log "no __version__ in operator/zkregistry/__init__.py"; exit 1; }

# -- the local base ----------------------------------------------------------------------------

SUITE=bookworm
MIRROR=${ZKREGISTRY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-venv: Debian's python3 leaves out ensurepip, which `python -m venv` needs;
# python-is-python3: the Dockerfile calls `python`; ca-certificates: pip reaches PyPI over TLS.
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

# Makes the base image $1 from Debian's packages: debootstrap's minbase (the Required packages and
# apt) with Debian's python3, trimmed of what no container needs (apt's lists and downloaded
# packages, documentation, manual pages, translations, logs), committed as a one-layer image.
build_base() {
  local ref=$1 root ctr mnt
  root=$(mktemp -d "$cache/image/base-root.XXXXXX")
  log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR; takes a few minutes, once"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; rm -rf "$root"; return 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale \
    "$root"/var/log/* "$root.log"
  ctr=$("${buildah[@]}" from scratch)
  mnt=$("${buildah[@]}" mount "$ctr")
  tar -C "$root" --numeric-owner -cf - . | tar -C "$mnt" --numeric-owner -xpf -
  "${buildah[@]}" umount "$ctr" >/dev/null
  # What python:3.11-slim sets too: a full PATH and a UTF-8 locale.
  "${buildah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["python3"]' \
    --label "org.opencontainers.image.description=Debian $SUITE minbase with Debian's python3 ($PACKAGES)" "$ctr"
  "${buildah[@]}" commit -q --rm "$ctr" "$ref" >/dev/null
  rm -rf "$root"
}

build_arg=()
base_id=""
if [ "$base" = local ]; then
  # Keyed by the recipe itself (this function's text) and its inputs, not by the rest of the script.
  base_key=$( { declare -f build_base; echo "$SUITE $MIRROR $PACKAGES"; } | sha256sum | cut -c1-16)
  base_ref="localhost/zkregistry-base:$base_key"
  if ! "${buildah[@]}" inspect --type image "$base_ref" >/dev/null 2>&1; then
    started=$SECONDS
    build_base "$base_ref"
    log "base $base_ref built in $((SECONDS - started)) s"
  fi
  base_id=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$base_ref")
  build_arg=(--build-arg "BASE=$base_ref")
elif [ -n "$base" ]; then
  base_id=$base
  build_arg=(--build-arg "BASE=$base")
fi

# -- the operator image ------------------------------------------------------------------------

# Everything the build reads: the build context (.dockerignore lets in only these), the
# Dockerfile, the base and this script. Names count as well as contents.
inputs() {
  cd "$top"
  printf '%s\n' "$base_id"
  find Dockerfile .dockerignore requirements.txt pyproject.toml operator tools/image.sh tools/oci_archive.py \
    -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort | while read -r f; do
    printf '%s\n' "$f"; sha256sum <"$f"
  done
}
key=$(inputs | sha256sum | cut -c1-16)

# Keeps this image and the newest other complete one (another work tree may be testing it);
# removes older images and the folders (with their logs) of failed builds.
prune() {
  local kept=0 dir
  for dir in $(ls -1dt "$cache"/image/*/); do
    [ "$dir" = "$out/" ] && continue
    if [ -f "$dir.complete" ] && [ "$kept" = 0 ]; then kept=1; continue; fi
    "${buildah[@]}" rmi -f "localhost/zkregistry-build:$(basename "$dir")" >/dev/null 2>&1 || true
    rm -rf "$dir"
  done
}
out="$cache/image/$key"
archive="$out/zkregistry-$version.oci.tar"
name="docker.io/library/zkregistry:$version"

if [ ! -f "$out/.complete" ]; then
  rm -rf "$out"
  mkdir -p "$out"
  tag="localhost/zkregistry-build:$key"
  # A host that reaches PyPI through a TLS-intercepting proxy trusts that proxy's CA in its own
  # bundle only. The build's RUN steps see the host's bundle in place of the base's: both bases
  # have that file, so nothing is created for the mount and nothing of it stays in the image.
  # (Debian's pip reads that bundle; the public base's pip has its own and ignores it.)
  trust=()
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    trust=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  fi
  started=$SECONDS
  from=${base:-"the Dockerfile's base"}
  log "building $name from $from (key $key)"
  # chroot isolation: no OCI runtime, no namespaces or cgroups needed for RUN steps.
  "${buildah[@]}" build --isolation chroot "${build_arg[@]}" "${trust[@]}" \
    --tag "$tag" --file "$top/Dockerfile" "$top" >"$out/build.log" 2>&1 \
    || { tail -40 "$out/build.log" >&2; log "build failed; the whole log: $out/build.log"; exit 1; }
  "${buildah[@]}" push -q "$tag" "oci-archive:$out/buildah.tar:$name" >>"$out/build.log" 2>&1
  # buildah names the image in index.json by the OCI annotation alone, which containerd (kind)
  # ignores on import; add the names that containerd and docker load read (oci_archive.py).
  python3 "$here/oci_archive.py" name "$out/buildah.tar" "$archive" "$name"
  rm -f "$out/buildah.tar"
  touch "$out/.complete"
  log "built in $((SECONDS - started)) s: $archive"
  prune
fi

if [ -n "$output" ]; then
  mkdir -p "$(dirname "$output")"
  cp "$archive" "$output"
  log "$output: $(du -h "$output" | cut -f1) (compressed; $(python3 "$here/oci_archive.py" size "$archive") unpacked)"
fi
echo "$archive"
