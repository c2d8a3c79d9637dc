"""The reporter: tells Kubernetes what is in ZooKeeper. Leader only.

On its own thread, so that a slow API server never delays a ZooKeeper write, it keeps each
ServiceRegistry's status equal to `status.compute` of what the membership mirror shows, manages
the finalizer on our own ServiceRegistry objects, and posts Warning Events on Deployments whose
opt-in cannot be honoured. Status is patched when it differs from the object's current one (so
a new leader also repairs whatever a deposed one wrote), and at least once per `heartbeat` (the
resync period): the `Leader` condition's lastHeartbeatTime says how fresh the status is. A busy
registry is reported at most once per pace, longer the more members it shows (`pace`, up to 2 s),
since a report costs O(path) here and every write costs each replica's watch O(members).

A status write is fenced as ZooKeeper writes are: only while connected, and only after reading
that our election znode still exists. A replica cut off from ZooKeeper therefore stops writing
status at once, and two replicas never take turns in `status.leader`.

Every replica, leader or not, also watches the heartbeats (`watch_heartbeats`): a registry whose
status no leader has refreshed for `STALE_BEATS` heartbeats gets a Warning Event and shows in the
`zkregistry_status_heartbeat_age_seconds` metric, so a headless operator cannot look healthy.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping

import urllib3
from kazoo.client import KazooClient
from kubernetes.client.rest import ApiException

from zkregistry import admission, api, metrics, status, zk
from zkregistry.admission import Decision
from zkregistry.election import Election
from zkregistry.inventory import Inventory
from zkregistry.kube import Kube
from zkregistry.membership import Membership
from zkregistry.model import Key, Problem, Registry

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.5  # gather the changes of a burst into one status write (its cost is O(members))
#: A registry is reported again at the soonest this many seconds per member its status shows after
#: its last report (`MAX_PACE` at most: 2 s for the 200 shown at most; a small one is reported
#: every `SETTLE_SECONDS` that it changes, as the loop gathers changes for that long anyway).
#: A report costs this thread O(path) and each write costs the API server, and every replica's
#: watch of ServiceRegistries, O(members shown): in a burst, a large registry is reported every
#: 2 s rather than twice a second.
PACE_PER_MEMBER = 0.01
MAX_PACE = 2.0
STALE_BEATS = 3  # heartbeats missed before a status counts as having no leader behind it


class Reporter:
    def __init__(
        self,
        client: KazooClient,
        inventory: Inventory,
        membership: Membership,
        election: Election,
        kube: Kube,
        owner: str,
        paused: threading.Event,
        timeout: float = 10.0,
        heartbeat: float = 30.0,
        decisions: Callable[[], Mapping[Key, Decision]] = dict,
        cleared: Callable[[], Collection[str]] = frozenset,
        caught_up: Callable[[], bool] = lambda: True,
        planned: Callable[[Registry], int | None] = lambda registry: None,
    ) -> None:
        """`decisions()` returns the controller's latest admission decision of each registry; a
        registry without one is not reported until it has one. `cleared()` returns the uids of
        the registries being deleted whose registrations are all gone (`Controller.cleared`):
        only theirs lose the finalizer. Nothing is reported before `caught_up()`: a new leader
        writes its takeover's registrations first (`Controller.caught_up`), then tells us what
        it touched. `planned(registry)` is how many registrations the controller's plans want for
        it (`Controller.planned`), None if unknown: then the inventory counts them, O(pods)."""
        self.client = client
        self.decisions = decisions
        self.cleared = cleared
        self.caught_up = caught_up
        self.planned = planned
        self._refused: dict[Key, str] = {}  # registry -> the refusal we last posted an Event for
        self.inventory = inventory
        self.membership = membership
        self.election = election
        self.kube = kube
        self.owner = owner
        self.paused = paused
        self.timeout = timeout
        self.heartbeat = heartbeat  # seconds between status writes of a registry, at the latest
        self.stale = STALE_BEATS * heartbeat
        self._stale: set[Key] = set()  # registries whose missing heartbeat we reported
        self._started = time.monotonic()  # no alarm before a leader has had time to write
        self._dirty: set[Key] = set()
        self._all = False
        self._wake = threading.Condition()
        self._warned: dict[Key, str] = {}  # Deployment -> the message of its last Warning
        self._scopes: dict[object, set[Key]] = {}  # check -> the Deployments it found wrong
        self._leaders: dict[Key, str] = {}  # registry -> the leader we last reported
        self._paced: dict[Key, float] = {}  # registry -> when it may be reported again
        self._held: dict[Key, float] = {}  # registry changed before its pace allowed -> until

    def changed(self, keys: Iterable[Key] | None = None) -> None:
        """These registries' status may have changed (None: every registry). Never blocks on
        anything but this reporter's own condition, so kazoo's threads may call it."""
        with self._wake:
            if keys is None:
                self._all = True
            else:
                self._dirty |= set(keys)
            self._wake.notify()

    def run(self, stop: threading.Event) -> None:
        period = min(10.0, self.heartbeat / 2)
        self.inventory.synced.wait()
        while not stop.is_set():
            with self._wake:
                if not self._dirty and not self._all:
                    soonest = min(self._held.values(), default=math.inf) - time.monotonic()
                    self._wake.wait(max(0.0, min(period, soonest)))
            stop.wait(SETTLE_SECONDS)
            with self._wake:
                keys, everything, self._dirty, self._all = self._dirty, self._all, set(), False
                now = time.monotonic()
                due = [key for key, until in self._held.items() if until <= now]
                for key in due:  # held again by `report` if still too soon
                    del self._held[key]
                keys |= set(due)
            self.watch_heartbeats()
            if not self._may_write():
                continue
            if everything or not keys:  # woken by the period, not by a change: every registry
                keys = {r.key for r in self.inventory.registries()}
            failed = self.report(keys)
            if failed:
                self.changed(failed)
                stop.wait(1.0)

    def _may_write(self) -> bool:
        """Only the leader writes, only while connected, and only with its fence confirmed."""
        node = self.election.node
        if self.paused.is_set() or not self.election.writable or node is None or not self.caught_up():
            return False
        try:
            exists = zk.wait(self.client.exists_async(node), self.timeout) is not None
        except zk.ERRORS:
            return False
        if not exists:
            self.election.fence_lost(node)
        return exists and self.election.writable

    def watch_heartbeats(self) -> None:
        """Every replica: report registries whose status no leader has refreshed for `stale` s."""
        at = dt.datetime.now(dt.UTC)
        registries = list(self.inventory.registries())
        metrics.keep_registries(registry.key for registry in registries)
        for registry in registries:
            age = status.heartbeat_age(registry.status, registry.created, at)
            metrics.HEARTBEAT_AGE.labels(registry.namespace, registry.name).set(max(0.0, age))
            if age < self.stale:
                self._stale.discard(registry.key)
            elif registry.key not in self._stale and not registry.deleting and self._up() >= self.stale:
                self._stale.add(registry.key)
                self.kube.event(
                    api.KIND,
                    registry.key,
                    registry.uid,
                    "Warning",
                    "NoLeader",
                    f"no zkregistry leader has refreshed this status for {age:.0f} s "
                    f"(replica {self.election.identifier} noticed): registrations are not maintained; "
                    "check the operator's replicas and their ZooKeeper connection",
                )

    def _up(self) -> float:
        return time.monotonic() - self._started

    def report(self, keys: Iterable[Key]) -> set[Key]:
        """Writes the status of these registries; returns those that failed (to retry). Stops
        at once if this replica may no longer write."""
        failed: set[Key] = set()
        now = time.monotonic()
        for key in sorted(keys):
            registry = self.inventory.registry(key)
            if not self.election.writable or self.paused.is_set():
                return failed
            if registry is None:
                self._paced.pop(key, None)
                continue
            if self._paced.get(key, 0.0) > now:  # reported a moment ago: once its pace allows
                with self._wake:
                    self._held[key] = self._paced[key]
                continue
            try:
                self._report_registry(registry)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:  # the API server
                log.warning("status of %s/%s not written: %s", *key, getattr(error, "reason", None) or error)
                if getattr(error, "status", None) != 404:  # gone: nothing to retry
                    failed.add(key)
            except Exception:
                metrics.RECONCILE_ERRORS.inc()
                log.exception("status report of %s/%s failed; retrying", *key)
                failed.add(key)
        try:
            self._warn_orphans()
            self._report_policies()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            log.warning("warnings or policy status not written: %s", error)
        return failed

    def _report_policies(self) -> None:
        """Each RegistryPolicy's status lists the registries it admits."""
        decisions = self.decisions()
        for policy in self.inventory.policies():
            admitted = admission.admitted_by(decisions, policy.name)
            new = {"admitted": admitted, "admittedCount": len(admitted), "observedGeneration": policy.generation}
            if {k: policy.status.get(k) for k in new} != new:
                self.kube.patch_policy_status(policy.name, new)

    def _report_registry(self, registry: Registry) -> None:
        decision = self.decisions().get(registry.key)
        if decision is None:  # not decided yet: the controller tells us once it is
            return
        conflict = None if decision.admitted else decision
        nodes = self.membership.snapshot(registry.service_path)
        if conflict is None:
            problems = self.inventory.problems(registry)
            ready = self.planned(registry)
            if ready is None:
                ready = len(self.inventory.desired(registry)[0])
        else:
            ready, problems = 0, []
        self._warn(registry.key, problems, registry)

        if registry.deleting:
            # Whatever admission now says of a registry being deleted, its finalizer holds until
            # the controller has seen it deleting and finds none of its registrations left.
            if registry.uid in self.cleared() and api.FINALIZER in registry.finalizers:
                self.kube.set_finalizers(registry, [f for f in registry.finalizers if f != api.FINALIZER])
            return
        if api.FINALIZER not in registry.finalizers:
            self.kube.set_finalizers(registry, [*registry.finalizers, api.FINALIZER])
        if decision.admitted:
            self._refused.pop(registry.key, None)
        elif self._refused.get(registry.key) != decision.message:
            self._refused[registry.key] = decision.message
            self.kube.event(api.KIND, registry.key, registry.uid, "Warning", decision.reason, decision.message)

        observation = status.Observation(
            registry=registry,
            nodes=nodes,
            ready_pods=ready,
            owner=self.owner,
            leader=self.election.identifier,
            problems=problems,
            admission=decision,
        )
        previous = registry.status
        new = status.compute(observation, status.now(), previous)
        metrics.REGISTRATIONS.labels(registry.namespace, registry.name).set(status.count_ours(nodes, self.owner))
        metrics.READY_PODS.labels(registry.namespace, registry.name).set(ready)
        at = dt.datetime.now(dt.UTC)
        if (
            _without_times(new) != _without_times(previous)
            or status.heartbeat_age(previous, "", at) >= self.heartbeat - SETTLE_SECONDS
        ):
            self.kube.patch_status(registry, new)
        self._paced[registry.key] = time.monotonic() + pace(len(new.get("members") or ()))
        if self._leaders.get(registry.key) != self.election.identifier:
            was = previous.get("leader")
            if was != self.election.identifier:
                self.kube.event(
                    api.KIND,
                    registry.key,
                    registry.uid,
                    "Normal",
                    "LeaderElected",
                    f"replica {self.election.identifier} now writes this registry's members"
                    + (f" (was {was})" if was else ""),
                )
            self._leaders[registry.key] = self.election.identifier

    def _warn(self, scope: object, problems: Iterable[Problem], registry: Registry | None = None) -> None:
        """Posts one Warning per Deployment and message; `scope` groups the problems found by
        one check, so that a Deployment that was fixed is warned again if it breaks again."""
        problems = list(problems)
        current = {p.deployment for p in problems}
        for fixed in self._scopes.get(scope, set()) - current:
            self._warned.pop(fixed, None)
        self._scopes[scope] = current
        for problem in problems:
            if self._warned.get(problem.deployment) == problem.message:
                continue
            self._warned[problem.deployment] = problem.message
            deployment = self.inventory.deployment(problem.deployment)
            uid = deployment.uid if deployment else ""
            self.kube.event("Deployment", problem.deployment, uid, "Warning", problem.reason, problem.message)
            if registry is not None:
                self.kube.event(api.KIND, registry.key, registry.uid, "Warning", problem.reason, problem.message)

    def _warn_orphans(self) -> None:
        self._warn(
            "orphans",
            (
                Problem(
                    d.key,
                    "RegistryNotFound",
                    f"annotation {api.REGISTRY_ANNOTATION}={d.registry!r}: no ServiceRegistry of "
                    f"that name in namespace {d.namespace!r}; nothing is registered for this Deployment",
                )
                for d in self.inventory.orphaned_deployments()
            ),
        )


def pace(shown: int) -> float:
    """Seconds until a registry whose status shows `shown` members is reported again."""
    return min(MAX_PACE, shown * PACE_PER_MEMBER)


def _without_times(value: dict) -> dict:
    return {
        **value,
        "conditions": [
            {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastHeartbeatTime")}
            for c in value.get("conditions") or ()
        ],
    }
