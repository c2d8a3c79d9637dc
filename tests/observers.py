"""Observers of one service path that record, per pod, when it was missing.

Clients see a service through one of three kinds of cache, and each can see a member vanish where
the others do not. A delete and a create of the same znode name in one transaction, for example,
is invisible to a children watch, but a data watch on the child fires NodeDeleted, and Curator's
ServiceCache (a CuratorCache on a persistent recursive watch) drops the instance until it has read
the new one. So every observer tracks presence per pod uid, never per znode name, and each runs on
its own ZooKeeper session (Curator's in its own process):

- `ChildrenObserver`: a kazoo children watch; each new child name is read once to learn its pod
  uid. A pod is present when any current child carries its uid.
- `DataObserver`: a children watch on the path and a data watch on every child, whose events are
  handled one at a time, in the order in which ZooKeeper sent them, each completely (a listing
  with the reads of its new names) before the next. NodeDeleted makes that znode absent at once
  (then it is read again: it may have been created anew). A pod is present when any znode that
  the observer believes exists carries its uid.
- `CuratorObserver`: Apache Curator 5.9.0's ServiceCache (tests/interop/harness.py); a pod is
  present when its uid is among the ids of the cache's latest snapshot (Curator's JSON `id`,
  which zkregistry sets to the pod uid in every znode of the Curator format, whatever its name).

    with ObserverSet(hosts, "/ns", "web", program) as observers:
        observers.wait_seen(uids)
        started = time.time()
        ...                                    # the fault
        observers.wait_seen(uids)
        print("\n".join(observers.summary(uids, since=started)))
        assert observers.missing(uids, since=started) == {"children": {}, "data": {}, "curator": {}}

Times are wall-clock seconds (`time.time()`) everywhere, since Curator's process stamps its lines
with Java's `System.currentTimeMillis()`. The bookkeeping (`Presence`, `ChildrenTracker`,
`DataTracker`, `curator_presence`) is pure and tested by tests/unit/test_observers.py; the
observers only feed it what ZooKeeper says.

An observer cannot see while its own connection is down: those periods are recorded as `blind`
and shown in the summary, and after a reconnect the observer reads everything again. An observer
whose server is paused (SIGSTOP) or cut off does not know it until its connection times out
(two thirds of its session timeout, for kazoo): it sees nothing, and records nothing, meanwhile.
Point the observers at servers that a scenario leaves alone.
"""

from __future__ import annotations

import copy
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.protocol.states import EventType, KazooState

from zkregistry.devenv.processes import wait_for
from zkregistry.formats import read_any

Interval = tuple[float, float]


# -- pure bookkeeping ------------------------------------------------------------------------


@dataclass
class Presence:
    """Which pods were present when, from snapshots of the set of present uids.

    `update(t, uids)` says that exactly `uids` were present at time `t`. A uid is tracked from the
    first snapshot that holds it; from then on, each stretch of snapshots without it is one missing
    interval, from the first snapshot that lacks it to the first that holds it again. Snapshots
    must come in time order.
    """

    present: set[str] = field(default_factory=set)
    first_seen: dict[str, float] = field(default_factory=dict)
    updates: int = 0
    last: float | None = None  # time of the latest snapshot
    blind: list[Interval] = field(default_factory=list)  # periods in which the observer saw nothing
    _open: dict[str, float] = field(default_factory=dict)  # uid -> start of its current absence
    _closed: dict[str, list[Interval]] = field(default_factory=dict)
    _blind_since: float | None = None

    def update(self, t: float, uids: Iterable[str]) -> None:
        now = set(uids)
        for uid in now:
            self.first_seen.setdefault(uid, t)
            start = self._open.pop(uid, None)
            if start is not None:
                self._closed.setdefault(uid, []).append((start, t))
        for uid in self.present - now:
            self._open[uid] = t
        self.present = now
        self.updates += 1
        self.last = t

    def blinded(self, t: float) -> None:
        """The observer lost its connection at `t`: what happens next is unknown until `sighted`."""
        if self._blind_since is None:
            self._blind_since = t

    def sighted(self, t: float) -> None:
        """The observer sees again from `t` (it has read everything anew)."""
        if self._blind_since is not None:
            self.blind.append((self._blind_since, t))
            self._blind_since = None

    def blind_periods(self, until: float | None = None) -> list[Interval]:
        """The blind periods; one that has not ended lasts until `until` (default: its start)."""
        spans = list(self.blind)
        if self._blind_since is not None:
            spans.append((self._blind_since, max(self._blind_since, until or self._blind_since)))
        return spans

    def missing(
        self, uids: Iterable[str] | None = None, since: float | None = None, until: float | None = None
    ) -> dict[str, list[Interval]]:
        """uid -> the intervals in which it was missing, clipped to [since, until]; only uids with at
        least one interval. An absence that has not ended lasts until `until` (default: the latest
        snapshot). `uids` defaults to every uid ever seen; a uid never seen has no interval (see
        `never_seen`). An absence shorter than the clock's resolution is kept as (t, t)."""
        lo = -math.inf if since is None else since
        hi = (self.last if self.last is not None else -math.inf) if until is None else until
        wanted = self.first_seen.keys() if uids is None else uids
        out: dict[str, list[Interval]] = {}
        for uid in wanted:
            spans = list(self._closed.get(uid, ()))
            if uid in self._open:
                spans.append((self._open[uid], max(self._open[uid], hi)))
            # In the window: it starts in it, or it started before and lasts into it.
            clipped = [(max(s, lo), min(e, hi)) for s, e in spans if lo <= s <= hi or s < lo < e]
            if clipped:
                out[uid] = clipped
        return out

    def never_seen(self, uids: Iterable[str]) -> set[str]:
        return {u for u in uids if u not in self.first_seen}


