"""Membership: an in-memory mirror of the children of each watched service path.

Every replica mirrors every registry's path (so that a standby that becomes leader plans at
once), whoever wrote the znodes. The mirror follows ZooKeeper through a children watch on each
path and a data watch on each child it reads; the writer also applies the results of its own
transactions, so that the next plan sees them without waiting for the watch round trip.

The mirror may briefly lag behind ZooKeeper. That is safe: every write names the version it
expects, a transaction is all or nothing, and a failed transaction makes the controller call
`refresh`, which reads the path afresh.

What the mirror must never do is go back in time. A read sent before one of our transactions
may be answered after the transaction was applied to the mirror, and would undo it (a znode we
just created looks deleted, we create it again, the transaction fails, and so on in a storm). So
each path has an epoch, the count of our transactions applied to it; a read carries the epoch in
which it was sent, and a read from an older epoch is sent again instead of being applied. A read
sent after a transaction's reply reflects that transaction: ZooKeeper answers a session in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.protocol.states import EventType, WatchedEvent

from zkregistry.formats import Codec
from zkregistry.plan import Delete, Node, Op, Replace, Update

log = logging.getLogger(__name__)


class Membership:
    def __init__(self, client: KazooClient, on_change: Callable[[str], None]) -> None:
        """`on_change(path)` is called, on a kazoo thread, whenever a path's children change."""
        self.client = client
        self.on_change = on_change
        self._nodes: dict[str, dict[str, Node]] = {}
        self._codecs: dict[str, Codec] = {}
        self._epochs: dict[str, int] = {}  # path -> our transactions applied to it so far
        self._lock = threading.Lock()

    # -- what callers read ------------------------------------------------------------------

    def paths(self) -> list[str]:
        with self._lock:
            return list(self._codecs)

    def snapshot(self, path: str) -> dict[str, Node]:
        """A copy of what is known to be under `path`, keyed by znode name."""
        with self._lock:
            return dict(self._nodes.get(path, {}))

    # -- what the controller asks -----------------------------------------------------------

    def watch(self, path: str, codec: Codec) -> None:
        """Start mirroring `path` (idempotent; a new codec re-reads the children)."""
        with self._lock:
            known = self._codecs.get(path)
            self._codecs[path] = codec
        if known is not codec:
            self.refresh(path)

    def unwatch(self, path: str) -> None:
        """Stop mirroring `path`. Watches already set fire once more and are ignored."""
        with self._lock:
            self._codecs.pop(path, None)
            self._nodes.pop(path, None)

    def refresh(self, path: str) -> None:
        """Read `path` afresh (children and their data) and replace the mirror of it. Blocking."""
        with self._lock:
            codec, epoch = self._codecs.get(path), self._epochs.get(path, 0)
        if codec is None:
            return
        try:
            names = self.client.get_children(path, watch=self._on_children)
        except NoNodeError:
            names = []
            if self.client.exists(path, watch=self._on_children) is not None:
                return self.refresh(path)
        reads = [(name, self.client.get_async(f"{path}/{name}", watch=self._on_data)) for name in names]
        nodes: dict[str, Node] = {}
        for name, result in reads:
            try:
                data, stat = result.get()
            except NoNodeError:
                continue
            nodes[name] = _node(codec, name, data, stat)
        with self._lock:
            stale = self._epochs.get(path, 0) != epoch
            if path in self._codecs and not stale:
                self._nodes[path] = nodes
        if stale:  # a transaction of ours landed meanwhile: read again
            return self.refresh(path)
        self.on_change(path)

    def refresh_all(self) -> None:
        for path in self.paths():
            self.refresh(path)

    def applied(self, path: str, ops: Iterable[Op], results: list, session: int) -> None:
        """Record the effect of a committed transaction of ours: `results` are kazoo's, in the
        order of the ZooKeeper operations that `ops` expanded to."""
        with self._lock:
            codec, nodes = self._codecs.get(path), self._nodes.get(path)
            if codec is None or nodes is None:
                return
            self._epochs[path] = self._epochs.get(path, 0) + 1
            position = 0
            for op in ops:
                if isinstance(op, Delete):
                    nodes.pop(op.name, None)
                    position += 1
                elif isinstance(op, Update):
                    nodes[op.name] = _node(codec, op.name, op.data, None, session, op.version + 1)
                    position += 1
                else:
                    new = op.new if isinstance(op, Replace) else op
                    if isinstance(op, Replace):
                        nodes.pop(op.name, None)
                        position += 1
                    name = str(results[position]).rsplit("/", 1)[1]
                    nodes[name] = _node(codec, name, new.data, None, session, 0)
                    position += 1

    # -- watches (kazoo's callback thread) --------------------------------------------------

    def _on_children(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE:  # a session event, not a change: reconnecting refreshes
            return
        try:
            self._list(event.path)
        except KazooException as error:  # connection lost: `refresh_all` runs on reconnect
            log.debug("listing %s failed: %s", event.path, error)

    def _list(self, path: str) -> None:
        while True:
            with self._lock:
                codec, epoch = self._codecs.get(path), self._epochs.get(path, 0)
            if codec is None:
                return
            try:
                names = set(self.client.get_children(path, watch=self._on_children))
            except NoNodeError:
                names = set()
                if self.client.exists(path, watch=self._on_children) is not None:
                    return self.refresh(path)
            with self._lock:
                if self._epochs.get(path, 0) != epoch:
                    continue  # older than a transaction of ours: list again
                nodes = self._nodes.setdefault(path, {})
                for gone in set(nodes) - names:
                    del nodes[gone]
                new = names - set(nodes)
            break
        for name in new:
            self._read(path, name)
        self.on_change(path)

    def _on_data(self, event: WatchedEvent) -> None:
        # Changed, or deleted (and perhaps created anew by another session): read it again.
        if event.type in (EventType.CHANGED, EventType.DELETED):
            self._read(*event.path.rsplit("/", 1))

    def _read(self, path: str, name: str) -> None:
        with self._lock:
            epoch = self._epochs.get(path, 0)
        self.client.get_async(f"{path}/{name}", watch=self._on_data).rawlink(
            lambda result: self._on_read(path, name, epoch, result)
        )

    def _on_read(self, path: str, name: str, epoch: int, result) -> None:
        try:
            data, stat = result.get()
        except NoNodeError:
            data = stat = None
        except KazooException:  # connection lost: `refresh_all` runs on reconnect
            return
        with self._lock:
            codec, nodes = self._codecs.get(path), self._nodes.get(path)
            if codec is None or nodes is None:
                return
            stale = self._epochs.get(path, 0) != epoch
            if not stale and stat is None:
                nodes.pop(name, None)
            elif not stale:
                nodes[name] = _node(codec, name, data, stat)
        if stale:  # sent before a transaction of ours landed: read again
            self._read(path, name)
        else:
            self.on_change(path)


def _node(codec: Codec, name: str, data: bytes, stat, session: int = 0, version: int = 0) -> Node:
    try:
        member = codec.decode(name, data)
    except ValueError:
        member = None
    if stat is not None:
        session, version = stat.ephemeralOwner, stat.version
    return Node(name=name, data=data, version=version, session=session, member=member)
