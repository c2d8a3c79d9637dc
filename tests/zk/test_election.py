"""The election's state machine against a real ensemble: reconnects, a lost session, a create
whose reply was lost, and an election znode gone while its session lives. The test drives `step`
as the controller's thread does on every turn."""

from __future__ import annotations

import contextlib
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss
from kazoo.protocol.connection import _CONNECTION_DROP
from kazoo.protocol.states import KazooState

from conftest import eventually


class Driver:
    """Calls `election.step()` every 20 ms on its own thread, as the controller's turns do."""

    def __init__(self, *elections) -> None:
        self.elections = elections
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            for election in self.elections:
                with contextlib.suppress(Exception):  # ZooKeeper unreachable: the next step retries
                    election.step()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def drop_connection(client: KazooClient) -> None:
    """Breaks the client's TCP connection; the session survives and kazoo reconnects."""
    suspended = threading.Event()
    client.add_listener(lambda state: state == KazooState.SUSPENDED and suspended.set())
    client._call(_CONNECTION_DROP, None)
    assert suspended.wait(10)
    eventually(lambda: client.state == KazooState.CONNECTED, 20, "the reconnect")


def expire_session(ensemble, client: KazooClient) -> None:
    """Expires the client's session on the servers, as a long partition would."""
    lost = threading.Event()
    client.add_listener(lambda state: state == KazooState.LOST and lost.set())
    session_id, password = client.client_id
    twin = KazooClient(ensemble.connection_string, client_id=(session_id, password))
    twin.start(timeout=30)
    twin.stop()
    twin.close()
    assert lost.wait(30)


def children(zk, replica) -> list[str]:
    return zk.get_children(replica.election.path)


def test_a_reconnect_rearms_the_watch_on_the_predecessor(zk, replica_factory):
    a, b = replica_factory("a"), replica_factory("b")
    a.lead()
    b.lead()
    assert a.election.leader and not b.election.leader
    predecessor = a.election.node
    drop_connection(b.client)
    # kazoo forgot b's watch on a's znode with the old connection ...
    assert not b.client._data_watchers.get(predecessor)
    b.election.step()
    # ... and the first step after CONNECTED set it again, without waiting for a periodic check.
    assert b.client._data_watchers.get(predecessor)
    driver = Driver(b.election)
    try:
        a.close()  # the leader's session ends: b must be elected
        eventually(lambda: b.election.leader, 10, "b to lead after a's end")
    finally:
        driver.close()


def test_a_lost_session_ends_leadership_and_rejoins_with_a_new_znode(ensemble, zk, replica_factory):
    a = replica_factory("a")
    a.lead()
    old = a.election.node
    assert a.election.leader
    expire_session(ensemble, a.client)
    # kazoo calls its state listeners in no set order: ours may run just after the test's.
    eventually(lambda: not a.election.leader and a.election.node is None, 5, "LOST to end leadership")
    assert not a.election.writable
    eventually(lambda: a.client.connected, 30, "a new session")
    driver = Driver(a.election)
    try:
        eventually(lambda: a.election.leader, 10, "a to lead again")
    finally:
        driver.close()
    assert a.election.node != old and zk.exists(old) is None and zk.exists(a.election.node)
    assert zk.get(a.election.node)[1].ephemeralOwner == a.session()


def test_a_create_whose_reply_was_lost_leaves_no_orphan(zk, replica_factory):
    a = replica_factory("a")
    real = a.client.create_async

    def create_then_lose_the_reply(path, *args, **kwargs):
        if not path.endswith("-n_"):  # ensure_path's creates go through as they are
            return real(path, *args, **kwargs)
        real(path, *args, **kwargs).get(timeout=10)  # the server created it ...
        a.client.create_async = real
        raise ConnectionLoss()  # ... but the reply never arrived

    a.client.create_async = create_then_lose_the_reply
    a.election.join()
    for _ in range(3):
        with contextlib.suppress(ConnectionLoss):  # raised only if the znode cannot be found either
            a.election.step()
    mine = [c for c in children(zk, a) if zk.get(f"{a.election.path}/{c}")[1].ephemeralOwner == a.session()]
    assert len(mine) == 1, f"orphaned election znodes of a live session: {mine}"
    assert a.election.leader and a.election.node == f"{a.election.path}/{mine[0]}"


def test_an_election_znode_gone_while_the_session_lives_is_lost_leadership(zk, replica_factory):
    a, b = replica_factory("a"), replica_factory("b")
    a.lead()
    b.lead()
    zk.delete(a.election.node)  # by hand, or as a fence check would find it
    eventually(lambda: b.election.step() or b.election.leader, 10, "b to lead")
    a.election.fence_lost(a.election.node)
    assert not a.election.leader
    a.election.step()  # enters again, behind b
    assert not a.election.leader and a.election.node is not None
    assert a.election.others() == 1


def test_a_periodic_check_finds_a_vanished_znode_without_any_event(zk, replica_factory):
    a = replica_factory("a")
    a.lead()
    old = a.election.node
    zk.delete(old)  # a leader has no watch on its own znode: no event tells it
    driver = Driver(a.election)
    try:
        eventually(lambda: a.election.node not in (None, old), 10, "a new candidacy")
        eventually(lambda: a.election.leader, 10, "a to lead again")
    finally:
        driver.close()
    assert time.monotonic() - a.election.progress < 5


def test_a_contender_of_the_previous_protocol_keeps_us_from_leading(zk, replica_factory):
    """Replicas of the previous version name their znodes `n_<seq>` and see only such names: if
    ours led beside one of them, two replicas would write."""
    a = replica_factory("a")
    a.lead()
    assert a.election.leader
    old = zk.create(f"{a.election.path}/n_", b"old-replica", ephemeral=True, sequence=True)
    eventually(lambda: a.election.step() or not a.election.leader, 10, "a to step down")
    zk.delete(old)  # the old replica is gone: ours leads again
    eventually(lambda: a.election.step() or a.election.leader, 10, "a to lead again")


def test_the_first_contender_is_the_one_a_handover_hands_to_and_changes_when_it_leaves(zk, replica_factory):
    """A replica handing over counts a successor's new names only while that successor leads
    (`app.Operator.shutdown`): a third leader may replace them in place, which no listing shows."""
    a, b, c = replica_factory("a"), replica_factory("b"), replica_factory("c")
    for replica in (a, b, c):
        replica.lead()
    a.election.leave(timeout=4)
    successor = a.election.first(timeout=4)
    assert successor == b.election.node.rsplit("/", 1)[1]
    assert a.election.first(timeout=4) == successor
    b.election.leave(timeout=4)
    assert a.election.first(timeout=4) == c.election.node.rsplit("/", 1)[1]


def test_the_first_contender_is_unknown_when_zookeeper_does_not_answer(zk, replica_factory):
    a = replica_factory("a")
    a.lead()
    assert a.election.first(timeout=4) == a.election.node.rsplit("/", 1)[1]
    a.client.get_children_async = lambda path, *args, **kwargs: a.client.handler.async_result()  # never answered
    assert a.election.first(timeout=0.2) is None
