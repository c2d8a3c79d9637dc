"""`zkregistry dev up | down | status`: the local cluster and ensemble together, in one folder.

The folder defaults to ~/.cache/zkregistry/dev (ZKREGISTRY_DEV_DIR). The binaries come from
ZKREGISTRY_BIN and ZooKeeper's jars from ZKREGISTRY_ZOOKEEPER, both set by `make` (tools/env.sh).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from zkregistry.devenv.cluster import Cluster
from zkregistry.devenv.ensemble import Ensemble


def default_dir() -> Path:
    return Path(os.environ.get("ZKREGISTRY_DEV_DIR") or Path.home() / ".cache" / "zkregistry" / "dev")


def _required(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        raise SystemExit(f"zkregistry dev: {variable} is not set; run through `make` or tools/env.sh")
    return Path(value)


class Environment:
    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = Path(workdir or default_dir())
        self.cluster = Cluster(self.workdir / "cluster", _required("ZKREGISTRY_BIN"))
        self.ensemble = Ensemble(self.workdir / "zookeeper", _required("ZKREGISTRY_ZOOKEEPER"))

    def up(self, nodes: int = 3) -> dict[str, float]:
        """Starts both; returns how long each took, in seconds."""
        started = time.monotonic()
        self.ensemble.start()
        ensemble_s = time.monotonic() - started
        started = time.monotonic()
        self.cluster.start(nodes)
        return {"ensemble_s": ensemble_s, "cluster_s": time.monotonic() - started}

    def down(self) -> None:
        self.cluster.stop()
        self.ensemble.stop()

    def describe(self) -> str:
        zk = self.ensemble.running()
        return "\n".join(
            [
                f"kubeconfig:  {self.cluster.kubeconfig} ({'running' if self.cluster.running() else 'stopped'})",
                f"zookeeper:   {self.ensemble.connection_string or '-'} (servers running: {zk or 'none'})",
                f"export KUBECONFIG={self.cluster.kubeconfig} ZKREGISTRY_ZK_HOSTS={self.ensemble.connection_string}",
            ]
        )
