"""The plan: what to change under one service path so that ZooKeeper holds what is desired.

A pure function in the manner of external-dns's `plan.Calculate`: from the desired registrations,
the znodes that are really there, the owner id and this replica's ZooKeeper session, it computes
operations. Ownership lives here and nowhere else: a znode is ours when its payload carries our
owner id, and a znode that is not ours is never updated, replaced or deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from zkregistry.formats import Member


@dataclass(frozen=True, slots=True)
class Wanted:
    """One desired registration, encoded: the znode name (a prefix if sequential) and data."""

    name: str
    data: bytes
    sequential: bool = False
    uid: str = field(default="", compare=False)  # the pod's, for metrics only


@dataclass(frozen=True, slots=True)
class Node:
    """One child znode of a service path as ZooKeeper reported it."""

    name: str
    data: bytes
    version: int
    session: int  # ephemeralOwner: the session that owns it (0 for a persistent znode)
    member: Member | None  # None when the data is not of the registry's format


@dataclass(frozen=True, slots=True)
class Create:
    name: str
    data: bytes
    sequential: bool = False
    uid: str = field(default="", compare=False)  # the pod's, for metrics only


@dataclass(frozen=True, slots=True)
class Update:
    """Same session, new data: set_data keeps the znode and its owner."""

    name: str
    version: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Replace:
    """Another session owns our znode (takeover): delete and create in one transaction, so that the
    znode, or its successor, is never absent."""

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


def calculate(desired: Mapping[str, Wanted], actual: Mapping[str, Node], owner: str, session: int) -> Plan:
    """Operations that turn `actual` into `desired` without touching any znode that is not ours.

    `desired` is keyed by instance id (the pod's uid), `actual` by znode name. Of several znodes of
    ours for one instance (possible only for sequential formats), the one this session owns is
    kept and the others are deleted.
    """
    plan = Plan()
    ours: dict[str, list[Node]] = {}
    for node in actual.values():
        if is_ours(node, owner):
            assert node.member is not None
            ours.setdefault(node.member.uid or node.name, []).append(node)

    for uid, nodes in ours.items():
        nodes.sort(key=lambda n: (n.session != session, n.name))
        keep, extra = nodes[0], nodes[1:]
        plan.ops.extend(Delete(n.name, n.version) for n in extra)
        want = desired.get(uid)
        if want is None:
            plan.ops.append(Delete(keep.name, keep.version))
        elif keep.session != session:
            new_name = want.name if want.sequential else keep.name
            plan.ops.append(Replace(keep.name, keep.version, Create(new_name, want.data, want.sequential)))
        elif keep.data != want.data:
            plan.ops.append(Update(keep.name, keep.version, want.data))

    for uid, want in desired.items():
        if uid in ours:
            continue
        if not want.sequential and want.name in actual:
            plan.conflicts.append(want.name)
        else:
            plan.ops.append(Create(want.name, want.data, want.sequential, uid))
    return plan
