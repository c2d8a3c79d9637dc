#!/usr/bin/env bash
# Copies Apache ZooKeeper's jars (the version in tools/pins.env) from Maven Central into the cache
# and prints the folder that holds them; java -cp "<folder>/*" runs a server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/pins.env"
key=$(cat "$here/pins.env" "$here/zookeeper/pom.xml" | sha256sum | cut -c1-12)
out="${ZKREGISTRY_CACHE:-$HOME/.cache/zkregistry}/zookeeper/$ZOOKEEPER_VERSION-$key"
if [ ! -f "$out/.complete" ]; then
  echo "[tools] fetching ZooKeeper $ZOOKEEPER_VERSION into $out" >&2
  mvn -q -B -f "$here/zookeeper/pom.xml" -Dzookeeper.version="$ZOOKEEPER_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$out" -DincludeScope=runtime >&2
  touch "$out/.complete"
fi
echo "$out"
