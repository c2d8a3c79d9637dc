"""The arithmetic of the benchmark, and readings of processes, metrics and ZooKeeper."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

# -- the watchers' records, aggregated --------------------------------------------------------


@dataclass
class State:
    """Everything the watchers reported, in order, plus what holds right now."""

    events: list[tuple[float, str, str, object]] = field(default_factory=list)
    pods_alive: set[str] = field(default_factory=set)
    pods_ready: set[str] = field(default_factory=set)  # ready and not terminating, right now
    endpoints_ready: set[str] = field(default_factory=set)
    znodes: dict[str, str] = field(default_factory=dict)  # pod uid -> service path, registered right now
    election: set[str] = field(default_factory=set)
    synced: set[str] = field(default_factory=set)
    errors: list = field(default_factory=list)

    def add(self, records: Iterable[list]) -> None:
        for t, kind, key, extra in records:
            self.events.append((t, kind, key, extra))
            if kind == "added":
                self.pods_alive.add(key)
            elif kind == "deleted":
                self.pods_alive.discard(key)
                self.pods_ready.discard(key)
            elif kind == "ready":
                self.pods_ready.add(key)
            elif kind == "unready":
                self.pods_ready.discard(key)
            elif kind == "epready":
                self.endpoints_ready.add(key)
            elif kind == "epgone":
                self.endpoints_ready.discard(key)
            elif kind == "zadd":
                self.znodes[key] = extra
            elif kind == "zdel":
                self.znodes.pop(key, None)
            elif kind == "eladd":
                self.election.add(key)
            elif kind == "eldel":
                self.election.discard(key)
            elif kind == "sync":
                self.synced.add(key)
            elif kind == "error":
                self.errors.append((t, key, extra))

    def between(self, start: float, end: float, *kinds: str) -> list[tuple[float, str, str, object]]:
        return [e for e in self.events if start <= e[0] <= end and e[1] in kinds]

    def converged(self) -> bool:
        """ZooKeeper and the EndpointSlices hold exactly the Ready pods, and no pod is terminating."""
        return (
            set(self.znodes) == self.pods_ready
            and self.endpoints_ready == self.pods_ready
            and self.pods_alive == self.pods_ready
        )


def first_times(events: Iterable[tuple[float, str, str, object]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t, _kind, key, _extra in events:
        out.setdefault(key, t)
    return out


def latencies_ms(starts: dict[str, float], ends: dict[str, float]) -> tuple[list[float], int]:
    """(end - start in ms for every key that has both, number of starts without an end)."""
    values = [(ends[k] - t) * 1000 for k, t in starts.items() if k in ends]
    return values, sum(1 for k in starts if k not in ends)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float], missing: int = 0) -> dict:
    if not values:
        return {"count": 0, "missing": missing, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "count": len(values),
        "missing": missing,
        "negative": sum(1 for v in values if v < 0),  # the watcher of pods stamped after the end was seen
        "min": round(min(values), 1),
        "mean": round(sum(values) / len(values), 1),
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1),
    }


def ratio(ours: dict, theirs: dict) -> dict:
    return {
        q: (round(ours[q] / theirs[q], 2) if ours.get(q) is not None and theirs.get(q) else None)
        for q in ("p50", "p95", "p99", "max")
    }


# -- processes ---------------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out["rss" if name == "VmRSS" else "peak"] = round(int(value.split()[0]) / 1024, 1)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def metric(text: str, name: str) -> float:
    """The sum of every sample of `name` (any labels) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


READY_TO_REGISTERED = "zkregistry_ready_to_registered_seconds"


@dataclass
class Reading:
    """CPU seconds, ZooKeeper operations and the ready-to-registered histogram of one replica (or,
    for another process such as kube-controller-manager, its CPU seconds alone)."""

    t: float
    cpu: float
    zk_ops: float = 0.0
    ready_to_registered: dict[float, float] = field(default_factory=dict)  # bucket upper bound -> count
    ready_to_registered_sum: float = 0.0  # seconds, over every observation so far

    @classmethod
    def of(cls, replica) -> Reading:
        text = replica.get("/metrics")[1]
        return cls(
            time.time(),
            cpu_seconds(replica.pid),
            metric(text, "zkregistry_zookeeper_operations_total"),
            buckets(text, READY_TO_REGISTERED),
            metric(text, f"{READY_TO_REGISTERED}_sum"),
        )

    @classmethod
    def of_process(cls, pid: int) -> Reading:
        return cls(time.time(), cpu_seconds(pid))


def buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a Prometheus histogram: upper bound (s) -> count."""
    out: dict[float, float] = {}
    prefix = f'{name}_bucket{{le="'
    for line in text.splitlines():
        if line.startswith(prefix):
            bound, _, value = line[len(prefix) :].partition('"} ')
            out[float(bound)] = float(value)
    return out


def histogram_quantiles(
    before: dict[float, float],
    after: dict[float, float],
    sum_before: float | None = None,
    sum_after: float | None = None,
) -> dict | None:
    """p50/p95/p99 (as "<= bucket bound", in ms) of the observations between two readings, and
    their exact mean (ms) when the histogram's sums are given."""
    delta = {b: after[b] - before.get(b, 0.0) for b in sorted(after)}
    total = delta.get(math.inf, 0.0)
    if not total:
        return None
    out: dict = {"count": int(total)}
    for q in (50, 95, 99):
        bound = next(b for b, n in delta.items() if n >= q / 100 * total)
        out[f"p{q}_le"] = "inf" if bound == math.inf else round(bound * 1000, 1)
    if sum_before is not None and sum_after is not None:
        out["mean"] = round((sum_after - sum_before) / total * 1000, 1)
    return out


# -- ZooKeeper ---------------------------------------------------------------------------------


def sweep(client: KazooClient, paths: Iterable[str]) -> dict[str, tuple[float, int]]:
    """name -> (ctime in seconds, ephemeralOwner) of every child of `paths`, read pipelined."""
    pending = []
    for path in paths:
        try:
            names = client.get_children(path)
        except NoNodeError:
            continue
        pending += [(name, client.exists_async(f"{path}/{name}")) for name in names]
    out = {}
    for name, result in pending:
        stat = result.get(timeout=60)
        if stat is not None:
            out[name] = (stat.ctime / 1000, stat.ephemeralOwner)
    return out


def by_pod(swept: dict[str, tuple[float, int]]) -> dict[str, float]:
    """pod uid -> the earliest ctime of its znodes (`<uid>` and `<uid>.1` are one pod's)."""
    from zkregistry.plan import ALTERNATE

    out: dict[str, float] = {}
    for name, (ctime, _owner) in swept.items():
        uid = name.removesuffix(ALTERNATE)
        out[uid] = min(ctime, out.get(uid, ctime))
    return out


def _contenders(client: KazooClient, election: str) -> list[str]:
    """The election's znodes (`<guid>-n_<seq>`), in order: the leader first."""
    from zkregistry.election import PREFIX, sequence

    return sorted((n for n in client.get_children(election) if PREFIX in n), key=sequence)


def session_of_leader(client: KazooClient, election: str) -> tuple[str, int] | None:
    """(identifier, session id) of the election's first contender."""
    for name in _contenders(client, election):
        try:
            data, stat = client.get(f"{election}/{name}")
        except NoNodeError:
            continue
        return data.decode(), stat.ephemeralOwner
    return None


def contenders(client: KazooClient, election: str) -> list[str]:
    """Identifiers of the election's contenders, the leader first."""
    out = []
    for name in _contenders(client, election):
        try:
            out.append(client.get(f"{election}/{name}")[0].decode())
        except NoNodeError:
            continue
    return out


def ceiling(hosts: str, znodes: int = 10_000, batch: int = 100, runs: int = 3) -> dict:
    """Raw ZooKeeper create throughput: `znodes` EPHEMERAL creates in pipelined multi transactions
    of `batch` creates each, from a fresh session; the best and the median of `runs`."""
    rates = []
    for run in range(runs):
        client = KazooClient(hosts, timeout=10)
        client.start(timeout=30)
        try:
            path = f"/bench-ceiling/run-{run}-{time.time_ns()}"
            client.ensure_path(path)
            started = time.perf_counter()
            pending = []
            for start in range(0, znodes, batch):
                transaction = client.transaction()
                for i in range(start, min(znodes, start + batch)):
                    transaction.create(f"{path}/n{i:06d}", b'{"id": "x"}', ephemeral=True)
                pending.append(transaction.commit_async())
            for result in pending:
                results = result.get(timeout=60)
                failed = [r for r in results if isinstance(r, Exception)]
                if failed:
                    raise RuntimeError(f"ceiling transaction failed: {failed[0]!r}")
            took = time.perf_counter() - started
            rates.append(znodes / took)
        finally:
            client.stop()
            client.close()
    rates.sort()
    return {
        "znodes": znodes,
        "batch": batch,
        "runs": [round(r) for r in rates],
        "best_creates_per_s": round(rates[-1]),
        "median_creates_per_s": round(rates[len(rates) // 2]),
        "seconds_for_10000_best": round(10_000 / rates[-1], 3),
    }
