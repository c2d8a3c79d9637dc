"""Leader election among the operator's replicas, through ZooKeeper.

The protocol of kazoo's Election recipe (itself ZooKeeper's classic recipe): each contender
creates an EPHEMERAL_SEQUENTIAL znode `<path>/n_<seq>` holding its identifier; the lowest
sequence number leads; every other contender watches only its predecessor, so that a leader's
end wakes one replica, not all. We keep our own small implementation because the replica must
know its own znode (the leader's znode is its fencing token: every write of the leader checks
that it still exists) and must start afresh, with a new znode, after its session is lost.

    election = Election(client, "/zkregistry/default/election", "replica-0", on_change=wake)
    election.join()
    ...
    if election.writable: ...   # leader, and connected right now
    election.leave()            # graceful: the next contender leads at once

States: SUSPENDED (connection lost, session maybe alive) makes `writable` false at once, while
`leader` stays true until the session is known to be LOST; then leadership ends and the replica
rejoins with a new znode when it connects again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.protocol.states import EventType, KazooState, WatchedEvent

log = logging.getLogger(__name__)

PREFIX = "n_"


class Election:
    def __init__(
        self,
        client: KazooClient,
        path: str,
        identifier: str,
        on_change: Callable[[], None],
        acl: list | None = None,
    ) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self.identifier = identifier
        self.on_change = on_change
        self.acl = acl
        self.node: str | None = None  # full path of our contender znode
        self.leader = False
        self.connected = client.state == KazooState.CONNECTED
        self._joined = False
        self._lock = threading.RLock()
        client.add_listener(self._on_state)

    @property
    def writable(self) -> bool:
        """True while this replica leads and is connected: the only time it may write."""
        return self.leader and self.connected

    def join(self) -> None:
        """Enter the election (idempotent); returns at once, leadership is reported by on_change."""
        with self._lock:
            self._joined = True
            if self.node is None:
                self.client.ensure_path(self.path, acl=self.acl)
                self.node = self.client.create(
                    f"{self.path}/{PREFIX}",
                    self.identifier.encode(),
                    acl=self.acl,
                    ephemeral=True,
                    sequence=True,
                )
        self._evaluate()

    def leave(self) -> None:
        """Give up leadership and candidacy; the next contender is elected at once."""
        with self._lock:
            self._joined = False
            node, self.node = self.node, None
            was_leader, self.leader = self.leader, False
        if node is not None:
            with contextlib.suppress(NoNodeError):
                self.client.delete(node)
        if was_leader:
            self.on_change()

    def others(self) -> int:
        """How many other replicas contend: the successors a graceful handover can wait for."""
        ours = self.node.rsplit("/", 1)[1] if self.node else None
        return sum(1 for name in self._contenders() if name != ours)

    def _contenders(self) -> list[str]:
        try:
            children = self.client.get_children(self.path)
        except NoNodeError:
            return []
        return sorted((c for c in children if c.startswith(PREFIX)), key=lambda c: c[len(PREFIX) :])

    def _on_predecessor(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE:  # a session event: _on_state deals with it
            return
        try:
            self._evaluate()
        except KazooException as error:  # connection lost meanwhile: _on_state deals with it
            log.warning("could not re-evaluate the election: %s", type(error).__name__)

    def _evaluate(self) -> None:
        with self._lock:
            if self.node is None:
                return
            contenders = self._contenders()
            ours = self.node.rsplit("/", 1)[1]
            if ours not in contenders:  # our znode went with our session; LOST handles it
                return
            index = contenders.index(ours)
            if index == 0:
                if not self.leader:
                    self.leader = True
                    log.info("elected leader as %s (%s)", self.identifier, self.node)
                    self.on_change()
                return
            predecessor = f"{self.path}/{contenders[index - 1]}"
        # Watch only the predecessor; if it is already gone, look again.
        if self.client.exists(predecessor, watch=self._on_predecessor) is None:
            self._evaluate()

    def _on_state(self, state: str) -> None:
        # Called on kazoo's connection thread: change flags only, never block.
        if state == KazooState.SUSPENDED:
            self.connected = False
        elif state == KazooState.LOST:
            self.connected = False
            with self._lock:
                self.node = None
                if self.leader:
                    log.warning("ZooKeeper session lost: leadership ends")
                self.leader = False
        else:  # CONNECTED
            self.connected = True
            if self._joined and self.node is None:
                self.client.handler.spawn(self._rejoin)
        self.on_change()

    def _rejoin(self) -> None:
        try:
            self.join()
        except Exception:  # the next CONNECTED tries again
            log.exception("could not rejoin the election")
