"""Leader election among the operator's replicas, through ZooKeeper.

The protocol is ZooKeeper's recipe (kazoo's Election, Curator's LeaderLatch): each contender
creates an EPHEMERAL_SEQUENTIAL znode under the election path holding its identifier; the lowest
sequence number leads; every other contender watches only its predecessor, so that a leader's
end wakes one replica, not all. The leader's znode is its fencing token: every write of the
leader checks that it still exists.

Three rules that the bare recipe leaves out, each of which once left the election headless:

- Protected names (as Curator's): the znode is `<guid>-n_<seq>`, the GUID chosen once per
  candidacy. A create whose reply was lost (ConnectionLoss, timeout) may have happened; before
  creating again the contender looks for a child with its GUID and adopts it, so it never leaves
  an orphan of its own live session at the head of the queue.
- kazoo drops every watch when a connection is lost and never sets it again. So the election is
  evaluated afresh, from a new listing, on every CONNECTED, on every event of the predecessor's
  watch, and at least every `CHECK_INTERVAL` seconds.
- Our znode gone while our session lives (deleted by hand, or a write's fence check failed with
  NoNode) is lost leadership: `fence_lost`, then a new candidacy with a new znode.
- A contender of the previous protocol (a plain `n_<seq>` name, which sees only names like its
  own) would lead beside us: while one is there, nobody of ours leads. An upgrade from it is
  therefore a handover from the last old replica to the first new one as after a crash.

Threads: kazoo's state listener and the watch only flip flags and call `on_change`, which must
not block either. Every ZooKeeper call is made by `step`, on the caller's thread (the
controller's), each bounded by `timeout`.

    election = Election(client, "/zkregistry/prod/election", "replica-0", on_change=wake)
    election.join()              # enter at the next step
    election.step()              # on every controller turn
    if election.writable: ...    # leader, and connected right now
    election.leave()             # graceful: the next contender leads at once

States: SUSPENDED (connection lost, session maybe alive) makes `writable` false at once, while
`leader` stays true until the session is known to be LOST or the znode to be gone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NoNodeError, OperationTimeoutError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState, WatchedEvent

from zkregistry import zk

log = logging.getLogger(__name__)

PREFIX = "n_"
CHECK_INTERVAL = 2.0  # seconds between evaluations when nothing has signalled a change
#: Errors after which a create may or may not have reached the server.
UNCERTAIN = (ConnectionLoss, OperationTimeoutError, KazooTimeoutError)


def sequence(name: str) -> str:
    """The sequence number of a contender's znode name (the last ten digits)."""
    return name[-10:]


