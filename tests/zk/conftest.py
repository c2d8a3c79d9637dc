"""Fixtures of the zk tier: a fresh root per test, and one replica's ZooKeeper side (client,
election, mirror, writer) driven by the test as the controller's thread would drive it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from zkregistry.election import Election
from zkregistry.formats import curator
from zkregistry.membership import Membership
from zkregistry.model import Instance
from zkregistry.plan import Wanted, calculate
from zkregistry.writer import Outcome, Writer

OWNER = "test-owner"


def new_client(ensemble, timeout: float = 4.0) -> KazooClient:
    c = KazooClient(ensemble.connection_string, timeout=timeout)
    c.start(timeout=30)
    return c


def wanted(n: int, service: str, owner: str = OWNER, start: int = 0, port: int = 80) -> dict[str, Wanted]:
    """`n` desired Curator registrations, uids uid-<start>..., each with its decoded member as
    the controller makes them."""
    out = {}
    for i in range(start, start + n):
        instance = Instance(f"uid-{i}", service, "10.0.0.1", port + i, "ns", f"pod-{i}", "web", 0)
        member = curator.CODEC.member(instance, owner)
        out[instance.id] = Wanted(instance.id, curator.CODEC.encode(instance, owner), uid=instance.id, member=member)
    return out


@pytest.fixture
def root(zk) -> Iterator[str]:
    """A fresh root for one test, with its service path made; removed afterwards."""
    root = f"/t-{uuid.uuid4().hex[:6]}"
    zk.ensure_path(f"{root}/services/web")
    yield root
    zk.delete(root, recursive=True)


class Replica:
    """One replica's ZooKeeper side. `sync` plans and writes until nothing is left to do (make,
    then break), as the controller's rounds do."""

    def __init__(self, ensemble, root: str, path: str, name: str, timeout: float = 4.0):
        self.client = new_client(ensemble, timeout)
        self.changed = threading.Event()
        self.membership = Membership(
            self.client, on_change=lambda p, keys: self.changed.set(), timeout=timeout, batched=True
        )  # the ensemble is 3.6 or later (`reads.supported`)
        self.membership.watch(path)
        self.writer = Writer(self.client, self.membership, batch=10, timeout=timeout)
        self.election = Election(self.client, f"{root}/election", name, on_change=lambda: None, timeout=timeout)
        self.path = path

    def session(self) -> int:
        return self.client.client_id[0]

    def lead(self) -> None:
        self.election.join()
        self.election.step()

    def sync(self, desired: dict[str, Wanted], rounds: int = 4) -> Outcome:
        total = Outcome()
        for _ in range(rounds):
            plan = calculate(desired, self.membership.snapshot(self.path), OWNER, self.session())
            if not plan:
                break
            outcome = self.writer.apply({self.path: plan.ops}, self.election.node or "/none")[self.path]
            total.applied += outcome.applied
            total.failed += outcome.failed
            total.zk_ops += outcome.zk_ops
            if outcome.failed:
                self.membership.refresh(self.path)
        return total

    def close(self) -> None:
        self.client.stop()
        self.client.close()


@pytest.fixture
def replica_factory(ensemble, root) -> Iterator:
    made: list[Replica] = []

    def make(name: str, path: str | None = None) -> Replica:
        replica = Replica(ensemble, root, path or f"{root}/services/web", name)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.close()
