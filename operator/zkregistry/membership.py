"""Membership: an in-memory mirror of the children of each watched service path.

Every replica mirrors every registry's path (so that a standby that becomes leader plans at
once), whoever wrote the znodes. The mirror follows ZooKeeper through one children watch per
path: a listing drops the names that are gone and reads only the names it has not seen, so that a
mass expiry of 10,000 znodes is one watch event and one listing per path. The writer applies the
results of our own transactions, so that the next plan sees them without a round trip. Listings
of one path are at least `LIST_INTERVAL` apart (more for a large path: `LIST_SECONDS_PER_CHILD`),
and `LIST_AFTER_WRITE` apart while we write it. There is no data watch per child: our own znodes
change only through our transactions, unless someone rewrites one by hand (the leader compares
their versions, a few at each turn), and a child that another process rewrites in place is read
again by `refresh` (the periodic resync).

Watch callbacks never block: listings and reads are asynchronous, and their results are applied
on kazoo's completion thread.

The mirror may briefly lag behind ZooKeeper. That is safe: every write names the version it
expects, a transaction is all or nothing, and a failed transaction makes the controller call
`refresh`, which reads the path afresh.

What the mirror must never do is go back in time. A read sent before one of our transactions
may be answered after the transaction was applied to the mirror, and would undo it (a znode we
just created looks deleted, we create it again, the transaction fails, and so on in a storm). So
each path has an epoch, counting our transactions applied to it and the refreshes begun; a
listing or read carries the epoch in which it was sent. A listing from an older epoch is sent
again instead of being applied; so is a read of a name that a later transaction of ours touched
(the path keeps the names of its last `HISTORY` transactions), while a read of another name
stands: otherwise a member added by someone else would never be mirrored while we keep writing
its path. A read sent after a transaction's reply reflects that transaction: ZooKeeper answers a
session in order.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, UnimplementedError
from kazoo.protocol.states import EventType, WatchedEvent

from zkregistry import formats, reads, zk
from zkregistry.formats import Member
from zkregistry.plan import Delete, Node, Op, Replace, Update, other_name
from zkregistry.plan import instance_key as _key

log = logging.getLogger(__name__)

REFRESH_ATTEMPTS = 5  # listings a refresh may try while transactions of ours keep landing
HISTORY = 64  # transactions of ours per path whose names tell whether a read is stale
#: Seconds between two listings of one path. Every write under a path fires its children watch,
#: and each listing costs O(path): a burst of events then costs one listing per interval.
LIST_INTERVAL = 0.1
#: ... and longer for a large path: seconds per child it holds, up to `LIST_AFTER_WRITE`, so that a
#: burst's listings cost a bounded share of a core per path whatever its size (2,000 children:
#: 0.5 s). A standby's mirror may then lag that much behind the leader's last writes; a takeover
#: planned against it only has a transaction refused and the path listed again.
LIST_SECONDS_PER_CHILD = 0.00025
#: Seconds between two listings of a path that we wrote in the last such interval. The mirror has
#: applied our writes already, so such a listing mostly sets the watch again (our own transactions
#: fire it) and shows what others did meanwhile: a leader writing a path all the time lists it
#: once a second, not ten times, and sees a change by someone else within about a second.
LIST_AFTER_WRITE = 1.0
#: znodes read in one multiRead (`verify`, and the children new to the mirror): one request and
#: one reply for a hundred.
READ_BATCH = 100


class Membership:
    def __init__(
        self,
        client: KazooClient,
        on_change: Callable[[str, set[str]], None],
        timeout: float = 10.0,
        owner: str | None = None,
        batched: bool = False,
    ) -> None:
        """`on_change(path, keys)` is called, on a kazoo thread and without blocking, when znodes
        under `path` appear or vanish: `keys` are the pods (uid, or name) whose znodes changed.
        `owner` is our owner id: our registrations change only through our own transactions, so
        `refresh` need not read them again (without it, it reads every child). `batched`: the
        ensemble answers multiRead (`reads.supported`), which `verify` then uses."""
        self.client = client
        self.owner = owner
        self.after_write = LIST_AFTER_WRITE
        self.on_change = on_change
        self.timeout = timeout  # bound of each blocking read of `refresh`
        self._nodes: dict[str, dict[str, Node]] = {}  # path -> name -> node
        self._keys: dict[str, dict[str, set[str]]] = {}  # path -> instance key -> names
        self._epochs: dict[str, int] = {}  # path -> our transactions applied to it so far
        #: path -> (epoch, names that transaction touched; None: every name, for a refresh)
        self._history: dict[str, deque[tuple[int, frozenset[str] | None]]] = {}
        self._seen: dict[str, int] = {}  # path -> changes the watch applied (a refresh retries on one)
        self._reading = True  # read new children (False once handing over: see `names_only`)
        self._sweep: list[tuple[str, Node]] = []  # registrations of ours that `verify` has yet to check
        self.batched = batched  # `verify` reads in multiReads (False: one stat per znode)
        self._refused = False  # a multiRead was refused: `batched` stays False
        self._unswept: list[str] = []  # paths whose registrations `verify` has yet to take
        self._held: dict[str, bool] = {}  # path under a write of ours -> a listing waits for it
        self._listed: dict[str, float] = {}  # path -> when its last listing was sent
        self._written: dict[str, float] = {}  # path -> when a write of ours to it last ended
        self._due: dict[str, float] = {}  # path -> when its deferred listing is to be sent
        #: Handing over: path -> name listed that the mirror does not hold -> when first listed.
        self._appeared: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._deferred = threading.Condition(self._lock)
        self._lister: threading.Thread | None = None  # sends deferred listings; started on demand

    # -- what callers read ------------------------------------------------------------------

    def paths(self) -> list[str]:
        with self._lock:
            return list(self._nodes)

    def snapshot(self, path: str) -> dict[str, Node]:
        """A copy of what is known to be under `path`, keyed by znode name."""
        with self._lock:
            return dict(self._nodes.get(path, {}))

    def nodes_of(self, path: str, key: str) -> list[Node]:
        """The znodes under `path` that register pod `key` (any owner, any format). O(1)."""
        with self._lock:
            nodes = self._nodes.get(path, {})
            return [nodes[name] for name in self._keys.get(path, {}).get(key, ())]

    def has(self, path: str, name: str) -> bool:
        with self._lock:
            return name in self._nodes.get(path, {})

    def count(self, path: str, predicate: Callable[[Node], bool]) -> int:
        with self._lock:
            return sum(1 for n in self._nodes.get(path, {}).values() if predicate(n))

    # -- what the controller asks -----------------------------------------------------------

    def watch(self, path: str) -> bool:
        """Start mirroring `path` (idempotent, non-blocking); True if it was not mirrored yet."""
        with self._lock:
            if path in self._nodes:
                return False
            self._nodes[path], self._keys[path] = {}, {}
        self._list(path)
        return True

    def unwatch(self, path: str) -> None:
        """Stop mirroring `path`. Watches already set fire once more and are ignored."""
        with self._lock:
            self._nodes.pop(path, None)
            self._keys.pop(path, None)

    def names_only(self) -> None:
        """From now on learn only the names under each path, and read no new child. A replica
        handing over waits for its own znodes to go or to be superseded (`awaiting_successor`);
        ZooKeeper answers a session in order, so a read of each of a successor's thousands of new
        znodes would delay the listings that show either. The listings that wait after our last
        writes are sent now: until they are, no watch tells of the successor's changes."""
        self._reading = False
        with self._lock:
            self._written.clear()
            waiting = list(self._due)
        for path in waiting:
            self._list(path)

    def refresh(self, path: str, reread: bool = False) -> None:
        """List `path` afresh, which sets its children watch again (a reconnect drops it), and read
        the children that need it: with `reread` every one, else those new to the mirror and those
        not of a known format of ours (ours change only through transactions of ours, or by hand:
        see `verify`; a foreign one may have been rewritten in place, which no watch tells).
        Blocking, each call bounded by `timeout`; raises one of `zk.ERRORS` if the listing fails.
        A child that cannot be read (NoAuth) is kept, with no member. A listing older than a change
        that the watch applied meanwhile is not committed but sent again. Under a stream of our
        own transactions or of such changes it may give up after a few attempts: the watch keeps
        the mirror current meanwhile."""
        for _ in range(REFRESH_ATTEMPTS):
            with self._lock:
                if path not in self._nodes:
                    return
                # Listings and reads still in flight are older than this one: they list again.
                epoch = self._advance(path, None)
                seen = self._seen.get(path, 0)
                known = dict(self._nodes[path])
            try:
                names = zk.wait(self.client.get_children_async(path, watch=self._on_children), self.timeout)
            except NoNodeError:
                names = []
                if zk.wait(self.client.exists_async(path, watch=self._on_children), self.timeout) is not None:
                    continue  # created meanwhile
            wanted = [n for n in names if reread or n not in known or not self._settled(known[n])]
            if not self._reading:
                wanted = []
            nodes = {name: known[name] for name in names if name in known}
            for name, answer in zip(wanted, self._read_all(path, wanted), strict=True):
                if isinstance(answer, NoNodeError):
                    nodes.pop(name, None)
                    continue
                if isinstance(answer, Exception):  # unreadable to us: a child all the same
                    nodes[name] = Node(name=name, data=b"", version=-1, session=0, member=None)
                    continue
                node = _node(name, *answer)
                old = known.get(name)
                if old is not None and old.session == node.session and old.created:
                    node = replace(node, created=old.created)  # when we created it is known only here
                nodes[name] = node
            with self._lock:
                if path not in self._nodes:
                    return
                if self._epochs.get(path, 0) != epoch or self._seen.get(path, 0) != seen:
                    continue  # a transaction of ours, or a newer listing, landed meanwhile: again
                old_nodes = self._nodes[path]
                changed = _keys_of(n for name, n in nodes.items() if old_nodes.get(name) != n)
                changed |= _keys_of(n for name, n in old_nodes.items() if name not in nodes)
                self._nodes[path] = nodes
                self._keys[path] = _index(nodes.values())
                if not self._reading:
                    self._note_appeared(path, set(names), nodes)
            self.on_change(path, changed)
            return

    def _read_all(self, path: str, names: list[str]) -> list[reads.Result]:
        """Reads these children of `path`, blocking, each request bounded by `timeout`: one answer
        per name, in order, (data, stat) or the error of that read. `READ_BATCH` to a multiRead
        if `batched` (a refused or unreadable one: a read each from then on), else a read each.
        Raises one of `zk.LOST` if the connection fails, one of `zk.ERRORS` if a whole multiRead
        fails otherwise."""
        if self.batched:
            sent = [
                reads.get_many(self.client, [f"{path}/{name}" for name in names[i : i + READ_BATCH]])
                for i in range(0, len(names), READ_BATCH)
            ]
            try:
                return [answer for result in sent for answer in zk.wait(result, self.timeout)]
            except zk.LOST:
                raise
            except (UnimplementedError, ValueError, RuntimeError, struct.error):  # refused, or unreadable
                self._unbatch()
        answers: list[reads.Result] = []
        for result in [self.client.get_async(f"{path}/{name}") for name in names]:
            try:
                answers.append(zk.wait(result, self.timeout))
            except zk.LOST:
                raise
            except zk.ERRORS as error:
                answers.append(error)
        return answers

    def verify(self, limit: int, start: bool = False) -> None:
        """Check that nobody rewrote our registrations by hand, `limit` of them per call, in rounds
        over every path (`start` begins one, unless one is under way): fetch each (without
        blocking, `READ_BATCH` to a multiRead if `batched`, else a stat each) and read again one
        whose version or owner is not the mirror's, which is then reported (`on_change`). A few
        per call, so that the reads never queue thousands deep ahead of our transactions
        (ZooKeeper answers a session in order)."""
        with self._lock:
            if start and not self._sweep and not self._unswept:
                self._unswept = list(self._nodes)
            # A path at a time, as the round goes: a call costs O(limit + one path), never O(all).
            while len(self._sweep) < limit and self._unswept:
                path = self._unswept.pop()
                self._sweep += [(path, n) for n in self._nodes.get(path, {}).values() if self._settled(n)]
            batch, self._sweep = self._sweep[-limit:], self._sweep[:-limit]
            batch = [(path, node) for path, node in batch if self._nodes.get(path, {}).get(node.name) is node]
        if not self.batched:
            return self._stat_each(batch)
        for i in range(0, len(batch), READ_BATCH):
            some = batch[i : i + READ_BATCH]
            reads.get_many(self.client, [f"{path}/{node.name}" for path, node in some]).rawlink(
                lambda result, some=some: self._on_batch(some, result)
            )

    def allow_batches(self, answered: bool) -> None:
        """What `reads.supported` found: multiReads from now on if the ensemble answered one, unless
        a server of it has refused one already (`_unbatch`), which no later probe overrides."""
        self.batched = answered and not self._refused

    def _unbatch(self) -> None:
        """A server of the ensemble refused a multiRead (one older than 3.6 joined it since
        `reads.supported` asked) or answered one unreadably: one read per znode from now on."""
        if self.batched:
            log.warning("a ZooKeeper server does not answer multiRead: znodes are read one at a time from now on")
        self.batched, self._refused = False, True

    def _stat_each(self, batch: list[tuple[str, Node]]) -> None:
        for path, node in batch:
            self.client.exists_async(f"{path}/{node.name}").rawlink(
                lambda result, path=path, node=node: self._on_stat(path, node, _stat(result))
            )

    def _on_batch(self, checked: list[tuple[str, Node]], result) -> None:
        try:
            answers = result.get()
        except UnimplementedError:  # a stat per znode from now on, these first
            self._unbatch()
            return self._stat_each(checked)
        except zk.ERRORS:  # the connection, most likely: the next resync checks again
            return
        except Exception:  # a reply that could not be read: these wait for the next round
            log.exception("a multiRead reply could not be read")
            self._unbatch()
            return
        if len(answers) != len(checked):
            log.warning("a multiRead of %d znodes was answered %d times", len(checked), len(answers))
            return
        for (path, node), answer in zip(checked, answers, strict=True):
            # NoNode: gone, which the children watch tells; NoAuth and the like: not ours to check
            if isinstance(answer, tuple):
                self._on_stat(path, node, answer[1])

    def _on_stat(self, path: str, node: Node, stat) -> None:
        """`stat` is what ZooKeeper holds under `node`'s name (None: nothing, or unknown)."""
        if stat is None or (stat.version == node.version and stat.ephemeralOwner == node.session):
            return  # unchanged, or gone (which the children watch tells)
        self._reread(path, node.name, REFRESH_ATTEMPTS)

    def _reread(self, path: str, name: str, attempts: int) -> None:
        """Read `name` again; if a transaction of ours lands meanwhile, read it again once more,
        up to `attempts` times (a listing would not: the name is not new)."""
        with self._lock:
            if name not in self._nodes.get(path, {}):
                return  # gone meanwhile: nothing to repair
            epoch = self._epochs.get(path, 0)
        again = (lambda: self._reread(path, name, attempts - 1)) if attempts > 1 else None
        self.client.get_async(f"{path}/{name}").rawlink(
            lambda result: self._on_read(path, name, epoch, result, again)
        )

    def forget_disowned(self, session: int, owner: str, deadline: float) -> None:
        """Handing over: fetch the stat of each znode that the mirror holds as ours and
        `session`'s (pipelined, no data), and forget those gone or now another session's. A
        successor that replaced one in place (its other name was taken) changed no listing.
        Waits until `deadline` (monotonic) at the latest; errors leave the mirror as it was."""
        with self._lock:
            held = [(p, n) for p, nodes in self._nodes.items() for n in nodes.values() if _held(n, session, owner)]
        stats = [(path, node, self.client.exists_async(f"{path}/{node.name}")) for path, node in held]
        for path, node, result in stats:
            try:
                stat = zk.wait(result, max(0.0, deadline - time.monotonic()))
            except zk.ERRORS:
                return
            if stat is not None and stat.ephemeralOwner == session:
                continue
            with self._lock:
                nodes, keys = self._nodes.get(path), self._keys.get(path)
                if nodes is not None and keys is not None and nodes.get(node.name) is node:
                    _drop(nodes, keys, node.name)

    def awaiting_successor(self, session: int, owner: str, settled: float) -> int:
        """Handing over: how many registrations of ours that `session` holds have no successor's
        yet. A registration has one once its pod's other name (`plan.other_name`), a name that
        this mirror does not hold (it reads no new child while handing over), was listed at or
        before `settled`: a successor made it anew there, and clients have had the time to read
        it. No I/O: a stat of each such name to check its owner cost 4 s at 10,000
        (`benchmarks.handover`), and only a successor creates a name derived from a pod's uid
        while we hand over."""
        awaiting = 0
        for path in self.paths():  # the lock a path at a time: the listings go on meanwhile
            with self._lock:
                nodes, appeared = self._nodes.get(path, {}), self._appeared.get(path, {})
                awaiting += sum(
                    1
                    for node in nodes.values()
                    if _held(node, session, owner) and appeared.get(other_name(node.name), math.inf) > settled
                )
        return awaiting

    def hold(self, paths: Iterable[str]) -> None:
        """A write of ours to `paths` begins: their listings wait until `release`. Each of our
        transactions fires the children watch, and a listing answered before its `applied` is
        stale and sent again: without this, one listing of the whole path per transaction."""
        with self._lock:
            for path in paths:
                self._held.setdefault(path, False)

    def release(self, paths: Iterable[str]) -> None:
        """The write to `paths` is over and `applied`: the listings that waited follow, one per
        path, `after_write` seconds after the path's last listing at the soonest."""
        now = time.monotonic()
        with self._lock:
            due = [path for path in paths if self._held.pop(path, False)]
            self._written.update(dict.fromkeys(paths, now))
        for path in due:
            self._list(path)

    def applied(self, path: str, ops: Iterable[Op], results: list, session: int) -> None:
        """Record the effect of a committed transaction of ours: `results` are kazoo's, in the
        order of the ZooKeeper operations that `ops` expanded to."""
        with self._lock:
            nodes, keys = self._nodes.get(path), self._keys.get(path)
            if nodes is None or keys is None:
                return
            position, now, touched = 0, time.monotonic(), set()
            for op in ops:
                if isinstance(op, Delete | Replace):
                    _drop(nodes, keys, op.name)
                    touched.add(op.name)
                    position += 1
                if isinstance(op, Update):
                    touched.add(op.name)
                    created = nodes[op.name].created if op.name in nodes else 0.0
                    member = op.member if op.member is not None else _member(op.name, op.data)
                    _put(nodes, keys, Node(op.name, op.data, op.version + 1, session, member, created))
                    position += 1
                elif not isinstance(op, Delete):
                    new = op.new if isinstance(op, Replace) else op
                    name = str(results[position]).rsplit("/", 1)[1]
                    member = new.member
                    if member is None:  # a takeover's new name for the same bytes: the member is known
                        twin = _twin(nodes, keys, new.uid, new.data)
                        member = twin.member if twin is not None else _member(name, new.data)
                    _put(nodes, keys, Node(name, new.data, 0, session, member, now))
                    touched.add(name)
                    position += 1
            self._advance(path, frozenset(touched))

    def _advance(self, path: str, touched: frozenset[str] | None) -> int:
        """A transaction of ours that touched these names (None: a refresh, as if every name) is
        applied to `path`: the next epoch (lock held)."""
        epoch = self._epochs[path] = self._epochs.get(path, 0) + 1
        self._history.setdefault(path, deque(maxlen=HISTORY)).append((epoch, touched))
        return epoch

    def _current(self, path: str, name: str, epoch: int) -> bool:
        """Whether a read of `name` sent in `epoch` is still true: no transaction of ours (or
        refresh) touched the name since (lock held). Unknown, past the history: not current."""
        if self._epochs.get(path, 0) == epoch:
            return True
        history = self._history.get(path, ())
        if not history or history[0][0] > epoch + 1:
            return False
        return all(touched is not None and name not in touched for at, touched in history if at > epoch)

    def _note_appeared(self, path: str, names: set[str], nodes: dict[str, Node]) -> None:
        """Handing over: when each listed name that the mirror does not hold was first listed
        (lock held). A successor's new znodes are never read then (`names_only`)."""
        now, appeared = time.monotonic(), self._appeared.setdefault(path, {})
        for name in names - nodes.keys():
            appeared.setdefault(name, now)
        for name in appeared.keys() - names:
            del appeared[name]

    def _settled(self, node: Node) -> bool:
        """Whether the mirror's copy of `node` needs no re-reading: one of our registrations."""
        return node.member is not None and self.owner is not None and node.member.owner == self.owner

    # -- the watch (kazoo's threads; nothing here blocks) ------------------------------------

    def _on_children(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE:  # a session event, not a change: reconnecting refreshes
            return
        self._list(event.path)

    def _list(self, path: str) -> None:
        """List `path` now, or once its interval since the last listing has passed."""
        with self._lock:
            if path not in self._nodes:
                return
            if path in self._held:  # after the write (`release`)
                self._held[path] = True
                return
            now = time.monotonic()
            interval = min(self.after_write, len(self._nodes[path]) * LIST_SECONDS_PER_CHILD)
            if now - self._written.get(path, -math.inf) < self.after_write:
                interval = self.after_write
            if not self._reading:  # handing over: only these listings show our znodes gone
                interval = 0.0
            interval = max(LIST_INTERVAL, interval)
            due = self._listed.get(path, -interval) + interval
            if due > now:  # listed a moment ago: once more, a little later, for all events meanwhile
                self._defer(path, due)
                return
            self._listed[path] = now
            epoch = self._epochs.get(path, 0)
        self.client.get_children_async(path, watch=self._on_children).rawlink(
            lambda result: self._on_listing(path, epoch, result)
        )

    def _defer(self, path: str, due: float) -> None:
        """Have `path` listed at `due`, or sooner if it already is (lock held)."""
        if self._due.get(path, math.inf) <= due:
            return
        self._due[path] = due
        if self._lister is None:
            self._lister = threading.Thread(target=self._send_deferred, name="mirror-lister", daemon=True)
            self._lister.start()
        self._deferred.notify()

    def _send_deferred(self) -> None:
        while True:
            with self._deferred:
                while not self._due:
                    self._deferred.wait()
                now = time.monotonic()
                due = [path for path, when in self._due.items() if when <= now]
                if not due:
                    self._deferred.wait(min(self._due.values()) - now)
                    continue
                for path in due:
                    del self._due[path]
            for path in due:
                self._list(path)

    def _on_listing(self, path: str, epoch: int, result) -> None:
        try:
            names = set(result.get())
        except NoNodeError:
            # Not there (yet): be told when it is created, or list again if it just was.
            self.client.exists_async(path, watch=self._on_children).rawlink(
                lambda exists: self._list(path) if exists.successful() and exists.get() is not None else None
            )
            names = set()
        except zk.ERRORS as error:  # connection lost: the reconnect refreshes every path
            log.debug("listing %s failed: %s", path, type(error).__name__)
            return
        with self._lock:
            nodes, keys = self._nodes.get(path), self._keys.get(path)
            if nodes is None or keys is None:
                return
            if self._epochs.get(path, 0) != epoch:
                stale = True
            else:
                stale = False
                gone = [nodes[name] for name in nodes.keys() - names]
                for node in gone:
                    _drop(nodes, keys, node.name)
                if gone:
                    self._seen[path] = self._seen.get(path, 0) + 1
                if self._reading:
                    new = names - nodes.keys()
                else:  # handing over: names only
                    new = set()
                    self._note_appeared(path, names, nodes)
                epoch_now = self._epochs.get(path, 0)
        if stale:  # older than a transaction of ours: list again
            return self._list(path)
        if self.batched:
            new = sorted(new)
            for i in range(0, len(new), READ_BATCH):
                some = new[i : i + READ_BATCH]
                reads.get_many(self.client, [f"{path}/{name}" for name in some]).rawlink(
                    lambda result, some=some: self._on_reads(path, some, epoch_now, result)
                )
        else:
            for name in new:
                self.client.get_async(f"{path}/{name}").rawlink(
                    lambda result, name=name: self._on_read(path, name, epoch_now, result)
                )
        if gone:
            self.on_change(path, _keys_of(gone))

    def _on_read(self, path: str, name: str, epoch: int, result, again: Callable[[], None] | None = None) -> None:
        """Applies a read of `name` sent in `epoch`; a stale one calls `again`, else lists again."""
        try:
            answer = result.get()
        except NoNodeError:
            return  # gone again: the next listing says so
        except zk.ERRORS:  # connection lost: the reconnect refreshes every path
            return
        applied, stale = self._apply_reads(path, epoch, [(name, answer)])
        if stale:  # sent before a transaction of ours landed: read or list again
            return again() if again is not None else self._list(path)
        if applied:
            self.on_change(path, _keys_of(applied))

    def _on_reads(self, path: str, names: list[str], epoch: int, result) -> None:
        """Applies a multiRead of `names` sent in `epoch`; if any read is stale, lists again."""
        try:
            answers = result.get()
        except UnimplementedError:  # the next listing reads them one at a time
            self._unbatch()
            return self._list(path)
        except zk.ERRORS:  # connection lost: the reconnect refreshes every path
            return
        except Exception:  # a reply that could not be read: the next listing reads them one at a time
            log.exception("a multiRead reply could not be read")
            self._unbatch()
            return self._list(path)
        applied, stale = self._apply_reads(path, epoch, list(zip(names, answers, strict=False)))
        if stale or len(answers) != len(names):
            self._list(path)
        if applied:
            self.on_change(path, _keys_of(applied))

    def _apply_reads(self, path: str, epoch: int, answers: list[tuple[str, reads.Result]]) -> tuple[list[Node], bool]:
        """Puts each read child into the mirror unless a transaction of ours touched it since
        `epoch` (then stale); a read that failed (gone, unreadable) is left to the next listing.
        Returns the nodes put and whether any read was stale."""
        applied: list[Node] = []
        stale = False
        with self._lock:
            nodes, keys = self._nodes.get(path), self._keys.get(path)
            if nodes is None or keys is None:
                return [], False
            for name, answer in answers:
                if not isinstance(answer, tuple):
                    continue
                if not self._current(path, name, epoch):
                    stale = True
                    continue
                node = _node(name, *answer)
                _put(nodes, keys, node)
                applied.append(node)
            if applied:
                self._seen[path] = self._seen.get(path, 0) + 1
        return applied, stale


def _stat(result):
    """The stat of a kazoo `exists` result; None if it failed (the next resync checks again)."""
    try:
        return result.get()
    except zk.ERRORS:
        return None


def _held(node: Node, session: int, owner: str) -> bool:
    """Whether `node` is a registration of `owner` that `session` owns."""
    return node.session == session and node.member is not None and node.member.owner == owner


def _node(name: str, data: bytes, stat) -> Node:
    """A znode as the plan sees it, its data read in whichever known format fits."""
    return Node(name=name, data=data, version=stat.version, session=stat.ephemeralOwner, member=_member(name, data))


def _member(name: str, data: bytes) -> Member | None:
    """`data` read in whichever known format fits; None if none does."""
    try:
        return formats.read_any(name, data)[1]
    except ValueError:
        return None


def _twin(nodes: dict[str, Node], keys: dict[str, set[str]], uid: str | None, data: bytes) -> Node | None:
    """A node already held for pod `uid` with exactly these bytes, if any."""
    for name in keys.get(uid, ()) if uid else ():
        node = nodes[name]
        if node.data == data:
            return node
    return None


def _keys_of(nodes: Iterable[Node]) -> set[str]:
    return {_key(n) for n in nodes}


def _index(nodes: Iterable[Node]) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for node in nodes:
        keys.setdefault(_key(node), set()).add(node.name)
    return keys


def _put(nodes: dict[str, Node], keys: dict[str, set[str]], node: Node) -> None:
    _drop(nodes, keys, node.name)
    nodes[node.name] = node
    keys.setdefault(_key(node), set()).add(node.name)


def _drop(nodes: dict[str, Node], keys: dict[str, set[str]], name: str) -> None:
    old = nodes.pop(name, None)
    if old is not None:
        names = keys.get(_key(old))
        if names is not None:
            names.discard(name)
            if not names:
                del keys[_key(old)]
