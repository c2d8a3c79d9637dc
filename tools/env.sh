#!/usr/bin/env bash
# Runs a command with the project's toolchain, installing what a fresh machine lacks first:
# Debian packages (Java, Maven, Go are expected; installed if missing), the Python virtual
# environment, ZooKeeper's jars and the Go-built control plane. Every step is cached outside the
# work tree (~/.cache/zkregistry, or ZKREGISTRY_CACHE) and skipped when its pins are unchanged.
#
#   tools/env.sh python -m pytest tests/unit
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v go >/dev/null || missing+=(golang-go)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[tools] installing ${missing[*]}" >&2
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

venv=$("$here/venv.sh")
export ZKREGISTRY_ZOOKEEPER; ZKREGISTRY_ZOOKEEPER=$("$here/zookeeper.sh")
export ZKREGISTRY_BIN; ZKREGISTRY_BIN=$("$here/build.sh")
export PATH="$venv/bin:$ZKREGISTRY_BIN:$PATH"
export PYTHONPATH="$top/operator${PYTHONPATH:+:$PYTHONPATH}"
exec "$@"
