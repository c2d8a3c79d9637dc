"""The writer: applies a plan to ZooKeeper in fenced, pipelined multi transactions.

Each transaction holds up to `batch` operations and begins with a `check` of the leader's
election znode, so that a replica that lost leadership without knowing it (paused, partitioned)
changes nothing: its check fails and so does the whole transaction. All transactions of a plan
are sent at once and awaited together (pipelining is what makes ZooKeeper fast: about 80 times
the throughput of one synchronous create at a time).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from zkregistry.membership import Membership
from zkregistry.plan import Create, Delete, Op, Replace, Update

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    applied: int = 0  # operations of the plan that took effect
    failed: int = 0  # operations in transactions that failed (stale plan or lost leadership)
    zk_ops: int = 0  # ZooKeeper operations sent, checks included


class Writer:
    def __init__(self, client: KazooClient, membership: Membership, acl: list | None = None, batch: int = 100) -> None:
        self.client = client
        self.membership = membership
        self.acl = acl
        self.batch = batch

    def apply(self, path: str, ops: Sequence[Op], fence: str) -> Outcome:
        """Apply `ops` under `path`, each transaction fenced by the existence of `fence`."""
        outcome = Outcome()
        session = self.client.client_id[0] if self.client.client_id else 0
        pending = []
        for start in range(0, len(ops), self.batch):
            chunk = ops[start : start + self.batch]
            transaction = self.client.transaction()
            transaction.check(fence, 0)
            for op in chunk:
                self._add(transaction, path, op)
            outcome.zk_ops += len(transaction.operations)
            pending.append((chunk, transaction.commit_async()))
        for chunk, result in pending:
            try:
                results = result.get()
            except KazooException as error:  # connection lost mid-flight
                log.warning("transaction on %s not applied: %s", path, error)
                outcome.failed += len(chunk)
                continue
            if any(isinstance(r, Exception) for r in results):
                reasons = sorted({type(r).__name__ for r in results if isinstance(r, Exception)})
                log.info("transaction on %s refused (%s): will re-read and plan again", path, ", ".join(reasons))
                outcome.failed += len(chunk)
                continue
            self.membership.applied(path, chunk, results[1:], session)
            outcome.applied += len(chunk)
        return outcome

    def _add(self, transaction, path: str, op: Op) -> None:
        if isinstance(op, Delete):
            transaction.delete(f"{path}/{op.name}", op.version)
        elif isinstance(op, Update):
            transaction.set_data(f"{path}/{op.name}", op.data, op.version)
        else:
            if isinstance(op, Replace):
                transaction.delete(f"{path}/{op.name}", op.version)
                op = op.new
            assert isinstance(op, Create)
            transaction.create(f"{path}/{op.name}", op.data, acl=self.acl, ephemeral=True, sequence=op.sequential)
