"""The controller: keeps each service path in ZooKeeper equal to what Kubernetes says it should be.

One reconcile of a path is four steps, as in external-dns's controller: what is desired (from the
inventory), what is there (from the membership mirror), `plan.calculate`, and `Writer.apply`. It
runs on its own thread, woken by the inventory (a pod, ReplicaSet, Deployment or registry
changed), by the membership (a znode changed), by the election (leadership gained), and by a
periodic full resync that repairs whatever a missed event or an out-of-band change broke. Every
replica keeps its mirror warm; only the leader plans and writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from zkregistry import formats, metrics
from zkregistry.election import Election
from zkregistry.formats import Codec
from zkregistry.inventory import Inventory
from zkregistry.membership import Membership
from zkregistry.model import Instance, Key
from zkregistry.plan import Create, Op, Wanted, calculate, is_ours
from zkregistry.writer import Writer

log = logging.getLogger(__name__)

ATTEMPTS = 3  # plans per wake-up for a path whose writes were refused as stale


class Controller:
    def __init__(
        self,
        client: KazooClient,
        inventory: Inventory,
        membership: Membership,
        writer: Writer,
        election: Election,
        owner: str,
        paused: threading.Event,
        parent_acl: list | None = None,
        resync_seconds: float = 30.0,
        on_reconciled: Callable[[Iterable[Key]], None] = lambda keys: None,
    ) -> None:
        self.client = client
        self.inventory = inventory
        self.membership = membership
        self.writer = writer
        self.election = election
        self.owner = owner
        self.resync_seconds = resync_seconds
        self.on_reconciled = on_reconciled
        self.parent_acl = parent_acl
        self.paused = paused  # set during a graceful handover: never write again
        self._dirty: set[str] = set()
        self._wake = threading.Condition()
        self._paths: dict[Key, str] = {}  # the last path of each registry, to clean up after it
        self._codecs: dict[str, Codec] = {}
        self._encoded: dict[str, tuple[str, dict[str, tuple[Instance, Wanted]]]] = {}  # path -> (format, cache)
        self._ensured: set[tuple[int, str]] = set()  # (session, path) whose parents exist
        self._full = True
        self._refresh = True

    # -- wake-ups (any thread) --------------------------------------------------------------

    def registries_changed(self, keys: Iterable[Key]) -> None:
        paths = set()
        for key in keys:
            registry = self.inventory.registry(key)
            if registry is not None:
                paths.add(registry.service_path)
            last = self._paths.get(key)  # read on kopf's thread, so no check-then-get
            if last is not None:
                paths.add(last)
        self._mark(paths)

    def path_changed(self, path: str) -> None:
        self._mark({path})

    def resync(self, refresh: bool = True) -> None:
        """Plan every path at the next wake-up; with `refresh`, read every path afresh first.

        A replica that has just been elected plans against its warm mirror at once (a stale
        entry only makes one transaction fail and that path be read again), which is what makes
        takeover fast; the periodic resync and a new session read everything.
        """
        with self._wake:
            self._full = True
            self._refresh = self._refresh or refresh
            self._wake.notify()

    def _mark(self, paths: set[str]) -> None:
        if paths:
            with self._wake:
                self._dirty |= paths
                self._wake.notify()

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.inventory.synced.wait()
        next_resync = time.monotonic() + self.resync_seconds
        while not stop.is_set():
            with self._wake:
                timeout = max(0.0, next_resync - time.monotonic())
                if not self._dirty and not self._full:
                    self._wake.wait(timeout)
                periodic = time.monotonic() >= next_resync
                full, refresh = self._full or periodic, self._refresh or periodic
                paths, self._dirty, self._full, self._refresh = self._dirty, set(), False, False
            if stop.is_set():
                break
            if full:
                metrics.RESYNCS.inc()
                next_resync = time.monotonic() + self.resync_seconds
                paths |= self._all_paths()
            if refresh:
                try:
                    self.membership.refresh_all()
                except KazooException as error:  # the reconnect refreshes again
                    log.warning("resync could not read ZooKeeper: %s", type(error).__name__)
            for path in sorted(paths):
                try:
                    self.reconcile(path)
                except KazooException as error:  # ZooKeeper unreachable: the reconnect resyncs
                    log.warning("reconcile of %s postponed: %s", path, type(error).__name__)
                    self._mark({path})
                    stop.wait(1.0)
                except Exception:
                    metrics.RECONCILE_ERRORS.inc()
                    log.exception("reconcile of %s failed; retrying at the next wake-up", path)
                    self._mark({path})
                    stop.wait(1.0)

    def _all_paths(self) -> set[str]:
        return {r.service_path for r in self.inventory.registries()} | set(self._paths.values())

    def reconcile(self, path: str) -> None:
        """Make `path` hold exactly the desired registrations, if this replica may write."""
        registry = self.inventory.owner_of_path(path)
        claimants = [r for r in self.inventory.registries() if r.service_path == path]
        for r in claimants:
            self._paths[r.key] = path
        if registry is not None:
            self._codecs[path] = formats.codec(registry.format)
        codec = self._codecs.get(path)
        if codec is None:
            return
        self.membership.watch(path, codec)
        if not self.election.writable or self.paused.is_set():
            return  # a standby keeps its mirror warm and plans nothing: the leader's CPU is scarce

        instances = self.inventory.desired(registry)[0] if registry is not None else {}
        self._write(path, self._encode(path, codec, instances))
        if registry is None and not any(is_ours(n, self.owner) for n in self.membership.snapshot(path).values()):
            self._forget(path)
        self.on_reconciled(r.key for r in claimants)

    def _write(self, path: str, desired: dict[str, Wanted]) -> None:
        session = self.client.client_id[0] if self.client.client_id else 0
        if (session, path) not in self._ensured and desired:
            self.client.ensure_path(path, acl=self.parent_acl)
            self._ensured.add((session, path))
        for _ in range(ATTEMPTS):
            plan = calculate(desired, self.membership.snapshot(path), self.owner, session)
            if plan.conflicts:
                log.warning("%s: %d znodes held by another writer are left alone", path, len(plan.conflicts))
            if not plan:
                return
            fence = self.election.node
            if fence is None or not self.election.writable or self.paused.is_set():
                return
            outcome = self.writer.apply(path, plan.ops, fence)
            metrics.observe_write(outcome)
            if not outcome.failed:
                self._observe_registered(plan.ops)
                return
            # The path itself may be gone: Curator creates service paths as container znodes,
            # which ZooKeeper deletes once they are empty.
            self._ensured.discard((session, path))
            if desired:
                self.client.ensure_path(path, acl=self.parent_acl)
                self._ensured.add((session, path))
            self.membership.refresh(path)

    def _observe_registered(self, ops: Iterable[Op]) -> None:
        now, since = time.monotonic(), self.inventory.serving_since
        for op in ops:
            seen = since.get(op.uid) if isinstance(op, Create) else None
            if seen is not None:
                metrics.READY_TO_REGISTERED.observe(now - seen)

    def _encode(self, path: str, codec: Codec, instances: dict[str, Instance]) -> dict[str, Wanted]:
        """Encoded registrations, re-encoding only instances that changed since the last time."""
        format_, cache = self._encoded.get(path, (codec.name, {}))
        if format_ != codec.name:
            cache = {}
        fresh: dict[str, tuple[Instance, Wanted]] = {}
        for uid, instance in instances.items():
            hit = cache.get(uid)
            if hit is None or hit[0] != instance:
                hit = (
                    instance,
                    Wanted(codec.node_name(instance), codec.encode(instance, self.owner), codec.sequential, uid),
                )
            fresh[uid] = hit
        self._encoded[path] = (codec.name, fresh)
        return {uid: wanted for uid, (_, wanted) in fresh.items()}

    def _forget(self, path: str) -> None:
        self.membership.unwatch(path)
        self._codecs.pop(path, None)
        self._encoded.pop(path, None)
        for key in [k for k, p in self._paths.items() if p == path]:
            del self._paths[key]

    # -- graceful handover ------------------------------------------------------------------

    def own_registrations(self) -> set[str]:
        """The znodes of ours that this session owns, as the mirror knows them (full paths)."""
        session = self.client.client_id[0] if self.client.client_id else 0
        return {
            f"{path}/{node.name}"
            for path in self.membership.paths()
            for node in self.membership.snapshot(path).values()
            if node.session == session and is_ours(node, self.owner)
        }

    def still_owned(self, znodes: Iterable[str]) -> set[str]:
        """Those of `znodes` that this session still owns, read from ZooKeeper (pipelined)."""
        session = self.client.client_id[0] if self.client.client_id else 0
        reads = [(z, self.client.exists_async(z)) for z in znodes]
        return {z for z, result in reads if (stat := result.get()) is not None and stat.ephemeralOwner == session}
