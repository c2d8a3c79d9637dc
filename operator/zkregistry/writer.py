"""The writer: applies plans to ZooKeeper in fenced, pipelined multi transactions.

Each transaction holds up to `batch` operations and begins with a `check` of the leader's
election znode, so that a replica that lost leadership without knowing it (paused, partitioned)
changes nothing: its check fails and so does the whole transaction. Every transaction of every
path is sent at once and awaited together (pipelining is what makes ZooKeeper fast: about 80
times the throughput of one synchronous create at a time), so a takeover of many paths costs one
round trip, not one per path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from zkregistry import zk
from zkregistry.membership import Membership
from zkregistry.plan import Create, Delete, Op, Replace, Update

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    applied: int = 0  # operations of the plan that took effect
    failed: int = 0  # operations in transactions that failed (stale plan or lost leadership)
    zk_ops: int = 0  # ZooKeeper operations sent, checks included
    created: list[Create] = field(default_factory=list)  # creates that took effect
    fence_gone: bool = False  # a transaction found the fence znode gone: leadership is lost


class Writer:
    def __init__(
        self, client: KazooClient, membership: Membership, acl: list | None = None, batch: int = 100,
        timeout: float = 10.0,
    ) -> None:
        self.client = client
        self.membership = membership
        self.acl = acl
        self.batch = batch
        self.timeout = timeout  # bound of the wait for the replies

    def apply(self, plans: Mapping[str, Sequence[Op]], fence: str) -> dict[str, Outcome]:
        """Apply each path's operations, every transaction fenced by the existence of `fence`;
        the mirror records what committed. One Outcome per path."""
        self.membership.hold(plans)
        try:
            return self._apply(plans, fence)
        finally:
            self.membership.release(plans)

    def _apply(self, plans: Mapping[str, Sequence[Op]], fence: str) -> dict[str, Outcome]:
        outcomes = {path: Outcome() for path in plans}
        session = self.client.client_id[0] if self.client.client_id else 0
        pending = []
        for path, ops in plans.items():
            for start in range(0, len(ops), self.batch):
                chunk = ops[start : start + self.batch]
                transaction = self.client.transaction()
                transaction.check(fence, -1)  # exists, whatever its version
                for op in chunk:
                    self._add(transaction, path, op)
                outcomes[path].zk_ops += len(transaction.operations)
                pending.append((path, chunk, transaction.commit_async()))
        for path, chunk, result in pending:
            outcome = outcomes[path]
            try:
                results = zk.wait(result, self.timeout)
            except zk.ERRORS as error:  # connection lost mid-flight, or no answer in time
                log.warning("transaction on %s not applied: %s", path, type(error).__name__)
                outcome.failed += len(chunk)
                continue
            if any(isinstance(r, Exception) for r in results):
                outcome.fence_gone |= isinstance(results[0], NoNodeError)
                reasons = sorted({type(r).__name__ for r in results if isinstance(r, Exception)})
                log.info("transaction on %s refused (%s): will re-read and plan again", path, ", ".join(reasons))
                outcome.failed += len(chunk)
                continue
            self.membership.applied(path, chunk, results[1:], session)
            outcome.applied += len(chunk)
            outcome.created += [op.new if isinstance(op, Replace) else op for op in chunk if _creates(op)]
        return outcomes

    def _add(self, transaction, path: str, op: Op) -> None:
        if isinstance(op, Delete):
            transaction.delete(f"{path}/{op.name}", op.version)
        elif isinstance(op, Update):
            transaction.set_data(f"{path}/{op.name}", op.data, op.version)
        else:
            if isinstance(op, Replace):
                transaction.delete(f"{path}/{op.name}", op.version)
                op = op.new
            transaction.create(f"{path}/{op.name}", op.data, acl=self.acl, ephemeral=True, sequence=op.sequential)


def _creates(op: Op) -> bool:
    return isinstance(op, Create | Replace)
