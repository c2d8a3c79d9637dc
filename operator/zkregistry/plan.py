"""The plan: what to change under one service path so that ZooKeeper holds what is desired.

A pure function in the manner of external-dns's `plan.Calculate`: from the desired registrations,
the znodes that are really there, the owner id and this replica's ZooKeeper session, it computes
operations. Ownership lives here and nowhere else: a znode is ours when its payload, read in any
known format, carries our owner id; a znode that is not ours is never updated or deleted.

Make before break. A registration owned by another session (the previous leader's) is taken over
by creating the pod's registration anew under a free name, and only once that create has
committed and settled (see `for_instance`), in a later plan, deleting the old znode. A client
therefore sees a pod twice for a moment, never zero times: a delete and a create of one name, even
in one transaction, is a removal to a client that watches each child (Curator's ServiceCache).
Each pod has two names in a non-sequential format, its base name and `base + ALTERNATE`, so that
the new registration always has one free; a sequential format gets a new number anyway.

    plan = calculate(desired, actual, owner="prod", session=session_id)   # a whole path
    ops = for_instance(uid, desired.get(uid), ours_of_uid, actual, session) # one pod
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field

from zkregistry.formats import Member

#: Suffix of a pod's second znode name, used while its registration moves to a new session.
ALTERNATE = ".1"


@dataclass(frozen=True, slots=True)
class Wanted:
    """One desired registration, encoded: the znode name (a prefix if sequential) and data."""

    name: str
    data: bytes
    sequential: bool = False
    uid: str = field(default="", compare=False)  # the pod's, for metrics only
    #: What a reader decodes from `data` (the codec's `member`): the mirror records our own
    #: writes with it instead of parsing what it just encoded.
    member: Member | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Node:
    """One child znode of a service path as ZooKeeper reported it."""

    name: str
    data: bytes
    version: int
    session: int  # ephemeralOwner: the session that owns it (0 for a persistent znode)
    member: Member | None  # None when the data is of no known format
    created: float = field(default=0.0, compare=False)  # when a transaction of ours made it (monotonic)


@dataclass(frozen=True, slots=True)
class Create:
    name: str
    data: bytes
    sequential: bool = False
    uid: str = field(default="", compare=False)  # the pod's: for metrics, and the mirror's index
    member: Member | None = field(default=None, compare=False)  # `data` decoded, if known (Wanted)


@dataclass(frozen=True, slots=True)
class Update:
    """Same session, new data: set_data keeps the znode and its owner."""

    name: str
    version: int
    data: bytes
    member: Member | None = field(default=None, compare=False)  # `data` decoded, if known (Wanted)


@dataclass(frozen=True, slots=True)
class Replace:
    """Delete and create one name in one transaction: a takeover when none of a pod's names is free
    (a client that watches each child sees the pod go and come back unless its other name holds
    it too)."""

    name: str
    version: int
    new: Create


@dataclass(frozen=True, slots=True)
class Delete:
    name: str
    version: int


Op = Create | Update | Replace | Delete


@dataclass(slots=True)
class Plan:
    ops: list[Op] = field(default_factory=list)
    #: Names that a desired registration would take but that another writer holds.
    conflicts: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ops)


def is_ours(node: Node, owner: str) -> bool:
    return node.member is not None and node.member.owner == owner


def instance_key(node: Node) -> str:
    """The pod a znode registers: its uid, or the znode's name if it names none."""
    return (node.member.uid if node.member is not None else None) or node.name


def names_of(want: Wanted) -> tuple[str, ...]:
    """The znode names a non-sequential registration may take, in order of preference."""
    return () if want.sequential else (want.name, want.name + ALTERNATE)


def other_name(name: str) -> str:
    """The other of a non-sequential registration's two names (`names_of`): where a successor
    makes it anew. A sequential name's is a name that no registration takes."""
    return name[: -len(ALTERNATE)] if name.endswith(ALTERNATE) else name + ALTERNATE


def fits(node: Node, want: Wanted) -> bool:
    """Whether `node` is named as `want` would be (so a format change moves the registration)."""
    return node.name.startswith(want.name) if want.sequential else node.name in names_of(want)


def for_instance(
    uid: str,
    want: Wanted | None,
    ours: Sequence[Node],
    taken: Container[str],
    session: int,
    settled: float = math.inf,
) -> tuple[list[Op], str | None]:
    """Operations that bring one pod's registrations to `want` (None: not registered), and the name
    that blocked it, if a znode of another owner holds every name it may take.

    `ours` are the znodes of ours that register `uid` (any session, any format); `taken` holds
    every name under the path. At most one znode of ours per pod remains once the plans have run.
    The znodes it supersedes are deleted only once the kept one was created at or before `settled`:
    a client such as Curator's ServiceCache shows a new child only after reading its data, but
    drops a deleted one at once, so the break waits until the new registration had time to be read.
    """
    if want is None:
        return [Delete(n.name, n.version) for n in ours], None
    mine = sorted((n for n in ours if n.session == session and fits(n, want)), key=lambda n: n.name)
    if mine:
        keep = mine[0]
        ops: list[Op] = [] if keep.created > settled else [Delete(n.name, n.version) for n in ours if n is not keep]
        if keep.data != want.data:
            ops.append(Update(keep.name, keep.version, want.data, want.member))
        return ops, None
    # Make before break: a registration of this session first; the others go in a later plan.
    if want.sequential:
        return [Create(want.name, want.data, True, uid, want.member)], None
    free = next((name for name in names_of(want) if name not in taken), None)
    if free is not None:
        return [Create(free, want.data, False, uid, want.member)], None
    # No free name. Replace one of ours in place: the alternate, so that if both are ours the
    # other keeps the pod visible; if the other is foreign, this is the only way to keep the pod.
    held = sorted((n for n in ours if n.name in names_of(want)), key=lambda n: n.name)
    if held:
        victim = held[-1]
        return [Replace(victim.name, victim.version, Create(victim.name, want.data, False, uid, want.member))], None
    return [], want.name


def calculate(
    desired: Mapping[str, Wanted], actual: Mapping[str, Node], owner: str, session: int, settled: float = math.inf
) -> Plan:
    """Operations that move `actual` towards `desired` without touching any znode that is not ours.

    `desired` is keyed by instance id (the pod's uid), `actual` by znode name. Applying the plan
    and planning again converges in at most two rounds (make, then break once `settled` allows).
    """
    plan = Plan()
    ours: dict[str, list[Node]] = {}
    for node in actual.values():
        if is_ours(node, owner):
            ours.setdefault(instance_key(node), []).append(node)
    for uid in [*ours, *(uid for uid in desired if uid not in ours)]:
        ops, conflict = for_instance(uid, desired.get(uid), ours.get(uid, ()), actual, session, settled)
        plan.ops.extend(ops)
        if conflict is not None:
            plan.conflicts.append(conflict)
    return plan
