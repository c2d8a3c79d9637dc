"""The status of a ServiceRegistry, computed from what is really in ZooKeeper. Pure.

`members` lists every znode under the service path (ours as `source: kubernetes`, everything
else as `source: external`), capped so that a very large service keeps the object well under
the API's size limit; `memberCount` is always exact.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from zkregistry.admission import PATH_CONFLICT, Decision
from zkregistry.model import Problem, Registry
from zkregistry.plan import Node, is_ours

MAX_MEMBERS = 200
#: The condition whose lastHeartbeatTime the leader refreshes: how fresh this status is.
LEADER = "Leader"


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything a registry's status is made of, gathered by the controller."""

    registry: Registry
    nodes: Mapping[str, Node]
    ready_pods: int
    owner: str
    leader: str
    conflict_with: Registry | None = None
    problems: Sequence[Problem] = ()
    #: Whether this registry may write its path (admission.py); None: not decided yet.
    admission: Decision | None = None


def members(nodes: Mapping[str, Node], owner: str, limit: int | None = None) -> list[dict]:
    """One entry per znode, ours first, then by pod or id; stable, so status does not churn.
    With `limit`, only the first `limit` of that order: entries are built for those alone, so a
    capped status of a large service costs one pass over its znodes and a partial sort."""
    ranked = ((_rank(name, node, owner), name) for name, node in nodes.items())
    chosen = sorted(ranked) if limit is None else heapq.nsmallest(limit, ranked)
    return [_entry(name, nodes[name], ours) for (ours, _, _), name in chosen]


def _rank(name: str, node: Node, owner: str) -> tuple[bool, str, str]:
    """The sort key of a member: (not ours, pod, id)."""
    member = node.member
    if member is None:
        return True, "", name
    return member.owner != owner, member.pod or "", member.id or name


def _entry(name: str, node: Node, external: bool) -> dict:
    member = node.member
    entry: dict = {"id": name, "source": "external" if external else "kubernetes"}
    if member is None:
        entry["error"] = "payload is of no known registration format"
        return entry
    for field in ("address", "port", "namespace", "pod", "deployment"):
        value = getattr(member, field)
        if value is not None:
            entry[field] = value
    if member.id and member.id != name:
        entry["id"] = member.id
        entry["znode"] = name
    if not member.enabled:
        entry["enabled"] = False
    return entry


def count_ours(nodes: Mapping[str, Node], owner: str) -> int:
    """How many of `nodes` are registrations of ours."""
    return sum(1 for node in nodes.values() if is_ours(node, owner))


def compute(observation: Observation, now: str, previous: Mapping | None = None) -> dict:
    """The whole status subresource for one registry. `previous` keeps lastTransitionTime."""
    o = observation
    ours = count_ours(o.nodes, o.owner)
    shown = members(o.nodes, o.owner, MAX_MEMBERS)

    refused = o.admission is not None and not o.admission.admitted
    if o.registry.deleting:
        ready = ("False", "Deleting", "registrations are being removed")
    elif refused:
        ready = ("False", o.admission.reason, o.admission.message)
    elif o.conflict_with is not None:
        ready = (
            "False",
            "PathConflict",
            f"service path is held by ServiceRegistry {o.conflict_with.namespace}/{o.conflict_with.name}",
        )
    elif o.problems:
        ready = ("False", o.problems[0].reason, "; ".join(p.message for p in o.problems))
    elif ours != o.ready_pods:
        ready = ("False", "Registering", f"{ours} of {o.ready_pods} ready pods registered")
    else:
        ready = ("True", "InSync", f"{ours} ready pods registered")
    conflict = (
        (
            "True",
            "PathClaimed",
            f"{o.conflict_with.namespace}/{o.conflict_with.name} claims "
            f"{o.registry.service_path} first; this registry registers nothing",
        )
        if o.conflict_with is not None
        else ("True", "PathClaimed", f"{o.admission.message}; this registry registers nothing")
        if refused and o.admission.reason == PATH_CONFLICT
        else ("False", "NoConflict", "")
    )
    if o.admission is None:
        admitted = ("Unknown", "Pending", "admission not decided yet")
    elif o.admission.admitted:
        admitted = ("True", "Admitted", o.admission.message)
    else:
        admitted = ("False", o.admission.reason, o.admission.message)
    if len(o.nodes) > len(shown):
        truncated = ("True", "TooManyMembers", f"members shows {len(shown)} of {len(o.nodes)}")
    else:
        truncated = ("False", "Complete", "")

    leader = ("True", "Heartbeat", f"replica {o.leader} writes this registry's members and status")
    previous_conditions = {c.get("type"): c for c in (previous or {}).get("conditions") or ()}
    conditions = [
        _condition(kind, value, o.registry.generation, now, previous_conditions.get(kind))
        for kind, value in (
            ("Ready", ready),
            ("Admitted", admitted),
            ("PathConflict", conflict),
            ("MembersTruncated", truncated),
            (LEADER, leader),
        )
    ]
    conditions[-1]["lastHeartbeatTime"] = now
    owner = None
    if o.admission is not None:
        key = o.registry.key if o.admission.admitted else o.admission.owner
        owner = f"{key[0]}/{key[1]}" if key else None
    elif o.conflict_with is not None:
        owner = f"{o.conflict_with.namespace}/{o.conflict_with.name}"
    out = {
        "servicePath": o.registry.service_path,
        "members": shown,
        "memberCount": len(o.nodes),
        "readyPods": o.ready_pods,
        "leader": o.leader,
        "observedGeneration": o.registry.generation,
        "conditions": conditions,
    }
    if owner:
        out["pathOwner"] = owner  # the registry whose namespace holds the path
    return out


def _condition(kind: str, value: tuple[str, str, str], generation: int, now: str, previous: Mapping | None) -> dict:
    status, reason, message = value
    changed = previous is None or previous.get("status") != status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now),
        "observedGeneration": generation,
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def heartbeat_age(status: Mapping | None, created: str, at: dt.datetime) -> float:
    """Seconds since a leader last wrote this status (since `created` if none ever did)."""
    beat = next(
        (c.get("lastHeartbeatTime") for c in (status or {}).get("conditions") or () if c.get("type") == LEADER), None
    )
    stamp = beat or created
    if not stamp:
        return 0.0
    return (at - dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