def total(missing: Mapping[str, list[Interval]]) -> float:
    """Seconds missing, summed over every pod and interval."""
    return sum(e - s for spans in missing.values() for s, e in spans)


def longest(missing: Mapping[str, list[Interval]]) -> float:
    """The longest single absence, in seconds (0 if none)."""
    return max((e - s for spans in missing.values() for s, e in spans), default=0.0)


def describe(name: str, missing: Mapping[str, list[Interval]], presence: Presence, blind: list[Interval]) -> str:
    """One line for a test's output."""
    intervals = sum(len(v) for v in missing.values())
    text = (
        f"{name:>8}: {len(missing)} pod(s) missing in {intervals} interval(s), total {total(missing) * 1000:.0f} ms, "
        f"longest {longest(missing) * 1000:.0f} ms ({presence.updates} snapshots)"
    )
    if blind:
        text += f"; blind {len(blind)} time(s), {sum(e - s for s, e in blind) * 1000:.0f} ms"
    return text


def uid_of(name: str, data: bytes) -> str | None:
    """The pod uid that a znode carries, in any known format; None for anything else (an
    instance written by someone other than zkregistry, or data of no known format)."""
    try:
        return read_any(name, data)[1].uid
    except ValueError:
        return None


def resolved(
    names: Iterable[str], known: dict[str, str | None], resolve: Callable[[str], str | None]
) -> dict[str, str | None]:
    """name -> uid for `names`: from `known` where it is, else read with `resolve`; a name that is
    gone already (LookupError) is left out, and read again if it is listed again."""
    out: dict[str, str | None] = {}
    for name in names:
        if name in known:
            out[name] = known[name]
            continue
        try:
            out[name] = resolve(name)
        except LookupError:
            continue
    return out


class ChildrenTracker:
    """What a children watch knows: child names, each mapped once to the uid in its data."""

    def __init__(self) -> None:
        self.uids: dict[str, str | None] = {}  # name -> uid (None: not a pod's registration)
        self.presence = Presence()

    def listed(self, t: float, names: Iterable[str], resolve: Callable[[str], str | None]) -> None:
        """The path's children at `t` are `names`. `resolve(name)` reads a new name's uid; it raises
        LookupError when that znode is already gone (the name is then left out, and read again if
        it is listed again)."""
        self.uids = resolved(names, self.uids, resolve)
        self.presence.update(t, {u for u in self.uids.values() if u})


