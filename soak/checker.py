"""The soak's invariants, checked throughout the run, and what it samples for the report.

After each round of faults heals, `Checker.converge(bound)` polls until every invariant holds at
one consistent moment, or the bound passes (a broken invariant, reported with what still failed):

1. ZooKeeper equals the Ready pods: under each registry's path, our registrations are exactly the
   Ready, not terminating pods of the Deployments annotated for it (by uid, with the pod's IP and
   port), one znode per pod. The pods are listed before and after ZooKeeper is read; a moment
   counts only if both say the same (the churn never stops; a list's resourceVersion is etcd's
   revision, which every write anywhere moves, so the contents are compared).
2. Status equals ZooKeeper: each ServiceRegistry's `memberCount` is the number of children of its
   path, and its members' ids are theirs.
3. Exactly one replica reports leadership (`zkregistry_leader 1` on its /metrics), and every
   registry's `status.leader` names it.
4. No foreign znode changed (`Foreign.changed`: mzxid), which is also checked on every sample of
   the timeline, whatever the faults: it may never break, not even for a moment.

`Sampler` records, every second, the members of ours per path, the desired count and the leader
(the timeline), and every five seconds each replica's RSS, threads and open descriptors from /proc.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import kubernetes
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from soak.nemesis import Foreign, Slots
from soak.workload import Workload
from zkregistry import api
from zkregistry.formats import read_any

PORT = 8080


@dataclass
class PathState:
    """What one service path holds: our registrations by pod uid, and the ids of every child."""

    ours: dict[str, list[tuple[str, str | None, int | None]]]  # uid -> [(znode name, address, port)]
    ids: set[str]
    children: int


def read_path(zk: KazooClient, path: str, owner: str) -> PathState:
    try:
        names = zk.get_children(path)
    except NoNodeError:
        return PathState({}, set(), 0)
    ours: dict[str, list[tuple[str, str | None, int | None]]] = {}
    ids: set[str] = set()
    count = 0
    for name in names:
        try:
            data = zk.get(f"{path}/{name}")[0]
        except NoNodeError:
            continue
        count += 1
        try:
            member = read_any(name, data)[1]
        except ValueError:
            ids.add(name)  # as the status shows an unreadable znode
            continue
        ids.add(member.id or name)
        if member.owner == owner and member.uid:
            ours.setdefault(member.uid, []).append((name, member.address, member.port))
    return PathState(ours, ids, count)


class Checker:
    def __init__(
        self, workload: Workload, zk: KazooClient, slots: Slots, owner: str, foreign: Foreign
    ) -> None:
        self.workload, self.zk, self.slots, self.owner, self.foreign = workload, zk, slots, owner, foreign
        self.exits: list[dict] = []  # replicas that exited by themselves: {t, name, code}

    def problems(self) -> list[str]:
        """Every invariant that does not hold now (empty: all hold at one moment). A replica that
        exited by itself is restarted first, and recorded in `exits`."""
        for name, code in self.slots.revive():
            self.exits.append({"t": time.time(), "name": name, "code": code})
        desired, _ = self.workload.desired()
        paths = {r: read_path(self.zk, p, self.owner) for r, p in self.workload.paths.items()}
        after, _ = self.workload.desired()
        out: list[str] = []
        if desired != after:
            return ["the pods changed while ZooKeeper was read"]
        for registry, state in paths.items():
            want = desired[registry]
            have = {uid: nodes for uid, nodes in state.ours.items()}
            if absent := sorted(set(want) - set(have)):
                out.append(f"{registry}: {len(absent)} Ready pod(s) not registered: {[u[:8] for u in absent]}")
            if extra := sorted(set(have) - set(want)):
                out.append(f"{registry}: {len(extra)} registration(s) of pods not Ready here: {[u[:8] for u in extra]}")
            for uid in sorted(set(want) & set(have)):
                nodes = have[uid]
                if len(nodes) != 1:
                    out.append(f"{registry}: pod {uid[:8]} has {len(nodes)} znodes {[n for n, _, _ in nodes]}")
                elif nodes[0][1:] != (want[uid], PORT):
                    out.append(f"{registry}: pod {uid[:8]} registered as {nodes[0][1:]}, not {(want[uid], PORT)}")
        leaders = [r.name for r in self.slots.serving() if r.is_leader()]
        if len(leaders) != 1:
            out.append(f"{len(leaders)} replicas report leadership: {leaders}")
        for registry, state in paths.items():
            status = self._status(registry)
            if status.get("memberCount") != state.children:
                out.append(f"{registry}: status memberCount {status.get('memberCount')}, ZooKeeper {state.children}")
            elif state.children <= 200 and {m.get("id") for m in status.get("members") or ()} != state.ids:
                out.append(f"{registry}: status members differ from ZooKeeper's")
            if len(leaders) == 1 and status.get("leader") != leaders[0]:
                out.append(f"{registry}: status.leader {status.get('leader')!r}, but {leaders[0]} leads")
        out += self.foreign.changed()
        return out

    def _status(self, registry: str) -> dict:
        body = kubernetes.client.CustomObjectsApi(self.workload.kube_api).get_namespaced_custom_object(
            api.GROUP, api.VERSION, self.workload.namespace, api.PLURAL, registry
        )
        return body.get("status") or {}

    def converge(
        self, bound: float, interval: float = 0.5, known: set[str] | frozenset[str] = frozenset()
    ) -> tuple[float | None, list[str]]:
        """Polls until every invariant holds: (the time it first did, []); or, when `bound`
        seconds pass first, (None, the problems of the last poll). Problems in `known` (broken
        already, and reported: a registration that is never repaired) are left out, so that one
        lasting break does not hide what later rounds do."""
        deadline = time.monotonic() + bound
        last: list[str] = []
        while True:
            try:
                last = [p for p in self.problems() if p not in known]
            except Exception as error:  # a server of ours is still coming back: not yet
                last = [f"could not check: {type(error).__name__}: {error}"]
            if not last:
                return time.time(), []
            if time.monotonic() >= deadline:
                return None, last
            time.sleep(interval)


# -- sampling -----------------------------------------------------------------------------------


def proc_sample(pid: int) -> dict[str, float] | None:
    """RSS (MiB), threads and open descriptors of a process, from /proc; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return None
    return {
        "rss_mib": round(int(fields["VmRSS"].split()[0]) / 1024, 2),
        "threads": int(fields["Threads"]),
        "fds": fds,
    }


