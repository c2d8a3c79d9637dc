#!/usr/bin/env bash
# Regenerates the pinned Go modules under tools/ from tools/pins.env.
#
# k8s.io/kubernetes replaces its staging modules with ./staging/... paths, which a module that
# requires it cannot see; we replace each with its published release (v0.<minor>.<patch>). The
# list changes between releases, so it is read from that release's own go.mod, never typed in.
set -euo pipefail
cd "$(dirname "$0")"
. ./pins.env
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

staging_version="v0.${KUBERNETES_VERSION#v1.}"
modfile=$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')

rm -rf kube etcd kwok
mkdir -p kube etcd kwok

{
  echo "module zkregistry.io/tools/kube"
  echo
  echo "go 1.26.0"
  echo
  echo "replace ("
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$modfile"
  echo ")"
} > kube/go.mod
(cd kube && go get -tool \
  "k8s.io/kubernetes/cmd/kube-apiserver@${KUBERNETES_VERSION}" \
  "k8s.io/kubernetes/cmd/kube-controller-manager@${KUBERNETES_VERSION}" \
  "k8s.io/kubernetes/cmd/kube-scheduler@${KUBERNETES_VERSION}" \
  "k8s.io/kubernetes/cmd/kubectl@${KUBERNETES_VERSION}")

printf 'module zkregistry.io/tools/etcd\n\ngo 1.26.0\n' > etcd/go.mod
(cd etcd && go get -tool "go.etcd.io/etcd/server/v3@${ETCD_VERSION}")

printf 'module zkregistry.io/tools/kwok\n\ngo 1.26.0\n' > kwok/go.mod
(cd kwok && go get -tool "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}")