class DataTracker:
    """What a client with a data watch per child knows: the znodes it believes exist, and their uids.

    The caller turns each ZooKeeper event into one call, in order: a children listing -> `listed`
    (with `resolve`, which reads a new name with a watch, as in `ChildrenTracker`), a read after
    NodeDataChanged -> `read`, NodeDeleted (or a read that finds nothing) -> `deleted`. Each call
    is one step of the client's view: a listing and the reads of its new names count as one.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, str | None] = {}  # name -> uid (None: not a pod's registration)
        self.presence = Presence()

    def listed(self, t: float, names: Iterable[str], resolve: Callable[[str], str | None]) -> None:
        self.nodes = resolved(names, self.nodes, resolve)
        self._update(t)

    def read(self, t: float, name: str, uid: str | None) -> None:
        self.nodes[name] = uid
        self._update(t)

    def deleted(self, t: float, name: str) -> None:
        self.nodes.pop(name, None)
        self._update(t)

    def _update(self, t: float) -> None:
        self.presence.update(t, {u for u in self.nodes.values() if u})


def curator_presence(lines: Iterable[Mapping]) -> Presence:
    """Presence as Curator's ServiceCache reported it: one snapshot per line that has `ids` (the
    program's "initial" and "changed" lines), at the line's own time `t` (ms); its connection
    state lines mark the blind periods."""
    presence = Presence()
    for line in lines:
        t = line["t"] / 1000
        if "ids" in line:
            presence.update(t, line["ids"])
        elif line.get("event") == "state":
            if line.get("state") in ("SUSPENDED", "LOST"):
                presence.blinded(t)
            elif line.get("state") in ("RECONNECTED", "CONNECTED"):
                presence.sighted(t)
    return presence


# -- the observers ------------------------------------------------------------------------------


class Observer:
    """What every observer offers; `presence()` is a consistent copy of its bookkeeping."""

    name = "observer"

    def start(self, timeout: float = 60) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def presence(self) -> Presence:
        raise NotImplementedError

    def missing(
        self, uids: Iterable[str] | None = None, since: float | None = None, until: float | None = None
    ) -> dict[str, list[Interval]]:
        return self.presence().missing(uids, since, time.time() if until is None else until)

    def total(self, uids: Iterable[str] | None = None, since: float | None = None, until: float | None = None) -> float:
        return total(self.missing(uids, since, until))

    def longest(
        self, uids: Iterable[str] | None = None, since: float | None = None, until: float | None = None
    ) -> float:
        return longest(self.missing(uids, since, until))

    def sees(self, uids: Iterable[str]) -> bool:
        """Whether every one of `uids` is present now."""
        return set(uids) <= self.presence().present

    def summary(self, uids: Iterable[str] | None = None, since: float | None = None, until: float | None = None) -> str:
        until = time.time() if until is None else until
        presence = self.presence()
        lo = -math.inf if since is None else since
        blind = [(s, e) for s, e in presence.blind_periods(until) if e >= lo and s <= until]
        return describe(self.name, presence.missing(uids, since, until), presence, blind)


class _KazooObserver(Observer):
    """A kazoo client on its own session. Watches and listeners run on kazoo's threads and only
    queue what happened, with its time; one worker handles the queue in order, so the
    bookkeeping follows the order in which ZooKeeper sent the events."""

    def __init__(self, hosts: str, path: str, session_timeout: float = 15.0) -> None:
        self.hosts, self.path, self.session_timeout = hosts, path, session_timeout
        self.client = KazooClient(hosts, timeout=session_timeout)
        self.tracker: ChildrenTracker | DataTracker
        self._lock = threading.Lock()
        self._stopped = False
        self._events: queue.Queue[tuple[float, str, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"{self.name} observer {path}", daemon=True)
        self._ready = threading.Event()

    def start(self, timeout: float = 60) -> None:
        self.client.start(timeout=timeout)
        if self.client.exists(self.path) is None:
            self.client.stop()
            self.client.close()
            raise RuntimeError(f"{self.path} does not exist: nothing to observe")
        self.client.add_listener(self._state)
        self._thread.start()
        self._events.put((time.time(), "resync", ""))
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the {self.name} observer did not read {self.path} within {timeout:g} s")

    def stop(self) -> None:
        self._stopped = True
        self._events.put((time.time(), "stop", ""))
        self._thread.join(10)
        self.client.stop()
        self.client.close()

    def presence(self) -> Presence:
        with self._lock:
            return copy.deepcopy(self.tracker.presence)

    def _state(self, state: str) -> None:
        if self._stopped:
            return
        # kazoo drops every watch with the connection and sets none again: after a reconnect,
        # everything is read and watched anew.
        self._events.put((time.time(), "resync" if state == KazooState.CONNECTED else "blind", ""))

    def _children_changed(self, event) -> None:
        if event.type != EventType.NONE:  # NONE: kazoo dropped the watch with the connection
            self._events.put((time.time(), "children", ""))

    def _run(self) -> None:
        while True:
            t, kind, name = self._events.get()
            if kind == "stop":
                return
            try:
                with self._lock:
                    if kind == "blind":
                        self.tracker.presence.blinded(t)
                    elif kind == "resync":
                        self._resync()
                        self.tracker.presence.sighted(time.time())
                        self._ready.set()
                    else:
                        self._handle(t, kind, name)
            except KazooException:
                pass  # the connection dropped: the resync after the reconnect reads everything again

    def _resync(self) -> None:
        raise NotImplementedError

    def _handle(self, t: float, kind: str, name: str) -> None:
        raise NotImplementedError


class ChildrenObserver(_KazooObserver):
    name = "children"

    def __init__(self, hosts: str, path: str, session_timeout: float = 15.0) -> None:
        super().__init__(hosts, path, session_timeout)
        self.tracker = ChildrenTracker()

    def _resync(self) -> None:
        self._list()

    def _handle(self, t: float, kind: str, name: str) -> None:
        if kind == "children":
            self._list()

    def _list(self) -> None:
        names = self.client.get_children(self.path, watch=self._children_changed)
        self.tracker.listed(time.time(), names, self._resolve)

    def _resolve(self, name: str) -> str | None:
        try:
            data, _ = self.client.get(f"{self.path}/{name}")
        except NoNodeError:
            raise LookupError(name) from None
        return uid_of(name, data)


class DataObserver(_KazooObserver):
    name = "data"

    def __init__(self, hosts: str, path: str, session_timeout: float = 15.0) -> None:
        super().__init__(hosts, path, session_timeout)
        self.tracker = DataTracker()

    def _node_changed(self, event) -> None:
        if event.type == EventType.DELETED:
            self._events.put((time.time(), "deleted", event.path.rsplit("/", 1)[1]))
        elif event.type != EventType.NONE:
            self._events.put((time.time(), "read", event.path.rsplit("/", 1)[1]))

    def _resync(self) -> None:
        self._list()
        for known in list(self.tracker.nodes):
            self._read(known)

    def _handle(self, t: float, kind: str, name: str) -> None:
        if kind == "deleted":
            self.tracker.deleted(t, name)  # absent from the moment the event came
            self._read(name)  # and present again if it has been created anew since
        elif kind == "read":
            self._read(name)
        elif kind == "children":
            self._list()

    def _list(self) -> None:
        names = self.client.get_children(self.path, watch=self._children_changed)
        self.tracker.listed(time.time(), names, self._resolve)

    def _resolve(self, name: str) -> str | None:
        try:
            data, _ = self.client.get(f"{self.path}/{name}", watch=self._node_changed)
        except NoNodeError:
            raise LookupError(name) from None
        return uid_of(name, data)

    def _read(self, name: str) -> None:
        try:
            uid = self._resolve(name)
        except LookupError:
            self.tracker.deleted(time.time(), name)
        else:
            self.tracker.read(time.time(), name, uid)


class CuratorObserver(Observer):
    name = "curator"

    def __init__(self, program, hosts: str, base_path: str, service: str) -> None:
        self.program, self.hosts, self.base_path, self.service = program, hosts, base_path, service
        self.process = None

    def start(self, timeout: float = 60) -> None:
        self.process = self.program.run("watch", self.hosts, self.base_path, self.service)
        self.process.wait_for(lambda line: line["event"] == "initial", timeout)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def presence(self) -> Presence:
        return curator_presence([line.data for line in list(self.process.lines)])


class ObserverSet:
    """The three observers of `<base_path>/<service>`, started and stopped together. Without a
    Curator program (None), only the two kazoo observers run."""

    def __init__(self, hosts: str, base_path: str, service: str, program=None, session_timeout: float = 15.0) -> None:
        path = f"{base_path.rstrip('/')}/{service}"
        self.observers: list[Observer] = [
            ChildrenObserver(hosts, path, session_timeout),
            DataObserver(hosts, path, session_timeout),
        ]
        if program is not None:
            self.observers.append(CuratorObserver(program, hosts, base_path, service))

    def __getitem__(self, name: str) -> Observer:
        return next(o for o in self.observers if o.name == name)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.observers]

    def start(self, timeout: float = 60) -> ObserverSet:
        started = []
        try:
            for observer in self.observers:
                observer.start(timeout)
                started.append(observer)
        except BaseException:
            for observer in started:
                observer.stop()
            raise
        return self

    def stop(self) -> None:
        for observer in self.observers:
            observer.stop()

    def __enter__(self) -> ObserverSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_seen(self, uids: Iterable[str], timeout: float = 60, only: Iterable[str] | None = None) -> None:
        """Waits until each observer (or each named in `only`) sees every one of `uids` now;
        TimeoutError naming what each one lacks."""
        uids = set(uids)
        chosen = [o for o in self.observers if only is None or o.name in set(only)]
        try:
            wait_for(lambda: all(o.sees(uids) for o in chosen), timeout, "observers", retry_errors=False)
        except TimeoutError:
            lacking = {o.name: sorted(uids - o.presence().present) for o in chosen}
            raise TimeoutError(f"after {timeout:g} s, observers still lack pods: {lacking}") from None

    def missing(
        self, uids: Iterable[str] | None = None, since: float | None = None, until: float | None = None
    ) -> dict[str, dict[str, list[Interval]]]:
        """observer name -> its `missing(uids, since, until)`; one `until` for all."""
        until = time.time() if until is None else until
        uids = None if uids is None else list(uids)
        return {o.name: o.missing(uids, since, until) for o in self.observers}

    def summary(
        self, uids: Iterable[str] | None = None, since: float | None = None, until: float | None = None
    ) -> list[str]:
        until = time.time() if until is None else until
        uids = None if uids is None else list(uids)
        return [o.summary(uids, since, until) for o in self.observers]
