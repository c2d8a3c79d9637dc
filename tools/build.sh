#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, etcd, kwok, kwokctl) and helm from the pinned modules under tools/ into a cache outside
# the work tree, and prints the folder. The folder's name is a hash of the pins, so a second run
# with the same pins does nothing, and a changed pin builds into a new folder. Concurrent runs
# (several test sessions on one machine) take turns on a lock, so only the first one builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/pins.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

key=$(cat "$here/pins.env" "$here/build.sh" "$here"/{kube,etcd,kwok,helm}/go.{mod,sum} | sha256sum | cut -c1-16)
out="${ZKREGISTRY_CACHE:-$HOME/.cache/zkregistry}/bin/$key"
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
exec 9>"$out.lock"
flock 9
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi  # another run built it while we waited

minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

log() { echo "[tools] $*" >&2; }
log "building into $out (first run takes a while; later runs reuse it)"
(cd "$here/kube" && for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  log "$c"; go build -trimpath -ldflags "$ldflags" -o "$out/$c" "k8s.io/kubernetes/cmd/$c"; done)
(cd "$here/etcd" && log etcd && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
(cd "$here/kwok" && for c in kwok kwokctl; do
  log "$c"; go build -trimpath -ldflags "-s -w" -o "$out/$c" "sigs.k8s.io/kwok/cmd/$c"; done)
# helm takes its full version from ldflags, as its release builds do (else it says "v3.22").
(cd "$here/helm" && log helm && go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  -o "$out/helm" helm.sh/helm/v3/cmd/helm)
touch "$out/.complete"
echo "$out"
