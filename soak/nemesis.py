"""The seeded random nemesis: rounds of faults, one or a few overlapping, each healed by itself.

    nemesis = Nemesis(random.Random(seed), slots, ensemble, cluster, zk, paths, foreign)
    round_ = nemesis.round(number)     # injects, waits until every fault of the round healed
    round_.faults                      # [Fault(kind, target, start, end)]

A round draws one fault (half of the time), two or three (the rest), each from a different domain
(replicas, ZooKeeper servers, the API server, znodes), started a random 0 to 3 s apart, each on its
own thread; `round` returns when every one has healed. The same seed draws the same schedule
(the timings of the processes themselves are not seeded, so their effects may differ).

Kinds, and how each heals:

| kind | fault | heals |
| --- | --- | --- |
| `kill` | kill -9 of a random replica | restarted with the same name 2 to 8 s later, as its Deployment would |
| `term` | SIGTERM of a random replica (graceful) | restarted once it has exited, 1 to 5 s later |
| `stop` | SIGSTOP of a random replica | SIGCONT 1 to 8 s later (past the session timeout: a crash) |
| `rolling-restart` | SIGTERM of each replica in turn, as a rollout does | each back and ready before the next |
| `zk-stop` | one ZooKeeper server stopped | started 3 to 10 s later |
| `zk-pause` | one ZooKeeper server SIGSTOPped | SIGCONT 2 to 8 s later |
| `zk-restart` | one ZooKeeper server stopped and started at once | when it serves again |
| `quorum-loss` | two of the three servers stopped | both started 2 to 6 s later |
| `apiserver-restart` | kube-apiserver stopped and started | when it is ready again |
| `znode-delete` | 1 to 3 of our registrations deleted by hand | the operator must create them again |
| `znode-corrupt` | one registration of ours rewritten with a wrong address and port | the operator must rewrite it |
| `foreign` | a writer outside Kubernetes adds or removes members of its own | at once; they must stay untouched |

`GRACEFUL` kinds (`term`, `rolling-restart`) must cost a client nothing: no Ready pod may go
missing for any observer.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from zkregistry.devenv.cluster import Cluster
from zkregistry.devenv.ensemble import Ensemble
from zkregistry.devenv.processes import wait_for
from zkregistry.devenv.replicas import Replica, Replicas
from zkregistry.formats import read_any

KINDS = (
    "kill",
    "term",
    "stop",
    "rolling-restart",
    "zk-stop",
    "zk-pause",
    "zk-restart",
    "quorum-loss",
    "apiserver-restart",
    "znode-delete",
    "znode-corrupt",
    "foreign",
)
GRACEFUL = frozenset({"term", "rolling-restart"})
DOMAIN = {
    "kill": "replica",
    "term": "replica",
    "stop": "replica",
    "rolling-restart": "replica",
    "zk-stop": "zookeeper",
    "zk-pause": "zookeeper",
    "zk-restart": "zookeeper",
    "quorum-loss": "zookeeper",
    "apiserver-restart": "apiserver",
    "znode-delete": "znodes",
    "znode-corrupt": "znodes",
    "foreign": "foreign",
}
WEIGHTS = {
    "kill": 3,
    "term": 3,
    "stop": 2,
    "rolling-restart": 1,
    "zk-stop": 2,
    "zk-pause": 1,
    "zk-restart": 1,
    "quorum-loss": 1,
    "apiserver-restart": 1,
    "znode-delete": 2,
    "znode-corrupt": 1,
    "foreign": 2,
}


@dataclass
class Fault:
    kind: str
    target: str
    start: float  # time.time() when it was injected
    end: float | None = None  # when it healed
    error: str | None = None  # the nemesis itself failed to inject or heal it

    def as_dict(self) -> dict:
        return {"kind": self.kind, "target": self.target, "start": self.start, "end": self.end, "error": self.error}


@dataclass
class Round:
    number: int
    faults: list[Fault]
    start: float
    healed: float  # when the last fault healed
    converged: float | None = None  # when the checker found every invariant true again
    problems: list[str] = field(default_factory=list)  # what still failed at the bound

    @property
    def kinds(self) -> list[str]:
        return sorted({f.kind for f in self.faults})

    def as_dict(self) -> dict:
        return {
            "number": self.number,
            "kinds": self.kinds,
            "faults": [f.as_dict() for f in self.faults],
            "start": self.start,
            "healed": self.healed,
            "converged": self.converged,
            "converge_s": None if self.converged is None else round(self.converged - self.healed, 3),
            "problems": self.problems,
        }


class Slots:
    """The replicas as their Deployment would keep them: a fixed number of names, each run by one
    process at a time; a killed replica is restarted under the same name (its identity)."""

    def __init__(self, replicas: Replicas, count: int) -> None:
        self.replicas = replicas
        self.current: dict[str, Replica] = {r.name: r for r in replicas.start(count)}
        self.busy: set[str] = set()  # names the nemesis holds (stopped, paused or restarting)
        self.lock = threading.Lock()

    def take(self, rng: random.Random) -> Replica | None:
        """A random replica that no other fault holds, held until `release`."""
        with self.lock:
            free = sorted(n for n in self.current if n not in self.busy)
            if not free:
                return None
            name = rng.choice(free)
            self.busy.add(name)
            return self.current[name]

    def hold(self, name: str) -> bool:
        """Holds the replica `name` unless another fault does; whether it did."""
        with self.lock:
            if name in self.busy:
                return False
            self.busy.add(name)
            return True

    def release(self, name: str) -> None:
        with self.lock:
            self.busy.discard(name)

    def restart(self, name: str) -> Replica:
        replica = self.replicas.start_one(name)
        with self.lock:
            self.current[name] = replica
        return replica

    def revive(self) -> list[tuple[str, int | None]]:
        """Restarts, as the kubelet would, every replica that exited while no fault held it (its
        /healthz gave up, or it crashed); returns (name, exit code) of each."""
        revived = []
        with self.lock:
            dead = [r for n, r in self.current.items() if n not in self.busy and not r.alive()]
        for replica in dead:
            revived.append((replica.name, replica.process.poll()))
            self.restart(replica.name)
        return revived

    def serving(self) -> list[Replica]:
        """The replicas that run and are not held by a fault (a paused one cannot answer)."""
        with self.lock:
            return [r for n, r in self.current.items() if n not in self.busy and r.alive()]


class Foreign:
    """A writer outside Kubernetes, on its own ZooKeeper session, that adds and removes members of
    its own (persistent znodes, so that no session expiry removes them) under the service paths.

    `members` maps each path it wrote to the mzxid its create returned; the checker asserts that
    they stay exactly so (no write of the operator's may touch them) and that `removed` are gone."""

    def __init__(self, hosts: str) -> None:
        self.client = KazooClient(hosts, timeout=15)
        self.client.start(timeout=60)
        self.members: dict[str, int] = {}
        self.removed: set[str] = set()
        self.lock = threading.Lock()
        self.count = 0

    def add(self, path: str) -> str:
        self.count += 1
        name = f"external-{self.count}"
        body = {
            "name": path.rsplit("/", 1)[1],
            "id": name,
            "address": f"192.0.2.{self.count % 250 + 1}",
            "port": 9000,
            "sslPort": None,
            "payload": {"owner": "a-vm-outside-kubernetes"},
            "registrationTimeUTC": int(time.time() * 1000),
            "serviceType": "STATIC",
            "uriSpec": None,
            "enabled": True,
        }
        full = f"{path}/{name}"
        with contextlib.suppress(NodeExistsError):  # a retry after a lost reply finds its own create
            self.client.retry(self.client.create, full, json.dumps(body).encode())
        stat = self.client.retry(self.client.exists, full)
        with self.lock:
            self.members[full] = stat.mzxid
        return full

    def remove(self, rng: random.Random) -> str | None:
        with self.lock:
            if not self.members:
                return None
            full = rng.choice(sorted(self.members))
            del self.members[full]
            self.removed.add(full)
        with contextlib.suppress(NoNodeError):
            self.client.retry(self.client.delete, full)
        return full

    def changed(self) -> list[str]:
        """What was changed by anyone else: members whose mzxid moved or that vanished, and
        removed ones that came back. Raises KazooException when ZooKeeper cannot be read."""
        with self.lock:
            members, removed = dict(self.members), set(self.removed)
        out = []
        for full, mzxid in sorted(members.items()):
            stat = self.client.exists(full)
            if stat is None:
                out.append(f"foreign member {full} was deleted")
            elif stat.mzxid != mzxid:
                out.append(f"foreign member {full} was changed (mzxid {mzxid:#x} -> {stat.mzxid:#x})")
        out += [f"removed foreign member {p} is back" for p in sorted(removed) if self.client.exists(p) is not None]
        return out

    def close(self) -> None:
        self.client.stop()
        self.client.close()


class Nemesis:
    def __init__(
        self,
        rng: random.Random,
        slots: Slots,
        ensemble: Ensemble,
        cluster: Cluster,
        zk: KazooClient,
        paths: list[str],
        owner: str,
        foreign: Foreign,
        log: Callable[[str], None] = print,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        """`kinds`: the kinds to draw from (default all; a subset repeats one kind of failure)."""
        self.rng, self.slots, self.ensemble, self.cluster = rng, slots, ensemble, cluster
        self.zk, self.paths, self.owner, self.foreign, self.log = zk, paths, owner, foreign, log
        self.kinds = tuple(k for k in KINDS if k in kinds)

    def draw(self) -> list[tuple[str, float]]:
        """The kinds of one round, each from a different domain, with their delays from its start."""
        count = 1 if self.rng.random() < 0.5 else self.rng.choice([2, 2, 3])
        count = min(count, len({DOMAIN[k] for k in self.kinds}))
        kinds: list[str] = []
        names = list(self.kinds)
        while len(kinds) < count:
            kind = self.rng.choices(names, [WEIGHTS[k] for k in names])[0]
            if DOMAIN[kind] not in {DOMAIN[k] for k in kinds}:
                kinds.append(kind)
        return [(k, 0.0 if i == 0 else self.rng.uniform(0, 3)) for i, k in enumerate(kinds)]

    def round(self, number: int) -> Round:
        plan = self.draw()
        # Each fault draws from a generator of its own, seeded here: the schedule does not depend
        # on the order in which the threads run.
        seeds = [self.rng.getrandbits(64) for _ in plan]
        faults: list[Fault] = []
        lock = threading.Lock()
        start = time.time()

        def run(kind: str, delay: float, seed: int) -> None:
            time.sleep(delay)
            fault = Fault(kind, "", time.time())
            with lock:
                faults.append(fault)
            try:
                getattr(self, "_" + kind.replace("-", "_"))(fault, random.Random(seed))
            except Exception as error:  # the fault could not be injected or healed as meant
                fault.error = f"{type(error).__name__}: {error}"
                self.log(f"  nemesis: {kind} on {fault.target or '?'}: {fault.error}")
            fault.end = time.time()

        threads = [
            threading.Thread(target=run, args=(k, d, s), name=f"nemesis-{k}", daemon=True)
            for (k, d), s in zip(plan, seeds, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return Round(number, sorted(faults, key=lambda f: f.start), start, max(f.end or start for f in faults))

    # -- replicas ---------------------------------------------------------------------------------

    def _replica_fault(self, fault: Fault, rng: random.Random, hurt: Callable[[Replica], None], heal) -> None:
        replica = self.slots.take(rng)
        if replica is None:
            fault.target = "none free"
            return
        fault.target = replica.name
        try:
            hurt(replica)
            time.sleep(heal)
        finally:
            if not replica.alive():
                self.slots.restart(replica.name)
            else:
                replica.resume()  # a paused one; harmless for the others
            self.slots.release(replica.name)

    def _kill(self, fault: Fault, rng: random.Random) -> None:
        self._replica_fault(fault, rng, lambda r: r.kill(), rng.uniform(2, 8))

    def _term(self, fault: Fault, rng: random.Random) -> None:
        self._replica_fault(fault, rng, lambda r: r.terminate(timeout=60), rng.uniform(1, 5))

    def _stop(self, fault: Fault, rng: random.Random) -> None:
        self._replica_fault(fault, rng, lambda r: r.pause(), rng.uniform(1, 8))

    # -- ZooKeeper --------------------------------------------------------------------------------

    def _rolling_restart(self, fault: Fault, rng: random.Random) -> None:
        """Each replica in turn: SIGTERM, restarted at once, ready before the next one goes."""
        fault.target = "all"
        for name in sorted(self.slots.current):
            if not self.slots.hold(name):
                continue  # another fault holds it (cannot happen within one round: one replica fault)
            try:
                replica = self.slots.current[name]
                replica.terminate(timeout=60)
                fresh = self.slots.restart(name)
                wait_for(lambda r=fresh: r.get("/readyz")[0] == 200 or not r.alive(), 120, f"{name} ready")
            finally:
                self.slots.release(name)

    def _zk_stop(self, fault: Fault, rng: random.Random) -> None:
        myid = rng.randint(1, 3)
        fault.target = f"zk{myid}"
        self.ensemble.stop_server(myid)
        time.sleep(rng.uniform(3, 10))
        self.ensemble.start_server(myid)

    def _zk_pause(self, fault: Fault, rng: random.Random) -> None:
        myid = rng.randint(1, 3)
        fault.target = f"zk{myid}"
        self.ensemble.pause_server(myid)
        try:
            time.sleep(rng.uniform(2, 8))
        finally:
            self.ensemble.resume_server(myid)
        self.ensemble.wait_serving(myid)

    def _zk_restart(self, fault: Fault, rng: random.Random) -> None:
        myid = rng.randint(1, 3)
        fault.target = f"zk{myid}"
        self.ensemble.stop_server(myid)
        self.ensemble.start_server(myid)

    def _quorum_loss(self, fault: Fault, rng: random.Random) -> None:
        ids = sorted(rng.sample([1, 2, 3], 2))
        fault.target = "+".join(f"zk{i}" for i in ids)
        for myid in ids:
            self.ensemble.stop_server(myid)
        time.sleep(rng.uniform(2, 6))
        for myid in ids:
            self.ensemble.start_server(myid, wait=False)
        for myid in ids:
            self.ensemble.wait_serving(myid)

    # -- the API server -------------------------------------------------------------------------

    def _apiserver_restart(self, fault: Fault, rng: random.Random) -> None:
        fault.target = "kube-apiserver"
        self.cluster.restart_apiserver()

    # -- znodes -------------------------------------------------------------------------------

    def _ours(self) -> list[tuple[str, bytes]]:
        """(path, data) of every registration of ours now."""
        out = []
        for base in self.paths:
            for name in self.zk.get_children(base):
                try:
                    data = self.zk.get(f"{base}/{name}")[0]
                except NoNodeError:
                    continue
                try:
                    if read_any(name, data)[1].owner == self.owner:
                        out.append((f"{base}/{name}", data))
                except ValueError:
                    continue
        return out

    def _znode_delete(self, fault: Fault, rng: random.Random) -> None:
        ours = self._ours()
        chosen = rng.sample(ours, min(len(ours), rng.randint(1, 3)))
        fault.target = ",".join(p.rsplit("/", 2)[1] + "/" + p.rsplit("/", 1)[1][:8] for p, _ in chosen)
        for path, _ in chosen:
            with contextlib.suppress(NoNodeError):
                self.zk.delete(path)

    def _znode_corrupt(self, fault: Fault, rng: random.Random) -> None:
        """Rewrites one registration with a wrong address and port, keeping its owner id: it is
        still ours, so the operator must find it (at its resync) and write it right again."""
        ours = self._ours()
        if not ours:
            fault.target = "none"
            return
        path, data = rng.choice(ours)
        fault.target = path.rsplit("/", 2)[1] + "/" + path.rsplit("/", 1)[1][:8]
        body = json.loads(data)
        body["address"], body["port"] = "203.0.113.66", 6666
        with contextlib.suppress(NoNodeError):
            self.zk.set(path, json.dumps(body).encode())

    def _foreign(self, fault: Fault, rng: random.Random) -> None:
        path = rng.choice(self.paths)
        if self.foreign.members and rng.random() < 0.4:
            removed = self.foreign.remove(rng)
            fault.target = f"-{removed}"
        else:
            fault.target = f"+{self.foreign.add(path)}"

