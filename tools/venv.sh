#!/usr/bin/env bash
# Creates (once per set of pins) the virtual environment that tests, the demo and the benchmarks
# use, in the cache outside the work tree, and prints its folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
key=$(cat "$top/requirements.txt" "$top/requirements-dev.txt" | sha256sum | cut -c1-16)
venv="${ZKREGISTRY_CACHE:-$HOME/.cache/zkregistry}/venv/$key"
if [ ! -f "$venv/.complete" ]; then
  echo "[tools] creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$top/requirements-dev.txt" >&2
  touch "$venv/.complete"
fi
echo "$venv"
