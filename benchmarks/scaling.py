"""Scaling of one replica's handler-to-writer path, without a control plane.

    tools/env.sh python -m benchmarks.scaling [--pods 1000,10000,100000] [--hosts H] [--out DIR]

One replica, wired as operator/zkregistry/app.py wires it (Inventory, Controller, Membership,
Writer, Election; no kopf, no reflectors, no reporter), against a real 3-server ensemble
(`--hosts`, or one started here). The harness stands in for the reflectors: it fills the inventory
with `model` records and calls `Inventory.put_pod` / `remove_pod`, as the pod reflector does once
it has parsed a watch event.

N pods are spread over N // 1,000 registries (1 to 50) in two layouts: `even` (every service path
about as large: 1,000 pods at N = 1,000 and 10,000, 2,000 at 100,000), which isolates the size of
the inventory, and `zipf` (sized 1/k, so that the largest path grows with N: 1,000, 3,414 and
22,250 pods), which adds the size of a path.

Each (N, layout) runs in child processes of its own, so that each measures that N alone:

- `cpu`: fill the inventory with N serving pods, then let the replica lead: it plans every path
  whole and writes N registrations (what a cold resync or takeover costs, without the deletes of
  make-before-break), then settles (the mirror's own listings and reads). Then a closed loop of
  pod transitions (Ready -> not Ready, not Ready -> Ready, one in ten a deletion later replaced by
  a new pod), each waited for until the controller has written it; after a warm-up, the CPU time
  of the process (`time.process_time`) over `--transitions` of them: per transition, per thread,
  the garbage collector's share, and the ZooKeeper reads the mirror made. Then one periodic
  resync (every path read afresh). RSS at each step. With `--profile`, py-spy records a further
  window at the largest N.
- `memory` (even layout): the same fill and registration under tracemalloc: what stays
  allocated, per pod, by the part of the operator that holds it.

Everything is bounded: a child that does not settle within its time stops there and says so, one
whose RSS passes `--rss-cap` MiB stops at once (the machine is shared), and one that overruns its
time is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from pathlib import Path

from benchmarks import measure

NAMESPACE = "scale"
OWNER = "scaling"
PODS_PER_DEPLOYMENT = 100
MAX_REGISTRIES = 50
SESSION_TIMEOUT = 10.0
TRANSITIONS, WARMUP = 2000, 200
UNREADY_POOL = 20  # pods held not Ready (or deleted) at once during the loop
DELETE_SHARE = 0.1  # of the deregistrations: the pod is deleted (and later replaced by a new one)
TRANSITION_TIMEOUT = 10.0
PREFIX = "/services"  # the operator's default --path-prefixes: a registry's path must lie under it
DEFAULT_PODS = (1000, 10_000, 100_000)

_started = time.monotonic()


def say(message: str) -> None:
    print(f"[scaling {time.monotonic() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- the workload ------------------------------------------------------------------------------


LAYOUTS = ("even", "zipf")


def registry_sizes(pods: int, layout: str = "even") -> list[int]:
    """N pods over N // 1,000 registries (1 to 50): of equal sizes (`even`), or sized 1/k (`zipf`)."""
    count = max(1, min(MAX_REGISTRIES, pods // 1000))
    weights = [1.0] * count if layout == "even" else [1 / (k + 1) for k in range(count)]
    total = sum(weights)
    sizes = [max(1, math.floor(pods * w / total)) for w in weights]
    sizes[0] += pods - sum(sizes)
    return sizes


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ip(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


@dataclasses.dataclass
class Workload:
    """Registries, Deployments, ReplicaSets and pods of one N, put into an inventory."""

    pods: int
    base_path: str
    layout: str = "even"
    seed: int = 1

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.sizes = registry_sizes(self.pods, self.layout)
        self.path_of_rs: dict[str, str] = {}
        self.counter = 0  # pods made so far: the next pod's number (its IP)

    def paths(self) -> list[str]:
        return [f"{self.base_path}/r{k:02d}" for k in range(len(self.sizes))]

    def fill(self, inventory, keep: bool) -> list:
        """Puts everything into `inventory`; returns the pods (empty unless `keep`)."""
        from zkregistry.model import Deployment, Registry, ReplicaSet

        kept = []
        for k, size in enumerate(self.sizes):
            name = f"r{k:02d}"
            inventory.put_registry(
                Registry(
                    NAMESPACE, name, _uid(self.rng), name, self.base_path, port="http", created="2026-01-01T00:00:00Z"
                )
            )
            for d in range(math.ceil(size / PODS_PER_DEPLOYMENT)):
                deployment = f"{name}-d{d:03d}"
                replicaset = f"{deployment}-{self.rng.getrandbits(32):08x}"
                inventory.put_deployment(
                    Deployment(NAMESPACE, deployment, _uid(self.rng), name, None, (("http", 8080),))
                )
                inventory.put_replicaset(ReplicaSet(NAMESPACE, replicaset, deployment))
                self.path_of_rs[replicaset] = f"{self.base_path}/{name}"
                for _ in range(min(PODS_PER_DEPLOYMENT, size - d * PODS_PER_DEPLOYMENT)):
                    pod = self.pod(replicaset)
                    inventory.put_pod(pod)
                    if keep:
                        kept.append(pod)
        return kept

    def pod(self, replicaset: str, ready: bool = True):
        """A new serving pod of `replicaset`, as the pod reflector would make it from a watch event."""
        from zkregistry.model import Pod

        i = self.counter
        self.counter += 1
        deployment, hash_ = replicaset.rsplit("-", 1)
        return Pod(
            namespace=NAMESPACE,
            name=f"{replicaset}-{i:06x}",
            uid=_uid(self.rng),
            replicaset=replicaset,
            ready=ready,
            ready_since_ms=1_790_000_000_000 + i,
            terminating=False,
            ip=_ip(i),
            host_ip=f"192.168.{(i // 110 >> 8) & 255}.{(i // 110) & 255}",
            node=f"node-{i // 110:05d}",
            ports=(("http", 8080),),
            labels=(("app", deployment), ("pod-template-hash", hash_)),
        )


# -- one replica, as app.py wires it (without kopf, the reflectors and the reporter) ------------


class Replica:
    """app.py's `Operator`, built as it is, but started only in part: the ZooKeeper client with its
    state listener, the controller's thread and the election; no kopf, reflectors, reporter
    thread or HTTP server. The reporter's wake-up (`on_reconciled`) tells the harness instead."""

    def __init__(self, hosts: str, root: str, identity: str = "scaling-0", resync_seconds: float = 86400.0) -> None:
        """`resync_seconds`: the periodic resync is measured once, on its own, not in the loop."""
        from zkregistry.app import Operator
        from zkregistry.config import Settings

        settings = Settings(
            zk_hosts=hosts,
            session_timeout=SESSION_TIMEOUT,
            owner_id=OWNER,
            root=root,
            identity=identity,
            http_port=0,
            resync_seconds=resync_seconds,
        )
        self.operator = operator = Operator(settings)
        self.client, self.inventory = operator.client, operator.inventory
        self.membership, self.election, self.controller = operator.membership, operator.election, operator.controller
        self.stop = operator.stop
        self.requests = _count_requests(self.client)
        self.reconciled = threading.Event()  # set after every turn that planned, and on leadership changes
        operator.reporter.changed = lambda keys=None: self.reconciled.set()
        self.states: dict[str, int] = {}
        self.client.add_listener(self._count_state)
        self.client.add_listener(operator._connection_changed)  # as Operator.start does
        self.client.start(timeout=30)
        self.thread: threading.Thread | None = None

    def _count_state(self, state: str) -> None:
        self.states[str(state)] = self.states.get(str(state), 0) + 1

    def lead(self) -> None:
        """The inventory is complete: join the election and run the controller's loop."""
        from zkregistry.inventory import SOURCES

        for source in SOURCES:  # this harness stands in for kopf and every reflector
            self.inventory.mark_synced(source)
        self.operator.probe()  # as the controller's thread does first
        self.operator.join()
        self.thread = threading.Thread(target=self.controller.run, args=(self.stop,), name="controller", daemon=True)
        self.thread.start()

    def registered(self, path: str, uid: str) -> bool:
        from zkregistry.plan import is_ours

        return any(is_ours(n, OWNER) for n in self.membership.nodes_of(path, uid))

    def pending(self) -> bool:
        """Whether the controller has work queued (its private flags, read without its lock)."""
        flags = ("_pods", "_whole", "_everything", "_refresh", "_settling", "_poked")
        return any(getattr(self.controller, flag, None) for flag in flags)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(15)
        with contextlib.suppress(Exception):
            self.client.stop()
            self.client.close()


def _count_requests(client) -> dict[str, int]:
    """Counts the client's asynchronous reads (the mirror's listings and reads, the election's
    listings), by wrapping the three methods; nothing else changes."""
    counts = {"get_children": 0, "get": 0, "exists": 0}
    for name in counts:
        method = getattr(client, f"{name}_async")

        def counted(*args, _method=method, _name=name, **kwargs):
            counts[_name] += 1
            return _method(*args, **kwargs)

        setattr(client, f"{name}_async", counted)
    return counts


def wait_until(condition, timeout: float, what: str, event: threading.Event | None = None, poll: float = 0.5) -> float:
    """Waits (on `event` if given, else polling) until `condition()`; returns the seconds it took."""
    started = time.perf_counter()
    deadline = started + timeout
    while not condition():
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        if event is not None:
            event.wait(min(left, poll))
            event.clear()
        else:
            time.sleep(min(left, poll))
    return time.perf_counter() - started


def settle(replica: Replica, timeout: float, quiet_cpu: float = 0.02, interval: float = 0.5) -> tuple[float, bool]:
    """Waits until the controller has nothing pending and the process used less than `quiet_cpu`
    CPU seconds in `interval` (the mirror's listings and reads done); returns (seconds, settled)."""
    started = time.perf_counter()
    last = time.process_time()
    while time.perf_counter() - started < timeout:
        time.sleep(interval)
        now = time.process_time()
        if now - last < quiet_cpu and not replica.pending():
            return time.perf_counter() - started, True
        last = now
    return time.perf_counter() - started, False


# -- per-thread CPU, the garbage collector, memory ---------------------------------------------


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each live thread of this process, by thread name."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[thread.name] = out.get(thread.name, 0.0) + (int(fields[11]) + int(fields[12])) / measure.TICKS
    return out


def _thread_label(name: str) -> str:
    """kazoo's threads by role: zk_loop (the connection), _thread_worker (callbacks, completions)."""
    if "zk_loop" in name:
        return "kazoo connection"
    if "_thread_worker" in name:
        return "kazoo callbacks"
    return name


class GcClock:
    """Time spent in the cyclic garbage collector, and collections per generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._t = 0.0
        gc.callbacks.append(self._on)

    def _on(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._t
            self.collections[info["generation"]] += 1

    def reading(self) -> tuple[float, list[int]]:
        return self.seconds, list(self.collections)


def rss() -> float:
    return measure.rss_mib(os.getpid())["rss"]


class Guard:
    """Stops the child at once, with what it measured so far, when its RSS passes `cap_mib`."""

    def __init__(self, out: dict, result: str, cap_mib: float) -> None:
        self.out, self.result, self.cap = out, result, cap_mib
        self.peak = 0.0
        threading.Thread(target=self._watch, name="guard", daemon=True).start()

    def _watch(self) -> None:
        while True:
            now = rss()
            self.peak = max(self.peak, now)
            if now > self.cap:
                self.out["aborted"] = (
                    f"RSS {now:.0f} MiB passed the cap of {self.cap:.0f} MiB during {self.out.get('phase')}"
                )
                self.out["requests_at_abort"] = dict(self.out.get("_requests", {}))
                self.out["rss_peak_mib"] = now
                self.out.pop("_requests", None)
                self.out.pop("phase", None)
                say(f"N={self.out['pods']} ({self.out['layout']}): {self.out['aborted']}; stopping")
                Path(self.result).write_text(json.dumps(self.out, default=str))
                os._exit(4)
            time.sleep(0.25)


# -- the child: one N, one layout, one mode ----------------------------------------------------


class Loop:
    """The closed loop of pod transitions: each is put into the inventory, then waited for until
    the controller has written it (the mirror, which the writer updates, shows it)."""

    def __init__(self, replica: Replica, workload: Workload, pods: list) -> None:
        self.replica, self.workload, self.pods = replica, workload, pods
        self.rng = random.Random(7)
        self.ready = list(range(len(pods)))  # indexes into pods of the serving pods
        self.held: list[tuple[str, int]] = []  # ("unready" | "deleted", index)
        self.kinds = {"unready": 0, "deleted": 0, "ready": 0, "created": 0}
        self.failures = 0

    def one(self) -> float:
        """One transition; returns its latency in seconds (put -> written)."""
        inventory, rng = self.replica.inventory, self.rng
        now_ms = int(time.time() * 1000)
        deregister = not self.held or (len(self.held) < UNREADY_POOL and rng.random() < 0.5)
        if deregister:
            slot = rng.randrange(len(self.ready))
            index = self.ready[slot]
            self.ready[slot] = self.ready[-1]
            self.ready.pop()
            pod = self.pods[index]
            kind = "deleted" if rng.random() < DELETE_SHARE else "unready"
            self.held.append((kind, index))
            want = False
            started = time.perf_counter()
            if kind == "deleted":
                inventory.remove_pod(pod.key)
            else:
                pod = self.pods[index] = dataclasses.replace(pod, ready=False, ready_since_ms=now_ms)
                inventory.put_pod(pod)
        else:
            kind, index = self.held.pop(rng.randrange(len(self.held)))
            old = self.pods[index]
            if kind == "deleted":  # its ReplicaSet replaces it with a new pod
                pod, kind = self.workload.pod(old.replicaset), "created"
            else:
                pod, kind = dataclasses.replace(old, ready=True, ready_since_ms=now_ms), "ready"
            self.pods[index] = pod
            self.ready.append(index)
            want = True
            started = time.perf_counter()
            inventory.put_pod(pod)
        self.kinds[kind] += 1
        path = self.workload.path_of_rs[pod.replicaset]
        try:
            wait_until(
                lambda: self.replica.registered(path, pod.uid) is want,
                TRANSITION_TIMEOUT,
                f"the controller to write {pod.name} ({kind})",
                event=self.replica.reconciled,
                poll=0.05,
            )
        except TimeoutError:
            self.failures += 1
            if self.failures > 20:
                raise
        return time.perf_counter() - started


def _requests_since(replica: Replica, before: dict[str, int], count: int) -> dict:
    now = replica.requests
    return {
        "listings": now["get_children"] - before["get_children"],
        "reads": now["get"] - before["get"],
        "per_transition": {
            "listings": round((now["get_children"] - before["get_children"]) / count, 2) if count else None,
            "reads": round((now["get"] - before["get"]) / count, 2) if count else None,
        },
    }


def child(args: argparse.Namespace) -> dict:
    pods_n, mode, layout = args.pods, args.child, args.layout
    deadline = time.monotonic() + args.timeout
    name = f"scaling-n{pods_n}-{layout}-{mode}-{os.getpid()}"
    root = f"/zkregistry-scaling/{name}"  # the replica's own znodes: election, claims
    base = f"{PREFIX}/{name}"  # registries' base path: under the prefix every namespace is granted
    sizes = registry_sizes(pods_n, layout)
    out: dict = {"pods": pods_n, "layout": layout, "mode": mode, "registries": len(sizes), "largest_path": max(sizes)}
    import zkregistry.app  # noqa: F401 (imported before tracemalloc starts: kopf, kubernetes, kazoo)

    out["rss_start_mib"] = rss()
    if mode == "memory":
        tracemalloc.start(args.frames)
    replica = Replica(args.hosts, root)
    out["_requests"] = replica.requests
    guard = Guard(out, args.result, args.rss_cap)
    workload = Workload(pods_n, base, layout)
    gc_clock = GcClock()
    what = f"N={pods_n} {layout} ({mode})"
    try:
        gc.collect()
        before = tracemalloc.take_snapshot() if mode == "memory" else None
        out["rss_connected_mib"] = rss()
        out["phase"] = "fill"
        say(f"{what}: filling the inventory ({out['registries']} registries, largest {out['largest_path']})")
        c0, t0 = time.process_time(), time.perf_counter()
        pods = workload.fill(replica.inventory, keep=mode == "cpu")
        out["fill"] = {
            "seconds": round(time.perf_counter() - t0, 3),
            "cpu_us_per_pod": _us(time.process_time() - c0, pods_n),
        }
        gc.collect()
        filled = tracemalloc.take_snapshot() if mode == "memory" else None
        out["rss_filled_mib"] = rss()

        out["phase"] = "registration"
        say(f"{what}: leading; registering {pods_n} pods (whole-path plans)")
        requests0 = dict(replica.requests)
        c0, t0 = time.process_time(), time.perf_counter()
        replica.lead()
        seconds = wait_until(
            lambda: replica.controller.owned() >= pods_n,
            max(60.0, deadline - time.monotonic() - 30),
            f"{pods_n} registrations",
            event=replica.reconciled,
        )
        cpu_written = time.process_time() - c0
        out["register"] = {  # kept if the guard stops the child while it settles
            "seconds": round(seconds, 3),  # election joined -> every create's reply applied to the mirror
            "cpu_s": round(cpu_written, 3),
            "rss_mib": rss(),
        }
        say(f"{what}: registered in {seconds:.2f} s ({cpu_written:.2f} CPU s); settling")
        out["phase"] = "settling after the registration"
        settled_s, settled = settle(replica, max(30.0, min(args.settle, deadline - time.monotonic() - 60)))
        out["register"] |= {
            "settled": settled,
            "settled_s": round(seconds + settled_s, 3),  # and the mirror's own listings and reads done
            "cpu_settled_s": round(time.process_time() - c0, 3),
            "peak_rss_mib": guard.peak,
            **_requests_since(replica, requests0, 0),
            "connection_states": dict(replica.states),
        }
        out["register"].pop("per_transition")
        say(
            f"{what}: "
            + (f"settled {settled_s:.1f} s later" if settled else f"NOT settled {settled_s:.0f} s later")
            + f" ({out['register']['listings']} listings, {out['register']['reads']} reads;"
            + f" peak RSS {guard.peak:.0f} MiB)"
        )
        out["rss_registered_mib"] = rss()

        if mode == "memory":
            gc.collect()
            out["memory"] = _memory(before, filled, tracemalloc.take_snapshot(), pods_n)
            out["memory"]["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
            tracemalloc.stop()
            return out
        if not settled:
            out["transitions_skipped"] = (
                "the replica had not settled after its registration (the mirror still listing and reading): "
                "transitions measured now would measure that"
            )
            return out

        # Idle: what the replica costs doing nothing (the controller's tick, kazoo's pings).
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(2.0)
        idle_cpu_per_s = (time.process_time() - c0) / (time.perf_counter() - t0)
        out["idle_cpu_pct"] = round(100 * idle_cpu_per_s, 2)

        out["phase"] = "transitions"
        loop = Loop(replica, workload, pods)
        say(f"{what}: {args.warmup} warm-up transitions, then {args.transitions} measured")
        for _ in range(args.warmup):
            loop.one()
        settle(replica, 30)
        latencies = []
        gc0, threads0, requests0 = gc_clock.reading(), thread_cpu(), dict(replica.requests)
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(args.transitions):
            latencies.append(loop.one() * 1000)
            if time.monotonic() > deadline - 90:
                say(f"{what}: out of time after {len(latencies)} transitions")
                break
        loop_s = time.perf_counter() - t0
        drained, _ = settle(replica, 30)
        cpu = time.process_time() - c0
        wall = time.perf_counter() - t0
        gc1, threads1 = gc_clock.reading(), thread_cpu()
        done = len(latencies)
        by_thread: dict[str, float] = {}
        for name, seconds_ in threads1.items():
            label = _thread_label(name)
            by_thread[label] = by_thread.get(label, 0.0) + seconds_ - threads0.get(name, 0.0)
        out["transitions"] = {
            "count": done,
            "kinds": loop.kinds,
            "timeouts": loop.failures,
            "seconds": round(loop_s, 2),
            "drain_s": round(drained, 2),
            "cpu_s": round(cpu, 3),
            "cpu_us_per_transition": _us(cpu, done),
            "idle_cpu_us_per_transition": _us(idle_cpu_per_s * wall, done),
            "cpu_us_per_transition_by_thread": {
                k: _us(v, done) for k, v in sorted(by_thread.items(), key=lambda kv: -kv[1]) if v > 0 and k != "guard"
            },
            "gc_us_per_transition": _us(gc1[0] - gc0[0], done),
            "gc_collections": [b - a for a, b in zip(gc0[1], gc1[1], strict=True)],
            "latency_ms": measure.summary(latencies),
            "zookeeper_reads": _requests_since(replica, requests0, done),
        }
        t = out["transitions"]
        say(
            f"{what}: {t['cpu_us_per_transition']} CPU us per transition "
            f"({t['zookeeper_reads']['per_transition']['listings']} listings each); "
            f"latency p50 {t['latency_ms']['p50']} ms p99 {t['latency_ms']['p99']} ms"
        )
        out["rss_after_transitions_mib"] = rss()

        # One periodic resync: every path read afresh (children and data), then planned whole.
        out["phase"] = "resync"
        say(f"{what}: one full resync (every path read afresh)")
        replica.reconciled.clear()
        requests0 = dict(replica.requests)
        c0, t0 = time.process_time(), time.perf_counter()
        replica.controller.resync(refresh=True)
        replica.reconciled.wait(max(10.0, deadline - time.monotonic() - 60))
        first = time.perf_counter() - t0
        settled_s, settled = settle(replica, max(30.0, min(args.settle, deadline - time.monotonic() - 30)))
        out["resync"] = {
            "seconds": round(first, 3),
            "settled": settled,
            "settled_s": round(first + settled_s, 3),
            "cpu_s": round(time.process_time() - c0, 3),
            **_requests_since(replica, requests0, 0),
        }
        out["resync"].pop("per_transition")
        if args.profile and time.monotonic() < deadline - 120:
            out["phase"] = "profiled transitions"
            out["profile"] = _profiled_window(replica, loop, args)
        return out
    finally:
        now = measure.rss_mib(os.getpid())
        out["rss_end_mib"], out["rss_peak_mib"] = now["rss"], now["peak"]
        grown = out.get("rss_registered_mib", out["rss_connected_mib"]) - out["rss_connected_mib"]
        out["rss_growth_bytes_per_pod"] = round(grown * 2**20 / pods_n)
        out.pop("_requests", None)
        out.pop("phase", None)
        started = time.perf_counter()
        replica.close()
        _remove(args.hosts, root, base)
        say(f"{what}: closed and cleaned up in {time.perf_counter() - started:.1f} s")


def _profiled_window(replica: Replica, loop: Loop, args: argparse.Namespace) -> dict | None:
    from benchmarks import profile

    if not profile.available() or not args.profile_dir:
        return None
    stem = Path(args.profile_dir) / f"profile-scaling-{args.pods}-{args.layout}-transitions"
    recording = profile.Recording.start(os.getpid(), stem, rate=100)
    time.sleep(0.5)
    count = max(200, args.transitions // 2)
    say(f"N={args.pods} {args.layout}: {count} more transitions under py-spy")
    for _ in range(count):
        loop.one()
    settle(replica, 30)
    result = recording.stop()
    if result:
        result["transitions"] = count
    return result


def _us(seconds: float, count: int) -> float | None:
    return round(seconds * 1e6 / count, 1) if count else None


#: Who holds what the registration allocated (tracemalloc with one frame: the allocating line's
#: file), first match wins. The inventory is measured apart: all that the fill allocated.
HOLDERS = (
    ("mirror (nodes, names, decoded members)", ("zkregistry/membership.py", "formats/curator.py", "json/decoder.py")),
    ("encoded payloads (one copy: the mirror's and the controller's)", ("zkregistry/formats/__init__.py",)),
    ("controller caches (instances, wanted)", ("zkregistry/controller.py", "zkregistry/model.py")),
    ("kazoo", ("/kazoo/",)),
)


def _holder(filename: str) -> str:
    return next((holder for holder, parts in HOLDERS if any(part in filename for part in parts)), "other")


def _by_file(snapshot: tracemalloc.Snapshot) -> dict[str, int]:
    return {stat.traceback[0].filename: stat.size for stat in snapshot.statistics("filename")}


def _memory(before, filled, after, pods: int) -> dict:
    """Bytes still allocated per pod: the inventory (all that the fill allocated: pods, indexes),
    then what the registration added, by holder."""
    base, at_fill, at_end = _by_file(before), _by_file(filled), _by_file(after)
    inventory = sum(at_fill.values()) - sum(base.values())
    added: dict[str, int] = {}
    for filename in set(at_fill) | set(at_end):
        holder = _holder(filename)
        added[holder] = added.get(holder, 0) + at_end.get(filename, 0) - at_fill.get(filename, 0)
    total = sum(at_end.values()) - sum(base.values())
    top = after.compare_to(before, "lineno")[:12]
    return {
        "bytes_per_pod": {"inventory (pods, indexes)": round(inventory / pods)}
        | {h: round(v / pods) for h, v in sorted(added.items(), key=lambda kv: -kv[1])},
        "bytes_per_pod_total": round(total / pods),
        "mib_total": round(total / 2**20, 1),
        "top_lines": [(str(s.traceback[0]), round(s.size_diff / pods, 1)) for s in top],
    }


def _remove(hosts: str, *paths: str) -> None:
    """Our session is closed, its ephemeral znodes gone: remove the persistent ones left."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts, timeout=10)
    try:
        client.start(timeout=30)
        for path in paths:
            client.delete(path, recursive=True)
    except Exception as error:
        say(f"could not remove {paths}: {error!r}")
    finally:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()


# -- the ensemble ---------------------------------------------------------------------------------

#: The scaling ensemble's servers: a 1 GiB heap and transactions of up to 32 MiB, where devenv's
#: have 256 MiB and ZooKeeper's default limit. A session that owns N ephemeral znodes is closed
#: (or expires) through one CloseSession transaction that lists their paths, about 73 bytes each
#: here: 7 MiB at 100,000. Past about 2 MiB (jute.maxbuffer's default 1 MiB plus as much again
#: of slack), about 28,000 registrations in one leader's session, the followers refuse it
#: ("Unreasonable length"), the quorum breaks and the znodes stay; with a 256 MiB heap the
#: servers run out of memory on it. See analysis.md.
HEAP = "1g"
JUTE_MAXBUFFER = 32 * 2**20


def start_ensemble(workdir: Path):
    """A 3-server ensemble as devenv's, with the larger heap and transaction limit."""
    from zkregistry.devenv.ensemble import Ensemble
    from zkregistry.devenv.processes import spawn

    class ScalingEnsemble(Ensemble):
        def _launch(self, server) -> None:  # devenv's command line, but for the heap and the limit
            directory = self._dir(server)
            process = spawn(
                [
                    *("java", "-Xms256m", f"-Xmx{HEAP}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
                    f"-Djute.maxbuffer={JUTE_MAXBUFFER}",
                    f"-Dzookeeper.log.dir={directory}",
                    "-Dzookeeper.jmx.log4j.disable=true",
                    *("-cp", f"{self.jars}/*", "org.apache.zookeeper.server.quorum.QuorumPeerMain"),
                    str(directory / "zoo.cfg"),
                ],
                directory / "server.log",
            )
            server.pid = process.pid
            self._save()

    ensemble = ScalingEnsemble(workdir / "zookeeper", Path(os.environ["ZKREGISTRY_ZOOKEEPER"]))
    say(f"starting a 3-server ensemble in {workdir} (heap {HEAP}, jute.maxbuffer {JUTE_MAXBUFFER})")
    ensemble.start()
    return ensemble


# -- the parent ----------------------------------------------------------------------------------


def jobs(pods: list[int], memory: bool) -> list[tuple[int, str, str]]:
    """(N, layout, mode) in the order they run: each N's even cpu, even memory, then zipf cpu
    (at N = 1,000 both layouts are one registry: zipf is not run again)."""
    out = []
    for n in sorted(pods):
        out.append((n, "even", "cpu"))
        if memory:
            out.append((n, "even", "memory"))
        if registry_sizes(n, "zipf") != registry_sizes(n, "even"):
            out.append((n, "zipf", "cpu"))
    return out


def child_timeout(pods: int, mode: str) -> float:
    """Seconds a child may take: room for a loaded 2-core machine, but bounded."""
    return (240 + pods * 0.004) if mode == "cpu" else (120 + pods * 0.003)


def run(
    hosts: str,
    pods: list[int],
    transitions: int = TRANSITIONS,
    warmup: int = WARMUP,
    profile_dir: Path | None = None,
    memory: bool = True,
    budget_s: float = 1500.0,
    settle_s: float = 120.0,
    rss_cap_mib: float = 3072.0,
) -> dict:
    """Every (N, layout, mode) in a child process of its own; returns the figures."""
    started = time.monotonic()
    runs: dict[str, dict[str, dict]] = {layout: {} for layout in LAYOUTS}
    for n, layout, mode in jobs(pods, memory):
        entry = runs[layout].setdefault(str(n), {})
        left = budget_s - (time.monotonic() - started)
        timeout = min(child_timeout(n, mode), left)
        if timeout < 60:
            entry[f"{mode}_error"] = "not run: the scaling run's time budget was spent"
            continue
        profiled = profile_dir if (n == max(pods) and layout == "even") else None
        result = _child(hosts, n, layout, mode, transitions, warmup, timeout, profiled, settle_s, rss_cap_mib)
        if "error" in result:
            entry[f"{mode}_error"] = result["error"]
        if mode == "cpu":
            entry.update({k: v for k, v in result.items() if k != "error"})
        elif "memory" in result:
            entry["memory"] = result["memory"]
            entry["memory_child"] = {
                k: result.get(k) for k in ("register", "rss_registered_mib", "aborted") if k in result
            }
        elif "aborted" in result:
            entry["memory_child"] = {"aborted": result["aborted"]}
    return summarise(runs, time.monotonic() - started, transitions, rss_cap_mib)


def summarise(runs: dict[str, dict[str, dict]], seconds: float, transitions: int, rss_cap_mib: float = 0) -> dict:
    """The figures per layout and N, and per layout the ratio of CPU per transition at the largest
    N over the smallest (N = 1,000 is the same replica in both layouts: one registry)."""
    table, ratios = [], {}
    smallest = min((int(n) for r in runs.values() for n in r), default=None)
    for layout, by_n in runs.items():
        counts = sorted(int(n) for n in by_n)
        cpu = {n: (by_n[str(n)].get("transitions") or {}).get("cpu_us_per_transition") for n in counts}
        if smallest is not None and str(smallest) not in by_n:  # the zipf layout's N = 1,000 is the even one
            cpu[smallest] = (runs.get("even", {}).get(str(smallest), {}).get("transitions") or {}).get(
                "cpu_us_per_transition"
            )
        largest = counts[-1] if counts else None
        ratios[layout] = (
            round(cpu[largest] / cpu[smallest], 2)
            if largest and smallest and largest != smallest and cpu.get(largest) and cpu.get(smallest)
            else None
        )
        for n in counts:
            r = by_n[str(n)]
            t, m, reg = r.get("transitions") or {}, r.get("memory") or {}, r.get("register") or {}
            table.append(
                {
                    "layout": layout,
                    "pods": n,
                    "registries": r.get("registries"),
                    "largest_path": r.get("largest_path"),
                    "cpu_us_per_transition": t.get("cpu_us_per_transition"),
                    "listings_per_transition": ((t.get("zookeeper_reads") or {}).get("per_transition") or {}).get(
                        "listings"
                    ),
                    "latency_p50_ms": (t.get("latency_ms") or {}).get("p50"),
                    "latency_p99_ms": (t.get("latency_ms") or {}).get("p99"),
                    "bytes_per_pod": m.get("bytes_per_pod_total"),
                    "rss_registered_mib": r.get("rss_registered_mib"),
                    "rss_peak_mib": r.get("rss_peak_mib"),
                    "register_s": reg.get("seconds"),
                    "settled_s": reg.get("settled_s"),
                    "settled": reg.get("settled"),
                    "resync_s": (r.get("resync") or {}).get("settled_s"),
                    "note": r.get("aborted") or r.get("cpu_error") or r.get("transitions_skipped"),
                }
            )
    return {
        "method": "One replica (app.py's Operator: inventory, controller, mirror, writer and election, without kopf, "
        "the reflectors or the reporter) against a 3-server ensemble, fed pod transitions through "
        "Inventory.put_pod/remove_pod in a closed loop, each waited for until written",
        "transitions_per_n": transitions,
        "ensemble": {"heap": HEAP, "jute_maxbuffer": JUTE_MAXBUFFER},
        "rss_cap_mib": rss_cap_mib,
        "seconds": round(seconds, 1),
        "cpu_ratio_by_layout": ratios,
        "cpu_ratio_largest_over_smallest": ratios.get("even"),
        "table": table,
        "runs": runs,
    }


def _child(
    hosts: str,
    n: int,
    layout: str,
    mode: str,
    transitions: int,
    warmup: int,
    timeout: float,
    profile_dir,
    settle_s: float,
    rss_cap_mib: float,
) -> dict:
    with tempfile.NamedTemporaryFile("r", suffix=".json", prefix="scaling-") as result:
        command = [
            *(sys.executable, "-m", "benchmarks.scaling", "--child", mode, "--layout", layout),
            *("--pods", str(n), "--hosts", hosts, "--transitions", str(transitions), "--warmup", str(warmup)),
            *("--timeout", str(int(timeout)), "--settle", str(settle_s), "--rss-cap", str(rss_cap_mib)),
            *("--result", result.name),
        ]
        if profile_dir is not None and mode == "cpu":
            command += ["--profile", "--profile-dir", str(profile_dir)]
        say(f"N={n} {layout}: {mode} child (at most {timeout:.0f} s)")
        top = Path(__file__).resolve().parents[1]
        process = subprocess.Popen(command, cwd=top, start_new_session=True)
        try:
            code = process.wait(timeout + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
            return {"error": f"killed after {timeout + 30:.0f} s"}
        text = Path(result.name).read_text()
        if not text.strip():
            return {"error": f"exited {code} without a result"}
        out = json.loads(text)
        if code not in (0, 4) and "error" not in out:
            out["error"] = f"exited {code}"
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", default=",".join(str(p) for p in DEFAULT_PODS), help="comma-separated N")
    parser.add_argument("--hosts", help="ZooKeeper connection string (default: start a 3-server ensemble here)")
    parser.add_argument("--transitions", type=int, default=TRANSITIONS)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--out", type=Path, help="folder for scaling.json and scaling.png (default: print only)")
    parser.add_argument("--profile", action="store_true", help="py-spy a further window at the largest N")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the tracemalloc children")
    parser.add_argument("--budget", type=float, default=1500.0, help="seconds for the whole run (default 1500)")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds a replica may take to settle")
    parser.add_argument("--rss-cap", type=float, default=3072.0, help="MiB of RSS at which a child stops")
    # a child's own options
    parser.add_argument("--child", choices=("cpu", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--layout", choices=LAYOUTS, default="even", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=600, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--profile-dir", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        args.pods = int(args.pods)
        timer = threading.Timer(args.timeout, lambda: os._exit(3))  # the hard bound, whatever hangs
        timer.daemon = True
        timer.start()
        try:
            out = child(args)
        except BaseException as error:
            Path(args.result).write_text(json.dumps({"error": f"{type(error).__name__}: {error}"}))
            raise
        Path(args.result).write_text(json.dumps(out, default=str))
        sys.stderr.flush()
        os._exit(0)  # kazoo's threads are done with; do not wait for them at exit

    pods = sorted({int(p) for p in args.pods.split(",") if p.strip()})
    ensemble = workdir = None
    hosts = args.hosts
    if not hosts:
        if not os.environ.get("ZKREGISTRY_ZOOKEEPER"):
            parser.error("ZKREGISTRY_ZOOKEEPER is not set: run through tools/env.sh, or give --hosts")
        workdir = Path(tempfile.mkdtemp(prefix="zkregistry-scaling-"))
        ensemble = start_ensemble(workdir)
        hosts = ensemble.connection_string
    try:
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
        results = run(
            hosts,
            pods,
            args.transitions,
            args.warmup,
            profile_dir=args.out if args.profile else None,
            memory=args.memory,
            budget_s=args.budget,
            settle_s=args.settle,
            rss_cap_mib=args.rss_cap,
        )
        results["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if ensemble is not None:
            ensemble.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results["table"], indent=1))
    print(f"CPU per transition, largest N / smallest, by layout: {results['cpu_ratio_by_layout']}")
    if args.out:
        from benchmarks import report

        (args.out / "scaling.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
        report.scaling_plot(args.out, results)
        say(f"wrote {args.out / 'scaling.json'} and scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
