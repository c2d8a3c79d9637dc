#!/usr/bin/env bash
# Builds tools/promql (Prometheus's own PromQL parser, from the Go module proxy) into the cache
# outside the work tree, once per version of its sources and pins, and prints the binary's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
key=$(cat "$here/promql.sh" "$here"/promql/{go.mod,go.sum,main.go} | sha256sum | cut -c1-16)
out="${ZKREGISTRY_CACHE:-$HOME/.cache/zkregistry}/promql/$key"
if [ ! -x "$out/promql" ]; then
  mkdir -p "$out"
  echo "[tools] building promql into $out" >&2
  (cd "$here/promql" && go build -trimpath -ldflags "-s -w" -o "$out/promql.tmp" .)
  mv "$out/promql.tmp" "$out/promql"
fi
echo "$out/promql"
