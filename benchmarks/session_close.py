"""Can a default ensemble close a session that owns many ephemeral znodes? (A leader owns every
registration in its one session.)

    tools/env.sh python -m benchmarks.session_close [--znodes 30000]

Starts a 3-server ensemble with devenv's settings (ZooKeeper's default jute.maxbuffer), creates
`--znodes` EPHEMERAL znodes named like registrations (`/zkregistry-scaling/services/r00/<uuid>`,
69 characters) in one session, closes the session, and reports, 5 s later, each server's mode,
the znodes left and what the servers logged. ZooKeeper closes (or expires) a session through one
CloseSession transaction that lists its ephemeral paths; the followers refuse a packet larger than
jute.maxbuffer plus its slack (each 1 MiB by default). Bounded: at most a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kazoo.client import KazooClient

BASE = "/zkregistry-scaling/services/r00"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.session_close", description=__doc__.split("\n\n")[0])
    parser.add_argument("--znodes", type=int, default=30_000)
    args = parser.parse_args(argv)
    from zkregistry.devenv.ensemble import Ensemble

    workdir = Path(tempfile.mkdtemp(prefix="zkregistry-session-close-"))
    ensemble = Ensemble(workdir / "zookeeper", Path(os.environ["ZKREGISTRY_ZOOKEEPER"]))
    ensemble.start()
    out: dict = {"znodes": args.znodes}
    try:
        client = KazooClient(ensemble.connection_string, timeout=10)
        client.start(timeout=30)
        client.ensure_path(BASE)
        pending = []
        for start in range(0, args.znodes, 100):
            transaction = client.transaction()
            for _ in range(start, min(args.znodes, start + 100)):
                transaction.create(f"{BASE}/{uuid.uuid4()}", b"x", ephemeral=True)
            pending.append(transaction.commit_async())
        for result in pending:
            result.get(timeout=60)
        out["created"] = len(client.get_children(BASE))
        out["path_length"] = len(f"{BASE}/{uuid.uuid4()}")
        client.stop()  # closes the session
        client.close()
        time.sleep(5)
        out["server_modes_5s_after_close"] = [ensemble.mode(s.myid) for s in ensemble.servers]
        check = KazooClient(ensemble.connection_string, timeout=10)
        try:
            check.start(timeout=15)
            out["left_after_close"] = len(check.get_children(BASE))
            check.stop()
        except Exception as error:  # no quorum: that is the finding
            out["left_after_close"] = f"cannot read: {type(error).__name__}"
        finally:
            check.close()
        for server in ensemble.servers:
            log = (workdir / "zookeeper" / f"zk{server.myid}" / "server.log").read_text(errors="replace")
            out[f"zk{server.myid}"] = {
                "unreasonable_length": log.count("Unreasonable length"),
                "out_of_memory": log.count("OutOfMemoryError"),
                "first": next((line.strip()[:120] for line in log.splitlines() if "Unreasonable length" in line), None),
            }
    finally:
        ensemble.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
