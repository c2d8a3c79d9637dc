#!/usr/bin/env bash
# Regenerates the pinned Go modules under tools/ from tools/pins.env.
#
#   tools/gen-modules.sh              # every module: kube etcd kwok helm
#   tools/gen-modules.sh helm         # only those named (a new pin need not re-resolve the rest)
#
# k8s.io/kubernetes replaces its staging modules with ./staging/... paths, which a module that
# requires it cannot see; we replace each with its published release (v0.<minor>.<patch>). The
# list changes between releases, so it is read from that release's own go.mod, never typed in.
set -euo pipefail
cd "$(dirname "$0")"
. ./pins.env
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

gen_kube() {
  local staging_version="v0.${KUBERNETES_VERSION#v1.}" modfile
  modfile=$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
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
}

gen_etcd() {
  printf 'module zkregistry.io/tools/etcd\n\ngo 1.26.0\n' > etcd/go.mod
  (cd etcd && go get -tool "go.etcd.io/etcd/server/v3@${ETCD_VERSION}")
}

gen_kwok() {
  printf 'module zkregistry.io/tools/kwok\n\ngo 1.26.0\n' > kwok/go.mod
  (cd kwok && go get -tool "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}")
}

# helm renders and lints charts/zkregistry in the tests. It is a module of its own so that its
# dependencies (client-go of another release) never meet the control plane's.
gen_helm() {
  printf 'module zkregistry.io/tools/helm\n\ngo 1.26.0\n' > helm/go.mod
  (cd helm && go get -tool "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}")
}

modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(kube etcd kwok helm)
for m in "${modules[@]}"; do
  declare -F "gen_$m" >/dev/null || { echo "gen-modules.sh: no module $m" >&2; exit 2; }
  rm -rf "$m" && mkdir -p "$m"
  "gen_$m"
done
