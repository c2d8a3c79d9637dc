"""The writer and the election against a real ensemble: fenced transactions, takeover in place,
and a deposed leader that cannot write."""

from __future__ import annotations

import threading
import uuid

import pytest
from kazoo.client import KazooClient

from conftest import eventually
from zkregistry.election import Election
from zkregistry.formats import curator
from zkregistry.membership import Membership
from zkregistry.model import Instance
from zkregistry.plan import Wanted, calculate
from zkregistry.writer import Writer

OWNER = "test-owner"


def client(ensemble) -> KazooClient:
    c = KazooClient(ensemble.connection_string, timeout=4)
    c.start(timeout=30)
    return c


def wanted(n: int, service: str) -> dict[str, Wanted]:
    out = {}
    for i in range(n):
        instance = Instance(f"uid-{i}", service, "10.0.0.1", 80 + i, "ns", f"pod-{i}", "web", 0)
        out[instance.id] = Wanted(instance.id, curator.CODEC.encode(instance, OWNER))
    return out


@pytest.fixture
def root(zk):
    """A fresh root for one test, with its service path made; removed afterwards."""
    root = f"/t-{uuid.uuid4().hex[:6]}"
    zk.ensure_path(f"{root}/services/web")
    yield root
    zk.delete(root, recursive=True)


class Replica:
    """One replica's ZooKeeper side: a client, an election, a mirror and a writer."""

    def __init__(self, ensemble, root: str, path: str, name: str):
        self.client = client(ensemble)
        self.changed = threading.Event()
        self.membership = Membership(self.client, on_change=lambda p: self.changed.set())
        self.membership.watch(path, curator.CODEC)
        self.writer = Writer(self.client, self.membership, batch=10)
        self.election = Election(self.client, f"{root}/election", name, on_change=lambda: None)
        self.path = path

    def sync(self, desired):
        plan = calculate(desired, self.membership.snapshot(self.path), OWNER, self.client.client_id[0])
        return self.writer.apply(self.path, plan.ops, self.election.node or "/none")

    def close(self):
        self.client.stop()
        self.client.close()


def test_takeover_moves_every_znode_without_a_gap(ensemble, zk, root):
    path = f"{root}/services/web"
    desired = wanted(35, "web")
    a, b = Replica(ensemble, root, path, "a"), Replica(ensemble, root, path, "b")
    try:
        a.election.join()
        b.election.join()
        assert a.election.leader and not b.election.leader
        outcome = a.sync(desired)
        assert outcome.applied == 35 and outcome.failed == 0
        assert outcome.zk_ops == 35 + 4  # four transactions of ten, each with its fence check

        # A watcher that records every listing of the service path.
        sizes: list[int] = []
        zk.ChildrenWatch(path, lambda children: sizes.append(len(children)))

        a.election.leave()
        eventually(lambda: b.election.leader, 10, "b to lead")
        b.membership.refresh(path)
        outcome = b.sync(desired)
        assert outcome.applied == 35 and outcome.failed == 0
        owners = {zk.get(f"{path}/{name}")[1].ephemeralOwner for name in zk.get_children(path)}
        assert owners == {b.client.client_id[0]}
        a.close()  # the old session ends: nothing of b's may go with it
        assert len(zk.get_children(path)) == 35
        assert min(sizes) == 35, f"a watcher saw members disappear: {sizes}"
        # Idempotent: nothing left to do.
        assert b.sync(desired).applied == 0
    finally:
        b.close()


def test_a_deposed_leader_cannot_write(ensemble, zk, root):
    path = f"{root}/services/web"
    a = Replica(ensemble, root, path, "a")
    try:
        a.election.join()
        stale_fence = a.election.node
        a.sync(wanted(3, "web"))
        # Someone else removes a's election znode (as the expiry of a's session would).
        zk.delete(stale_fence)
        outcome = a.writer.apply(
            path,
            calculate(wanted(5, "web"), a.membership.snapshot(path), OWNER, a.client.client_id[0]).ops,
            stale_fence,
        )
        assert outcome.applied == 0 and outcome.failed == 2
        assert len(zk.get_children(path)) == 3
    finally:
        a.close()


def test_mirror_sees_external_changes(ensemble, zk, root):
    path = f"{root}/services/web"
    a = Replica(ensemble, root, path, "a")
    try:
        zk.create(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"192.168.0.9","port":80}', ephemeral=True)
        zk.create(f"{path}/junk", b"\xff\x00", ephemeral=True)
        nodes = eventually(lambda: (s := a.membership.snapshot(path)) and len(s) == 2 and s, 5, "mirror")
        assert nodes["vm-1"].member.address == "192.168.0.9" and nodes["vm-1"].member.owner is None
        assert nodes["junk"].member is None
        zk.set(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"192.168.0.10","port":80}')
        eventually(lambda: a.membership.snapshot(path)["vm-1"].member.address == "192.168.0.10", 5, "data change")
        zk.delete(f"{path}/junk")
        eventually(lambda: "junk" not in a.membership.snapshot(path), 5, "removal")
    finally:
        a.close()
