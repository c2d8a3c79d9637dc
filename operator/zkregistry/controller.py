"""The controller: keeps each service path in ZooKeeper equal to what Kubernetes says it should be.

A reconcile is four steps, as in external-dns's controller: what is desired (from the
inventory), what is there (from the membership mirror), the plan, and `Writer.apply`. What makes
it cheap is its unit. A pod event marks one pod of one path, and the controller plans that pod
alone against the mirror, so its cost does not grow with the size of the registry; a change of a
Deployment or a ReplicaSet marks the pods it leads to, so one Deployment of 100 pods costs 100
pods' plans, not the registry's. A whole path is planned only when something that affects every
pod of it changed (a registry's spec, admission, a node's zone), at takeover, and at the periodic
resync that repairs whatever a missed event or an out-of-band change broke. The registries of
every path planned in a turn, whole or pod by pod, are reported after it (`on_reconciled`).

The periodic resync reads and plans one path per turn, and pods are planned in the turns
between: at 10,000 registrations a resync takes over a second in all, which no pod waits for.

Everything runs on the controller's thread, one turn at a time: the election's `step` (every
turn, so that a lost watch can never leave the election headless), then, on the leader only,
the plans of every marked path, sent to ZooKeeper pipelined together. A standby keeps its mirror
warm and plans nothing. Every ZooKeeper call of a turn is bounded, and a path whose writes fail
is retried with backoff without delaying the others.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from kazoo.exceptions import NoAuthError, NodeExistsError, NoNodeError

from zkregistry import admission, formats, metrics, zk
from zkregistry.admission import Claim, Decision, PathState
from zkregistry.claims import Claims
from zkregistry.election import Election
from zkregistry.formats import Codec
from zkregistry.inventory import Inventory
from zkregistry.membership import Membership
from zkregistry.model import Instance, Key, Registry
from zkregistry.plan import Create, Op, Replace, Wanted, calculate, for_instance, is_ours
from zkregistry.writer import Writer

log = logging.getLogger(__name__)

TICK = 1.0  # longest sleep of the loop: the election is checked at least this often
ROUNDS = 3  # plans per turn: the plan, a retry after a stale mirror, and what a round left
#: Seconds between a takeover's new registration and the deletion of the one it supersedes: long
#: enough for a client that reads each new child before showing it (Curator's ServiceCache) to have
#: read it, so that no client ever sees the pod missing.
SETTLE = 1.0
BACKOFF = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before a failed path is tried again
#: Registrations of ours whose version is checked per turn, in a round begun at each resync (a
#: turn comes at least every TICK), read a hundred to a request (`Membership.verify`): 10,000
#: within 10 s, never replies of thousands of znodes ahead of our transactions.
VERIFY_PER_TURN = 1000
#: Paths that the periodic resync reads afresh and plans whole per turn: one, so that a resync of
#: thousands of registrations never holds up a pod's turn by more than one path's plan.
RESYNC_PATHS_PER_TURN = 1


class Controller:
    def __init__(
        self,
        client,
        inventory: Inventory,
        membership: Membership,
        writer: Writer,
        election: Election,
        owner: str,
        paused: threading.Event,
        parent_acl: list | None = None,
        resync_seconds: float = 30.0,
        on_reconciled: Callable[[Iterable[Key]], None] = lambda keys: None,
        timeout: float = 10.0,
        claims: Claims | None = None,
        service_acl: Callable[[tuple[str, ...]], list | None] = lambda principals: None,
        default_prefixes: tuple[str, ...] = ("/services",),
        release_after: float = 600.0,
    ) -> None:
        """`parent_acl` is the ACL of the ancestors of service paths that we create;
        `service_acl(principals)` that of a service path whose external `principals` may add
        members. `claims` records which namespace owns which path (admission.py); a claim nobody
        of its namespace wants is released after `release_after` seconds."""
        self.client = client
        self.inventory = inventory
        self.membership = membership
        self.writer = writer
        self.election = election
        self.owner = owner
        self.resync_seconds = resync_seconds
        self.on_reconciled = on_reconciled
        self.parent_acl = parent_acl
        self.timeout = timeout
        self.paused = paused  # set during a graceful handover: never write again
        #: Held while a plan is written; the handover takes it to be sure no write is in flight.
        self.writing = threading.Lock()
        self.last_turn = time.monotonic()  # for /healthz: the loop is alive
        self._wake = threading.Condition()
        self._whole: set[str] = set()  # paths to plan whole
        self._pods: dict[str, set[str]] = {}  # path -> pods (uid) to plan
        self._everything = True  # plan every path (start, takeover, resync)
        self._refresh = True  # read every path afresh first (start, reconnect)
        self._sweeping: list[str] = []  # paths the periodic resync has yet to read and plan
        self._swept = False  # a periodic resync began: admission and the version check restart
        self._failures: dict[str, tuple[int, float]] = {}  # path -> (failures, not before)
        self._deferred: set[str] = set()  # paths backing off, planned whole when their time comes
        self._settling: list[tuple[float, str, set[str]]] = []  # (when, path, pods): breaks to plan
        self._paths: dict[Key, str] = {}  # the last path of each registry, to clean up after it
        self._encoded: dict[str, tuple[str, dict[str, tuple[Instance, Wanted]]]] = {}  # path -> (format, cache)
        self._ensured: set[tuple[int, str]] = set()  # (session, path) whose parents exist
        self._term = 0  # the election's term this controller last took over in
        self._written_term = 0  # the term whose takeover plans have all been written
        self._poked = False  # a wake-up that came while a turn was running
        self._frozen = -math.inf  # when `_freeze_long_lived` last ran: at most once per resync period
        self._freeze_due = False  # a full read or a takeover has built what is to be frozen
        self.claims = claims if claims is not None else Claims(client, "/zkregistry/default", timeout=timeout)
        self.service_acl = service_acl
        self.default_prefixes = default_prefixes
        self.release_after = release_after
        #: The latest admission decision of each registry (leader only); the reporter reads it.
        self.decisions: dict[Key, Decision] = {}
        self._owners: dict[str, Key] = {}  # path -> the admitted registry that writes it
        #: The uids of registries being deleted that have no registration left (leader only): their
        #: finalizer may go. Decided at the end of a turn, when no write of ours is in flight.
        self.cleared: frozenset[str] = frozenset()
        self._admitted_version = -1  # the inventory's admission_version of `decisions`
        self._admission_term = -1  # the election term whose claims were read

    # -- wake-ups (any thread, never blocking) -----------------------------------------------

    def registries_changed(self, keys: Iterable[Key]) -> None:
        """Registries whose every pod may be affected (their spec, admission, a node's zone):
        their paths are planned whole, on every replica mirrored."""
        paths = set()
        for key in keys:
            registry = self.inventory.registry(key)
            if registry is not None:
                paths.add(registry.service_path)
            last = self._paths.get(key)
            if last is not None:
                paths.add(last)
        if paths:
            with self._wake:
                self._whole |= paths
                self._wake.notify()

    def pods_changed(self, key: Key, uids: set[str]) -> None:
        """Pods of registry `key` changed: plan them alone, O(len(uids)). With no uids (a change
        of its Deployments that affects no pod), its path is still marked: planned for no pod, it
        is touched by the turn, so the reporter is told of the registry and shows its
        Deployments' problems, without a plan of the whole path. A standby does nothing (O(1));
        it plans every path whole when it becomes leader."""
        if not self.election.writable:
            return
        registry = self.inventory.registry(key)
        if registry is not None:
            self._mark(registry.service_path, uids)

    def path_changed(self, path: str, uids: set[str]) -> None:
        """znodes of these pods appeared or vanished under `path` (the membership's callback)."""
        if self.election.writable:
            self._mark(path, uids)

    def resync(self, refresh: bool = True) -> None:
        """Plan every path at the next turn; with `refresh`, read every path afresh first.

        A replica that has just been elected plans against its warm mirror at once (a stale
        entry only makes one transaction fail and that path be read again), which is what makes
        takeover fast; the periodic resync and a new connection read everything.
        """
        with self._wake:
            self._everything = True
            self._refresh = self._refresh or refresh
            self._wake.notify()

    def wake(self) -> None:
        with self._wake:
            self._poked = True
            self._wake.notify()

    def _mark(self, path: str, uids: set[str]) -> None:
        with self._wake:
            self._pods.setdefault(path, set()).update(uids)
            self._wake.notify()

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set() and not self.inventory.synced.wait(0.5):
            self.last_turn = time.monotonic()
        next_resync = time.monotonic() + self.resync_seconds
        while not stop.is_set():
            with self._wake:
                busy = self._whole or self._pods or self._everything or self._refresh or self._sweeping
                if not (busy or self._poked):
                    soonest = min([next_resync, *(when for when, _, _ in self._settling[:1])])
                    self._wake.wait(max(0.0, min(TICK, soonest - time.monotonic())))
                now = time.monotonic()
                if now >= next_resync:  # a path per turn (`sweep`): pods are planned in between
                    self._begin_sweep()
                    next_resync = now + self.resync_seconds
                due = {p for p in self._deferred if self._failures.get(p, (0, 0.0))[1] <= now}
                self._deferred -= due
                self._whole |= due
                while self._settling and self._settling[0][0] <= now:
                    _, path, uids = self._settling.pop(0)
                    self._pods.setdefault(path, set()).update(uids)
                everything, refresh, whole, pods = self._everything, self._refresh, self._whole, self._pods
                self._everything, self._refresh, self._whole, self._pods = False, False, set(), {}
                self._poked = False
            if stop.is_set():
                break
            self.last_turn = time.monotonic()
            try:
                self.turn(everything, refresh, whole, pods)
            except Exception:  # a bug must not end the loop: log it, then plan everything again
                metrics.RECONCILE_ERRORS.inc()
                log.exception("controller turn failed; planning every path again in 1 s")
                stop.wait(1.0)
                self.resync()

    def turn(self, everything: bool, refresh: bool, whole: set[str], pods: dict[str, set[str]]) -> None:
        """One turn: the election, then the plans of this turn's paths and pods (leader only)."""
        try:
            self.election.step()
        except zk.ERRORS as error:  # the next turn tries again
            log.warning("election step failed: %s", type(error).__name__)
        leading = self.election.writable and not self.paused.is_set()
        if leading and self.election.term != self._term:
            everything = True  # takeover: plan every path, from the warm mirror
            self._term = self.election.term
        swept, self._swept = self._swept, False
        if leading:
            try:
                whole |= self.admit(force=everything or swept)
            except zk.ERRORS as error:  # the claims could not be read or written: plan nothing now
                log.warning("admission failed: %s; retrying", type(error).__name__)
                self._admission_term = -1
                with self._wake:
                    self._everything = True
                leading = False
        if everything or swept:
            metrics.RESYNCS.inc()
        if everything:
            whole |= self._all_paths()
        sweep = self._sweeping[:RESYNC_PATHS_PER_TURN]
        del self._sweeping[:RESYNC_PATHS_PER_TURN]
        whole |= set(sweep)
        for path in whole:
            self._prepare(path)
        if self.client.connected:
            self._refresh_paths(self.membership.paths() if refresh else sweep)
        built = refresh  # this turn read every path, or took over: what it built lives on
        if leading:
            if self._written_term == self._term:  # never ahead of a takeover's transactions
                # Nobody rewrote ours by hand: a round of checks each resync, a few each turn.
                self.membership.verify(VERIFY_PER_TURN, start=refresh or swept)
            if self._written_term != self._term:  # a takeover: no collection while it writes
                built = True
                with _collector_paused():
                    self._reconcile(whole, pods)
            else:
                self._reconcile(whole, pods)
        else:  # another replica may write meanwhile: decided afresh once leading again
            self.cleared = frozenset()
        if built:  # frozen at a later, lighter turn
            self._freeze_due = True
        elif self._freeze_due and time.monotonic() - self._frozen >= self.resync_seconds:
            self._freeze_due, self._frozen = False, time.monotonic()
            _freeze_long_lived()

    def _begin_sweep(self) -> None:
        """A periodic resync: every path is to be read afresh and planned whole, a path per turn.
        The paths of an unfinished sweep keep their place, so that a sweep longer than the resync
        period never leaves the last paths out; a takeover or failed admission meanwhile does not
        end it either."""
        pending = set(self._sweeping)
        self._sweeping += sorted(self._all_paths() - pending)
        self._swept = True

    def _refresh_paths(self, paths: Iterable[str]) -> None:
        """Reads `paths` afresh (blocking, each bounded), stopping at a lost connection."""
        for path in paths:
            try:
                self.membership.refresh(path)
            except zk.LOST as error:  # the connection: do not wait on every path in turn
                log.warning("could not read %s: %s", path, type(error).__name__)
                break
            except zk.ERRORS as error:  # this path only (NoAuth, say): the next resync retries
                log.warning("could not read %s: %s", path, type(error).__name__)
                continue
            self._failures.pop(path, None)  # read afresh: worth trying at once again

    def admit(self, force: bool = False) -> set[str]:
        """Decides which registry writes which path (admission.decide), recording new claims and
        releasing unwanted ones in ZooKeeper; returns the paths whose writer changed. Leader
        only. Recomputed when registries, policies or namespaces changed, at takeover and at
        each resync (`force`). Raises zk.ERRORS when the claims cannot be read or written: then
        nothing may be planned, since a path without a known writer would be emptied."""
        if self._admission_term != self.election.term:
            self.claims.load()
            self._admission_term = self.election.term
            force = True
        version = self.inventory.admission_version
        if not force and version == self._admitted_version:
            return set()
        fence = self.election.node
        if fence is None:
            return set()
        registries = self.inventory.registries()
        if force:
            wanted = {(r.namespace, r.service_path) for r in registries if not r.deleting}
            self.claims.release_unwanted(wanted, fence, self.release_after)
        for _ in range(3):
            decisions = admission.decide(
                registries,
                self.inventory.policies(),
                self.claims.claims,
                self.inventory.namespace_labels(),
                self._path_states(registries),
                self.default_prefixes,
            )
            fresh = [d for d in decisions.values() if d.admitted and d.path not in self.claims.claims]
            if all(self.claims.claim(Claim(d.path, *d.registry), fence) for d in fresh):
                break
        else:
            raise zk.ERRORS[0]("claims kept changing while being written")
        self._admitted_version = version
        owners = admission.owners(decisions)
        changed = {p for p in owners.keys() | self._owners.keys() if owners.get(p) != self._owners.get(p)}
        moved = {k for k, d in decisions.items() if self.decisions.get(k) != d}
        moved |= self.decisions.keys() - decisions.keys()
        retouched = changed | {d.path for k, d in decisions.items() if self.decisions.get(k) != d}
        self._ensured = {(session, p) for session, p in self._ensured if p not in retouched}  # ACLs may differ
        self.decisions, self._owners = decisions, owners
        for path in changed:
            self._prepare(path)
        for path in retouched & owners.keys():  # a policy's principals changed: correct the ACL now
            decision = decisions[owners[path]]
            try:
                self._correct_acl(path, self.service_acl(decision.principals))
            except NoNodeError:
                pass  # created with the right ACL at its first registration
            except zk.LOST:
                raise
            except zk.ERRORS as error:
                log.warning("could not set the ACL of %s: %s", path, type(error).__name__)
        if moved:
            self.on_reconciled(moved)
        return changed

    def _path_states(self, registries: Iterable) -> dict[str, PathState]:
        """What is under each unclaimed path that a registry asks for, read afresh: a new claim
        must never be decided on a mirror that has not listed the path yet."""
        states: dict[str, PathState] = {}
        for path in {r.service_path for r in registries} - self.claims.claims.keys():
            self.membership.watch(path)
            try:
                self.membership.refresh(path)
            except zk.LOST:
                raise
            except zk.ERRORS as error:  # unreadable (NoAuth): not ours to join
                log.warning("could not read %s: %s", path, type(error).__name__)
                states[path] = PathState(external=True)
                continue
            nodes = self.membership.snapshot(path).values()
            ours = [n.member for n in nodes if is_ours(n, self.owner)]
            states[path] = PathState(
                frozenset(m.namespace for m in ours if m is not None and m.namespace),
                any(not is_ours(n, self.owner) for n in nodes),
            )
        return states

    def _ensure(self, path: str) -> None:
        """Creates the service path (and its ancestors) with the ACL its admission asks for, and
        corrects the ACL of a path that exists with another one (a policy changed, or it was made
        by an older version). Raises zk.ERRORS."""
        key = self._owners.get(path)
        decision = self.decisions.get(key) if key is not None else None
        acl = self.service_acl(decision.principals if decision is not None else ())
        parent = path.rsplit("/", 1)[0]
        if parent:
            zk.wait(self.client.ensure_path_async(parent, acl=self.parent_acl), self.timeout)
        try:
            zk.wait(self.client.create_async(path, acl=acl), self.timeout)
            return
        except NodeExistsError:
            pass
        self._correct_acl(path, acl)

    def _correct_acl(self, path: str, acl: list | None) -> None:
        """Sets the ACL of the existing service `path` to `acl` if it differs; raises NoAuthError if
        it is not ours to change, and zk.ERRORS."""
        if acl is None:
            return
        current, stat = zk.wait(self.client.get_acls_async(path), self.timeout)
        if sorted(map(repr, current)) != sorted(map(repr, acl)):
            try:
                zk.wait(self.client.set_acls_async(path, acl, stat.aversion), self.timeout)
                log.info("%s: ACL set to %s", path, acl)
            except NoAuthError:  # someone else controls the path: write nothing under it
                log.warning("%s exists with an ACL that is not ours to change; not writing under it", path)
                raise

    def _all_paths(self) -> set[str]:
        return {r.service_path for r in self.inventory.registries()} | set(self._paths.values())

    def _prepare(self, path: str) -> None:
        """Remember which registries claim `path`, and mirror it (every replica)."""
        for registry in self.inventory.registries():
            if registry.service_path == path:
                self._paths[registry.key] = path
        self.membership.watch(path)

    # -- planning and writing (leader only) ----------------------------------------------------

    def _reconcile(self, whole: set[str], pods: dict[str, set[str]]) -> None:
        # Seen deleting before this turn plans anything: every plan from here on creates nothing
        # for them, and the plans of earlier turns are all written.
        deleting = [r for r in self.inventory.registries() if r.deleting]
        now = time.monotonic()
        plans: dict[str, list[Op]] = {}
        for path in sorted(whole | pods.keys()):
            if self._failures.get(path, (0, 0.0))[1] > now:  # backing off: plan it whole later
                self._deferred.add(path)
                continue
            try:
                plans[path] = self._plan_path(path) if path in whole else self._plan_pods(path, pods[path])
            except Exception:
                metrics.RECONCILE_ERRORS.inc()
                log.exception("planning %s failed; retrying with backoff", path)
                self._failed(path)
        touched = set(plans)
        for _ in range(ROUNDS):
            plans = {path: ops for path, ops in plans.items() if ops}
            if not plans:
                break
            plans = self._write(plans)
        self.cleared = frozenset(r.uid for r in deleting if self._is_cleared(r))
        self._written_term = self._term  # before the wake-up below: the reporter may write now
        self.on_reconciled(key for key, path in self._paths.items() if path in touched)

    def _is_cleared(self, registry: Registry) -> bool:
        """Whether none of the registrations that the deleted `registry` wrote is left under its
        path: ours of its namespace, but for those that another registry writing the path now
        wants. Read afresh before saying so: a transaction whose reply was lost may have
        committed, and a listing is answered after every earlier request of ours."""
        path = registry.service_path
        if path in self._failures or path in self._deferred or self._left_by(registry):
            return False
        try:
            self.membership.refresh(path)
        except zk.ERRORS:
            return False
        return not self._left_by(registry)

    def _left_by(self, registry: Registry) -> bool:
        path = registry.service_path
        key = self._owners.get(path)
        writer = self.inventory.registry(key) if key is not None and key != registry.key else None
        kept = self.inventory.desired(writer)[0].keys() if writer is not None else set()
        return bool(
            self.membership.count(
                path,
                lambda n: is_ours(n, self.owner)
                and n.member.namespace == registry.namespace
                and n.member.uid not in kept,
            )
        )

    def _write(self, plans: dict[str, list[Op]]) -> dict[str, list[Op]]:
        """Applies `plans`; returns the plans of the next round (a path planned again after a stale
        mirror refused it). Creates schedule a plan of their pods `SETTLE` seconds later, which
        deletes whatever registrations they superseded."""
        session = self.client.client_id[0] if self.client.client_id else 0
        for path, ops in list(plans.items()):
            if (session, path) in self._ensured or not any(isinstance(op, Create | Replace) for op in ops):
                continue
            try:
                self._ensure(path)
                self._ensured.add((session, path))
            except zk.ERRORS as error:  # this path backs off; the others go on
                log.warning("could not create the service path %s: %s", path, type(error).__name__)
                self._failed(path)
                self._deferred.add(path)
                del plans[path]
        if not plans:
            return {}
        # Held until the mirror knows what the write did (the refresh after a failure included):
        # a handover that took it may stop reading new children.
        with self.writing:
            fence = self.election.node
            if fence is None or not self.election.writable or self.paused.is_set():
                return {}
            outcomes = self.writer.apply(plans, fence)
            following: dict[str, list[Op]] = {}
            fenced_out = False
            for path, outcome in outcomes.items():
                metrics.observe_write(outcome)
                self._observe_registered(outcome.created)
                if outcome.fence_gone:
                    fenced_out = True
                    continue
                if outcome.failed:
                    # The path itself may be gone: Curator creates service paths as container
                    # znodes, which ZooKeeper deletes once they are empty.
                    self._ensured.discard((session, path))
                    self._failed(path)
                    first = self._failures[path][0] == 1
                    try:  # a stale mirror, most likely: list again; after that, read every child
                        self.membership.refresh(path, reread=not first)
                        if first:  # plan again at once
                            following[path] = self._plan_path(path)
                            continue
                    except zk.ERRORS:
                        pass
                    self._deferred.add(path)
                    continue
                self._failures.pop(path, None)
                # The break of a takeover: the pods now registered twice, once the new znode settled.
                twice = {uid for op in outcome.created if (uid := op.uid) and self._ours(path, uid) > 1}
                if twice:
                    with self._wake:
                        self._settling.append((time.monotonic() + SETTLE, path, twice))
        if fenced_out:  # our election znode is gone: leadership ends, and no further round
            self.election.fence_lost(fence)
            return {}
        return following

    def _ours(self, path: str, uid: str) -> int:
        return sum(1 for n in self.membership.nodes_of(path, uid) if is_ours(n, self.owner))

    def _failed(self, path: str) -> None:
        failures = self._failures.get(path, (0, 0.0))[0] + 1
        delay = BACKOFF[min(failures - 1, len(BACKOFF) - 1)]
        self._failures[path] = (failures, time.monotonic() + delay)
        if delay:
            metrics.RECONCILE_ERRORS.inc()

    def _codec(self, path: str):
        key = self._owners.get(path)
        registry = self.inventory.registry(key) if key is not None else None
        return registry, formats.codec(registry.format) if registry is not None else None

    def _plan_path(self, path: str) -> list[Op]:
        """The whole path: O(registrations), for takeover, resync and registry changes."""
        registry, codec = self._codec(path)
        instances = self.inventory.desired(registry)[0] if registry is not None else {}
        desired = self._encode(path, codec, instances) if codec is not None else {}
        session = self.client.client_id[0] if self.client.client_id else 0
        plan = calculate(desired, self.membership.snapshot(path), self.owner, session, time.monotonic() - SETTLE)
        if plan.conflicts:
            log.warning("%s: %d znodes held by another writer are left alone", path, len(plan.conflicts))
        if registry is None and not plan.ops and not self.membership.count(path, lambda n: is_ours(n, self.owner)):
            self._forget(path)
        return plan.ops

    def _plan_pods(self, path: str, uids: Iterable[str]) -> list[Op]:
        """These pods alone: O(len(uids)), whatever the size of the path."""
        registry, codec = self._codec(path)
        session = self.client.client_id[0] if self.client.client_id else 0
        taken, settled = _Names(self.membership, path), time.monotonic() - SETTLE
        ops: list[Op] = []
        for uid in uids:
            instance = self.inventory.instance(registry, uid) if registry is not None else None
            want = self._encode_one(path, codec, uid, instance) if codec is not None else None
            ours = [n for n in self.membership.nodes_of(path, uid) if is_ours(n, self.owner)]
            more, conflict = for_instance(uid, want, ours, taken, session, settled)
            if conflict is not None:
                log.warning("%s: znode %s is held by another writer and left alone", path, conflict)
            ops += more
        return ops

    def _observe_registered(self, creates: Iterable[Create]) -> None:
        now, since = time.monotonic(), self.inventory.serving_since
        for op in creates:
            seen = since.get(op.uid)
            if seen is not None:
                metrics.READY_TO_REGISTERED.observe(now - seen)

    def _encode(self, path: str, codec: Codec, instances: dict[str, Instance]) -> dict[str, Wanted]:
        """Encoded registrations of a whole path, re-encoding only instances that changed."""
        format_, cache = self._encoded.get(path, (codec.name, {}))
        if format_ != codec.name:
            cache = {}
        fresh = {uid: _encoded(cache.get(uid), codec, instance, self.owner) for uid, instance in instances.items()}
        self._encoded[path] = (codec.name, fresh)
        return {uid: wanted for uid, (_, wanted) in fresh.items()}

    def _encode_one(self, path: str, codec: Codec, uid: str, instance: Instance | None) -> Wanted | None:
        """One pod's encoded registration, through the same cache as `_encode`."""
        format_, cache = self._encoded.get(path, (codec.name, {}))
        if format_ != codec.name:
            cache = {}
        wanted = None
        if instance is None:
            cache.pop(uid, None)
        else:
            cache[uid] = _encoded(cache.get(uid), codec, instance, self.owner)
            wanted = cache[uid][1]
        self._encoded[path] = (codec.name, cache)
        return wanted

    def _forget(self, path: str) -> None:
        self.membership.unwatch(path)
        self._encoded.pop(path, None)
        self._failures.pop(path, None)
        for key in [k for k, p in self._paths.items() if p == path]:
            del self._paths[key]

    def planned(self, registry: Registry) -> int | None:
        """How many registrations the last plans of `registry`'s path want, if `registry` writes
        that path and it has been planned: kept pod by pod as pods are planned, so O(1). For the
        reporter's readyPods, which would otherwise recompute a whole registry per report."""
        if self._owners.get(registry.service_path) != registry.key:
            return None
        encoded = self._encoded.get(registry.service_path)
        if encoded is None or encoded[0] != registry.format:  # its format changed: planned whole soon
            return None
        return len(encoded[1])

    def caught_up(self) -> bool:
        """Whether this leader has written the plans of its takeover: until then its status
        reports would only compete with them for the interpreter, and show a partial picture."""
        return self.election.writable and self._written_term == self.election.term

    # -- graceful handover ------------------------------------------------------------------

    def owned(self) -> int:
        """How many znodes of ours this session still owns, as the mirror knows them. No I/O: the
        mirror learns through its children watches when a successor has taken them over."""
        session = self.client.client_id[0] if self.client.client_id else 0
        return sum(
            self.membership.count(path, lambda n: n.session == session and is_ours(n, self.owner))
            for path in self.membership.paths()
        )

    def awaiting_successor(self) -> int:
        """Handing over: how many of the registrations this session holds have no successor's
        that clients have had `SETTLE` seconds to read (`Membership.awaiting_successor`). Once
        none has, closing the session is the successor's break: the same deletions, sooner."""
        session = self.client.client_id[0] if self.client.client_id else 0
        return self.membership.awaiting_successor(session, self.owner, time.monotonic() - SETTLE)

    def forget_disowned(self, deadline: float) -> None:
        """Handing over: drop from the count of `owned` what ZooKeeper says is no longer this
        session's (`Membership.forget_disowned`), waiting until `deadline` at the latest."""
        session = self.client.client_id[0] if self.client.client_id else 0
        self.membership.forget_disowned(session, self.owner, deadline)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: a takeover makes tens of thousands of records (none in
    a reference cycle), and each batch of them would start a collection that walks every object
    of the process, with the interpreter held: 0.1 to 0.2 s of a 10,000-pod takeover, measured
    with `benchmarks.handover --crash`. Bounded by the takeover turn; collection resumes after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _freeze_long_lived() -> None:
    """Moves every live object into the cyclic collector's permanent generation (`gc.freeze`),
    after a turn that read every path or took over, at the first turn after it that does neither,
    so that the collection below never delays a takeover's writes (and at most once per resync
    period, since a flapping connection reads every path again and again): the
    inventory, the mirror and the encoded registrations it built live until replaced, and each
    later full collection would walk them all with the interpreter held (150 to 170 CPU us per
    pod transition at 100,000 pods, `benchmarks.scaling`). Frozen objects are still freed when
    their last reference goes, but a reference cycle is freed only by a collection: so what was
    frozen before is given back to the collector and collected first (one full collection), and
    cycles that died since the last freeze, such as the failed requests of a lost connection,
    are freed instead of frozen for good."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class _Names:
    """The names under a path, as the mirror knows them, for `plan.for_instance`."""

    def __init__(self, membership: Membership, path: str) -> None:
        self.membership, self.path = membership, path

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.membership.has(self.path, name)


def _encoded(
    hit: tuple[Instance, Wanted] | None, codec: Codec, instance: Instance, owner: str
) -> tuple[Instance, Wanted]:
    if hit is not None and hit[0] == instance:
        return hit
    data, member = codec.encode(instance, owner), codec.member(instance, owner)
    return instance, Wanted(codec.node_name(instance), data, codec.sequential, instance.id, member)
