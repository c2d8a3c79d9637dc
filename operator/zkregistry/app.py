"""The operator process (`zkregistry run`): wires the parts together and runs them until told to stop.

Threads: kopf with its own event loop and one reflector per kind (Pods, ReplicaSets, Deployments)
feed the inventory; the controller writes ZooKeeper; the reporter writes Kubernetes; kazoo has its
own. On SIGTERM a leader hands over gracefully: it stops writing, leaves the election so that a
successor is elected at once, and keeps its session open until the successor has registered every
pod anew and clients have had `controller.SETTLE` to read it (or `handover_timeout` passes), so
that clients watching a service never see a member disappear. Closing the session then deletes
what the successor would delete `SETTLE` after its creates: the same break, without waiting for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import threading
import time
from typing import NoReturn

import kopf
from kazoo.protocol.states import KazooState

from zkregistry import handlers, kube, logs, metrics, reads, zk
from zkregistry.claims import Claims
from zkregistry.config import Settings
from zkregistry.controller import Controller
from zkregistry.election import Election
from zkregistry.inventory import Inventory
from zkregistry.membership import Membership
from zkregistry.reflector import KINDS, Reflector
from zkregistry.reporter import Reporter
from zkregistry.writer import Writer

log = logging.getLogger("zkregistry")

CLOSE_TIMEOUT = 5.0  # seconds that closing the ZooKeeper session may take at exit
#: Seconds without progress after which a handover asks ZooKeeper who owns what it waits for.
RECHECK_AFTER = 5.0
#: Seconds between two checks, while handing over, that the successor still leads.
SUCCESSOR_CHECK = 0.5


class Operator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()  # every thread ends when it is set
        self.paused = threading.Event()  # set at the start of a handover: write nothing more
        self.client = zk.client(settings)
        self._probed: bool | None = None  # whether the ensemble answers multiRead; None: not known
        self._probing = threading.Event()  # a probe is under way
        self._probe_again = False  # a CONNECTED came while a probe was under way
        acl = zk.acl(settings)
        timeout = settings.session_timeout  # bound of every blocking ZooKeeper call
        self.inventory = Inventory(
            on_change=lambda keys: self.controller.registries_changed(keys),
            on_pods=lambda key, uids: self.controller.pods_changed(key, uids),
        )  # its default sources: kopf and the reflector of each of KINDS
        self.membership = Membership(
            self.client,
            on_change=lambda path, uids: self.controller.path_changed(path, uids),
            timeout=timeout,
            owner=settings.owner_id,
        )
        self.election = Election(
            self.client,
            settings.election_path,
            settings.identity,
            on_change=self._leadership_changed,
            acl=acl,
            timeout=timeout,
        )
        self.controller = Controller(
            self.client,
            self.inventory,
            self.membership,
            Writer(self.client, self.membership, acl=acl, timeout=timeout),
            self.election,
            owner=settings.owner_id,
            paused=self.paused,
            parent_acl=zk.ancestor_acl(settings),
            resync_seconds=settings.resync_seconds,
            on_reconciled=lambda keys: self.reporter.changed(keys),
            timeout=timeout,
            claims=Claims(self.client, settings.root_path, acl=acl, timeout=timeout),
            service_acl=lambda principals: zk.service_acl(settings, principals),
            default_prefixes=settings.path_prefixes,
            release_after=settings.claim_release_seconds,
        )
        self.kube = kube.Kube()
        self.reporter = Reporter(
            self.client,
            self.inventory,
            self.membership,
            self.election,
            self.kube,
            settings.owner_id,
            self.paused,
            timeout=timeout,
            heartbeat=settings.resync_seconds,
            decisions=lambda: self.controller.decisions,
            cleared=lambda: self.controller.cleared,
            caught_up=lambda: self.controller.caught_up(),
            planned=lambda registry: self.controller.planned(registry),
        )
        self._threads: list[threading.Thread] = []

    def _leadership_changed(self) -> None:
        # Called on kazoo's threads and the controller's: flags and wake-ups only, never blocking.
        # The controller notices leadership gained at its next turn and takes over then.
        metrics.LEADER.set(1 if self.election.writable else 0)
        metrics.ZK_CONNECTED.set(1 if self.election.connected else 0)
        self.controller.wake()
        self.reporter.changed()  # every registry: the reporter lists them on its own thread

    def _connection_changed(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            # A new session has lost its watches, an old one may have missed changes: the
            # controller reads every path again (on its thread; this one must not block).
            self.controller.resync()
            if self._probed is None:  # not known yet: ask again (once more, if a probe runs now)
                self._probe_again = True
                if not self._probing.is_set():
                    self._probing.set()
                    try:
                        threading.Thread(target=self.probe, name="probe", daemon=True).start()
                    except RuntimeError:  # no thread to be had: the next CONNECTED tries again
                        self._probing.clear()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._probing.set()  # the controller's thread probes first: no second probe meanwhile
        self.client.add_listener(self._connection_changed)
        self.client.start_async()
        self._spawn("kopf", self._run_kopf)
        for kind in KINDS:  # each thread a kind's, watched by `healthy` as kopf's is
            self._spawn(kind.name, Reflector(self.inventory, kind, self.settings.namespaces).run, self.stop)
        self._spawn("controller", self._control)
        self._spawn("reporter", self.reporter.run, self.stop)
        self._spawn("election", self._join_when_ready)
        if self.settings.http_port:
            metrics.serve(self.settings.http_port, healthy=self.healthy, ready=self.ready)

    def _spawn(self, name: str, target, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _join_when_ready(self) -> None:
        # A replica with an incomplete inventory must never lead: it would delete what it has not
        # seen yet. So it joins the election only once kopf and every reflector have listed; the
        # controller's turns then enter and re-evaluate it.
        while not self.stop.is_set() and not self.inventory.synced.wait(0.5):
            pass
        if not self.stop.is_set():
            self.join()

    def join(self) -> None:
        """Enter the election: the inventory is complete (`_join_when_ready`)."""
        self.election.join()
        log.info("joining the election as %s", self.settings.identity)

    def _control(self) -> None:
        """The controller's thread: it asks first how the mirror may read, so that its first full
        read of every path is already batched, then runs the controller's loop."""
        try:
            self.probe()
        except Exception:  # the loop must run whatever the probe did: it reads one at a time then
            log.exception("asking ZooKeeper whether it answers multiRead failed")
        self.controller.last_turn = time.monotonic()  # the probe's wait is no stalled loop
        self.controller.run(self.stop)

    def probe(self) -> None:
        """Whether the ensemble answers multiRead, asked on a session of its own
        (`reads.supported`): the mirror batches its reads only then. Without an answer it reads one
        znode at a time, and the next CONNECTED asks again."""
        try:
            while True:
                self._probe_again = False
                self._probed = reads.supported(lambda: zk.client(self.settings), self.settings.session_timeout)
                self.membership.allow_batches(bool(self._probed))
                if self._probed is not None or not self._probe_again or self.stop.is_set():
                    break  # asked again only if a CONNECTED came while this probe found no answer
        finally:
            self._probing.clear()

    def _run_kopf(self) -> None:
        asyncio.run(
            kopf.operator(
                registry=handlers.registry_for(self.inventory),
                standalone=True,
                clusterwide=not self.settings.namespaces,
                namespaces=list(self.settings.namespaces),
                stop_flag=self.stop,
            )
        )

    def healthy(self) -> bool:
        """Every worker thread alive, and the controller's loop and the election making progress:
        a replica stuck in either is restarted rather than left looking healthy."""
        now, bound = time.monotonic(), self.stall_bound
        return (
            all(t.is_alive() for t in self._threads if t.name != "election")
            and now - self.controller.last_turn < bound
            and not self.election.stalled(bound)
        )

    @property
    def stall_bound(self) -> float:
        """How long the loop may go without a turn: a few bounded ZooKeeper calls, with room."""
        return max(30.0, 6 * self.settings.session_timeout)

    def ready(self) -> bool:
        return self.inventory.synced.is_set() and self.client.connected

    def shutdown(self) -> None:
        """Graceful stop, bounded by `handover_timeout` in all: hand over leadership without a gap,
        then stop everything."""
        deadline = time.monotonic() + self.settings.handover_timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self.paused.set()
        if self.controller.writing.acquire(timeout=left()):  # no write of ours still in flight
            self.controller.writing.release()
        self.membership.names_only()  # from now on it needs only the names under each path
        was_leader = self.election.leader
        successors = self.election.others(timeout=min(left(), self.settings.session_timeout)) if was_leader else 0
        try:
            self.election.leave(timeout=min(left(), self.settings.session_timeout))
        except zk.ERRORS as error:  # ZooKeeper unreachable: the session will expire instead
            log.warning("could not leave the election: %s", type(error).__name__)
            successors = 0
        if was_leader and successors:
            log.info("handing over to the next replica (up to %.0f s)", left())
            owned = await_successor(self.controller, self.election, deadline, self.settings.session_timeout)
            if owned:
                metrics.HANDOVER_TIMEOUTS.inc()
                log.warning("handover deadline passed; %d registrations go with this session", owned)
            else:
                log.info("handover complete")
        self.stop.set()
        # Bounded: kazoo's stop joins its callback threads, and one of them may be blocked in a
        # synchronous call that a dropped connection never answers. The session ends either way.
        closer = threading.Thread(target=self._close_session, name="close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT)
        if closer.is_alive():
            log.warning("the ZooKeeper client did not stop within %.0f s; exiting anyway", CLOSE_TIMEOUT)

    def _close_session(self) -> None:
        self.client.stop()
        self.client.close()


def await_successor(controller: Controller, election: Election, deadline: float, timeout: float) -> int:
    """Handing over, after leaving the election: waits until `deadline` (monotonic) for every
    registration this session holds to be gone or superseded by the successor's
    (`Controller.awaiting_successor`). Superseded counts only while the replica handed to is still
    the first contender, read every `SUCCESSOR_CHECK` and again before returning: a third leader
    may replace a successor's znode in place, which no listing shows. Once it is not, only gone
    counts. Returns how many are still awaited: 0 if the handover is complete."""

    def first() -> str | None:
        return election.first(min(max(0.0, deadline - time.monotonic()), timeout))

    successor, asked = first(), time.monotonic()
    last, since = -1, time.monotonic()
    while True:
        owned = controller.awaiting_successor() if successor is not None else controller.owned()
        if successor is not None and (not owned or time.monotonic() - asked > SUCCESSOR_CHECK):
            asked = time.monotonic()
            if first() != successor:
                log.info("the successor left too: waiting for the next leader's deletes")
                successor = None
                continue
        if not owned or time.monotonic() >= deadline:
            return owned
        if owned != last:
            last, since = owned, time.monotonic()
        elif time.monotonic() - since > RECHECK_AFTER:
            # A successor that replaced a znode in place (its other name was taken) changed no
            # listing: ask ZooKeeper who owns what the mirror says is ours.
            controller.forget_disowned(deadline)
            since = time.monotonic()
        time.sleep(0.05)


def run(settings: Settings) -> NoReturn:
    logs.configure(settings.log_format, settings.log_level)
    kube.load_config()
    if not settings.owner_id:
        try:
            settings = dataclasses.replace(settings, owner_id=kube.default_owner_id())
        except Exception as error:  # no way to tell this cluster from another: refuse to guess
            log.error("cannot derive the owner id from the kube-system namespace (%s); set --owner-id", error)
            logging.shutdown()
            os._exit(2)
    operator = Operator(settings)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    operator.start()
    log.info(
        "zkregistry %s started (owner %s, ZooKeeper %s)",
        settings.identity,
        settings.owner_id,
        settings.connection_string,
    )
    code = 0
    while not stopping.wait(0.5):
        if not operator.healthy():
            log.error("a worker thread died; exiting so that the replica is restarted")
            code = 1
            break
    operator.shutdown()
    # Everything that matters is done (handover, session closed or abandoned). Exit now rather
    # than wait at interpreter exit for kopf's executor threads, which a dropped connection can
    # leave blocked: a replica that does not exit holds up a rolling update until it is killed.
    logging.shutdown()
    os._exit(code)
