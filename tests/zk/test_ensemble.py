"""The local ensemble is a real quorum: it survives one server down, stops writes at two, and
loses nothing when they come back."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from conftest import eventually


def test_quorum_writes_and_recovery(ensemble, zk):
    zk.ensure_path("/quorum-test")
    zk.create("/quorum-test/before", b"1")
    try:
        ensemble.stop_server(3)
        zk.create("/quorum-test/one-down", b"2")  # 2 of 3 still form a quorum

        ensemble.stop_server(2)
        eventually(lambda: ensemble.mode(1) not in ("leader", "follower"), 30, "server 1 to lose quorum")
        lonely = KazooClient(
            f"127.0.0.1:{ensemble.server(1).client_port}", timeout=2, connection_retry={"max_tries": 0}
        )
        with pytest.raises((KazooException, KazooTimeoutError)):
            lonely.start(timeout=3)
            lonely.create("/quorum-test/no-quorum", b"3")
        lonely.stop()
        lonely.close()
    finally:
        ensemble.start_server(2)
        ensemble.start_server(3)
    check = KazooClient(ensemble.connection_string, timeout=10)
    check.start(timeout=30)
    try:
        assert sorted(check.get_children("/quorum-test")) == ["before", "one-down"]
        check.create("/quorum-test/after", b"4")
        assert check.get("/quorum-test/before")[0] == b"1"
    finally:
        check.delete("/quorum-test", recursive=True)
        check.stop()
        check.close()