class Election:
    def __init__(
        self,
        client: KazooClient,
        path: str,
        identifier: str,
        on_change: Callable[[], None],
        acl: list | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.client = client
        self.path = path.rstrip("/")
        self.identifier = identifier
        self.on_change = on_change
        self.acl = acl
        self.timeout = timeout
        self.node: str | None = None  # full path of our contender znode
        self.leader = False
        self.term = 0  # counts the times leadership was gained: a new term is a takeover
        self.connected = client.state == KazooState.CONNECTED
        self.contenders: list[str] = []  # names, in order, as last listed
        self.progress = time.monotonic()  # when `step` last completed
        self._joined = False
        self._guid: str | None = None  # of the current candidacy
        self._attempted = False  # a create with this GUID was sent and may have happened
        self._stale = True  # something may have changed since the last evaluation
        self._checked = 0.0
        self._lock = threading.Lock()  # guards the flags; never held across a ZooKeeper call
        client.add_listener(self._on_state)

    @property
    def writable(self) -> bool:
        """True while this replica leads and is connected: the only time it may write."""
        return self.leader and self.connected

    def join(self) -> None:
        """Enter the election at the next `step`."""
        with self._lock:
            self._joined, self._stale, self.progress = True, True, time.monotonic()
        self.on_change()

    def step(self) -> None:
        """Bring our candidacy up to date: enter if we have no znode, evaluate if anything may have
        changed or `CHECK_INTERVAL` has passed. Raises one of `zk.ERRORS` if ZooKeeper fails;
        the next step tries again."""
        if self._joined and self.connected:
            if self.node is None:
                self._enter()
            for _ in range(5):  # a predecessor that vanishes between listing and watch: again
                if not (self._stale or time.monotonic() - self._checked >= CHECK_INTERVAL):
                    break
                self._evaluate()
        self.progress = time.monotonic()

    def stalled(self, bound: float) -> bool:
        """Whether this replica is in the election but no `step` has completed for `bound` s."""
        return self._joined and time.monotonic() - self.progress > bound

    def fence_lost(self, node: str) -> None:
        """A write fenced by `node` found it gone: leadership ends; a new candidacy follows."""
        with self._lock:
            if node != self.node:
                return
            was = self.leader
            self._reset()
        log.warning("election znode %s is gone while the session lives: leadership ends", node)
        if was:
            self.on_change()

    def leave(self, timeout: float | None = None) -> None:
        """Give up leadership and candidacy; the next contender is elected at once. Raises one of
        `zk.ERRORS` if the znode could not be deleted in time (it then goes with the session)."""
        with self._lock:
            self._joined = False
            node, was = self.node, self.leader
            self._reset()
        if was:
            self.on_change()
        if node is not None:
            with contextlib.suppress(NoNodeError):
                zk.wait(self.client.delete_async(node), self.timeout if timeout is None else timeout)

    def others(self, timeout: float | None = None) -> int:
        """How many other replicas contend now: the successors a graceful handover can wait for.
        Read afresh (bounded by `timeout`); the last evaluation's count if ZooKeeper fails."""
        with contextlib.suppress(*zk.ERRORS):
            self.contenders = self._read_contenders(timeout)
        ours = self.node.rsplit("/", 1)[1] if self.node else None
        return sum(1 for name in self.contenders if name != ours)

    def first(self, timeout: float | None = None) -> str | None:
        """The first contender, read afresh (bounded by `timeout`): the leader, or the one about
        to be. None if nobody contends, and None if ZooKeeper did not answer: a caller that asks
        whether a replica still leads is never told yes by an old answer."""
        try:
            contenders = self._read_contenders(timeout)
        except zk.ERRORS:
            return None
        return contenders[0] if contenders else None

    def _read_contenders(self, timeout: float | None) -> list[str]:
        """The contenders' znode names, in the order of election; raises one of `zk.ERRORS`."""
        children = zk.wait(self.client.get_children_async(self.path), self.timeout if timeout is None else timeout)
        return sorted((c for c in children if PREFIX in c), key=sequence)

    # -- ZooKeeper (the caller's thread) ----------------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            if self._guid is None:
                self._guid, self._attempted = uuid.uuid4().hex, False
            guid, attempted = self._guid, self._attempted
        node = self._find(guid) if attempted else None
        if node is None:
            zk.wait(self.client.ensure_path_async(self.path, acl=self.acl), self.timeout)
            with self._lock:
                self._attempted = True
            try:
                node = zk.wait(
                    self.client.create_async(
                        f"{self.path}/{guid}-{PREFIX}",
                        self.identifier.encode(),
                        acl=self.acl,
                        ephemeral=True,
                        sequence=True,
                    ),
                    self.timeout,
                )
            except UNCERTAIN:
                node = self._find(guid)  # it may have been created: adopt it, never orphan it
                if node is None:
                    raise
        with self._lock:
            lost = self._guid != guid  # LOST came meanwhile: the new session must not keep it
            if not lost:
                self.node, self._stale = node, True
        if lost:
            self.client.delete_async(node)  # gone with the old session, or an orphan of the new one
            return
        log.info("entered the election as %s (%s)", self.identifier, node)

    def _find(self, guid: str) -> str | None:
        children = zk.wait(self.client.get_children_async(self.path), self.timeout)
        return next((f"{self.path}/{c}" for c in children if c.startswith(guid)), None)

    def _evaluate(self) -> None:
        with self._lock:
            node, self._stale = self.node, False  # a change signalled from now on marks it again
        if node is None:
            return
        try:
            children = zk.wait(self.client.get_children_async(self.path), self.timeout)
        except NoNodeError:
            children = []
        contenders = sorted((c for c in children if PREFIX in c), key=sequence)
        self.contenders, self._checked = contenders, time.monotonic()
        ours = node.rsplit("/", 1)[1]
        if ours not in contenders:
            return self.fence_lost(node)
        index = contenders.index(ours)
        legacy = [c for c in contenders if c.startswith(PREFIX) and c != ours]
        if index == 0 and not legacy:
            with self._lock:
                gained = self.node == node and not self.leader
                if gained:
                    self.leader, self.term = True, self.term + 1
            if gained:
                log.info("elected leader as %s (%s)", self.identifier, node)
                self.on_change()
            return
        with self._lock:
            deposed = self.node == node and self.leader
            if deposed:
                self.leader = False
        if deposed:
            log.warning("a contender of the previous protocol is in the election: leadership ends")
            self.on_change()
        predecessor = f"{self.path}/{contenders[index - 1] if index else legacy[0]}"
        if zk.wait(self.client.exists_async(predecessor, watch=self._on_predecessor), self.timeout) is None:
            with self._lock:
                self._stale = True  # gone already: look again

    # -- kazoo's threads: flags only ----------------------------------------------------------

    def _on_predecessor(self, _event: WatchedEvent) -> None:
        with self._lock:
            self._stale = True
        self.on_change()

    def _on_state(self, state: str) -> None:
        with self._lock:
            if state == KazooState.SUSPENDED:
                self.connected = False
            elif state == KazooState.LOST:
                self.connected = False
                if self.leader:
                    log.warning("ZooKeeper session lost: leadership ends")
                self._reset()
            else:  # CONNECTED: our watch may be gone with the old connection
                self.connected, self._stale = True, True
        self.on_change()

    def _reset(self) -> None:
        """No znode, no leadership (lock held); the next step enters with a new GUID."""
        self.node, self.leader, self._guid, self._attempted, self._stale = None, False, None, False, True
