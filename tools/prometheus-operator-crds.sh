#!/usr/bin/env bash
# Prints the folder of the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule, ...) at the
# version that tools/prometheus-operator/go.mod pins: the Go module proxy serves the operator's
# repository as a module, verified against go.sum, and its example/prometheus-operator-crd/ holds
# the CRDs. Go's module cache keeps it, so only the first run downloads.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
module=github.com/prometheus-operator/prometheus-operator
dir=$(cd "$here/prometheus-operator" && go mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$dir/example/prometheus-operator-crd" ] || { echo "no CRDs in $module ($dir)" >&2; exit 1; }
echo "$dir/example/prometheus-operator-crd"