@dataclass
class Sampler:
    """Samples on its own thread until stopped; `violations` gets every moment at which a foreign
    member was found changed."""

    checker: Checker
    log: Callable[[str], None] = print
    timeline: list[dict] = field(default_factory=list)  # {t, members: {registry: n}, desired, leader}
    processes: dict[str, list[tuple[float, dict]]] = field(default_factory=dict)  # "name pid" -> samples
    violations: list[dict] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._timeline, name="sampler-timeline", daemon=True),
            threading.Thread(target=self._processes, name="sampler-proc", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _timeline(self) -> None:
        c = self.checker
        reported: set[str] = set()
        while not self._stop.wait(1.0):
            t = time.time()
            row: dict = {"t": t, "members": {}, "desired": None, "leader": None}
            try:
                for registry, path in c.workload.paths.items():
                    row["members"][registry] = sum(len(v) for v in read_path(c.zk, path, c.owner).ours.values())
                for problem in c.foreign.changed():
                    if problem not in reported:
                        reported.add(problem)
                        self.violations.append({"t": t, "invariant": "foreign", "problem": problem})
                        self.log(f"  VIOLATION foreign: {problem}")
            except Exception:
                row["members"] = {}  # ZooKeeper is out of reach for this sample
            try:
                desired, _ = c.workload.desired()
                row["desired"] = {r: len(v) for r, v in desired.items()}
            except Exception:
                pass
            leaders = [r.name for r in c.slots.serving() if r.is_leader()]
            row["leader"] = leaders[0] if len(leaders) == 1 else (None if not leaders else "+".join(leaders))
            self.timeline.append(row)

    def _processes(self) -> None:
        while True:
            t = time.time()
            for replica in list(self.checker.slots.current.values()):
                sample = proc_sample(replica.pid) if replica.alive() else None
                if sample:
                    self.processes.setdefault(f"{replica.name} {replica.pid}", []).append((t, sample))
            if self._stop.wait(5.0):
                return


def slope_per_hour(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, value) in value per hour; None with fewer than 3 samples."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    if den == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in samples) / den * 3600
