"""The controller against a real ensemble, with an inventory filled by hand: one failing path does
not hold up the others, a pod event is planned alone, and the resync repairs what no watch sees."""

from __future__ import annotations

import dataclasses
import gc
import threading
from collections.abc import Iterator

import pytest
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from conftest import eventually
from zk.conftest import OWNER, new_client
from zk.test_election import drop_connection
from zkregistry import controller as controller_module
from zkregistry.claims import Claims
from zkregistry.controller import Controller
from zkregistry.election import Election
from zkregistry.formats import curator
from zkregistry.inventory import Inventory
from zkregistry.membership import Membership
from zkregistry.model import Deployment, Instance, Pod, Registry, ReplicaSet
from zkregistry.plan import Update
from zkregistry.writer import Outcome, Writer

NS = "shop"


def pod(name: str, deployment: str, ip: str, ready: bool = True) -> Pod:
    return Pod(NS, name, f"uid-{name}", f"{deployment}-rs", ready, 1, False, ip, "10.1.0.1", "node-1", (("http", 80),))


class Setup:
    def __init__(self, ensemble, root: str, resync: float = 30.0) -> None:
        self.client = new_client(ensemble)
        self.stop = threading.Event()
        self.inventory = Inventory(
            on_change=lambda keys: self.controller.registries_changed(keys),
            on_pods=lambda key, uids: self.controller.pods_changed(key, uids),
        )
        self.membership = Membership(
            self.client, on_change=lambda path, uids: self.controller.path_changed(path, uids), timeout=4, owner=OWNER
        )
        self.election = Election(self.client, f"{root}/election", "r0", on_change=lambda: self.controller.wake())
        self.controller = Controller(
            self.client, self.inventory, self.membership, Writer(self.client, self.membership, timeout=4),
            self.election, owner=OWNER, paused=threading.Event(), resync_seconds=resync, timeout=4,
            claims=Claims(self.client, f"{root}/op", timeout=4), default_prefixes=(root,),
        )
        self.root = root

    def registry(self, name: str, pods: int) -> str:
        """A registry at <root>/<name>/web, with a Deployment of `pods` Ready pods."""
        self.inventory.put_registry(Registry(NS, name, f"r-{name}", "web", f"{self.root}/{name}"))
        self.inventory.put_deployment(Deployment(NS, name, f"d-{name}", name, None, (("http", 80),)))
        self.inventory.put_replicaset(ReplicaSet(NS, f"{name}-rs", name))
        for i in range(pods):
            self.inventory.put_pod(pod(f"{name}-{i}", name, f"10.0.0.{i + 1}"))
        return f"{self.root}/{name}/web"

    def start(self) -> None:
        self.inventory.synced.set()
        self.election.join()
        self.thread = threading.Thread(target=self.controller.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if hasattr(self, "thread"):
            self.thread.join(10)
        self.client.stop()
        self.client.close()


@pytest.fixture
def setup(ensemble, root) -> Iterator[Setup]:
    s = Setup(ensemble, root, resync=1.0)
    yield s
    s.close()


def test_a_failing_path_backs_off_and_leaves_the_others_alone(zk, setup):
    good = setup.registry("good", 3)
    bad = setup.registry("bad", 2)
    zk.ensure_path(bad.rsplit("/", 1)[0])
    zk.create(bad, acl=[ACL(Permissions.READ, Id("world", "anyone"))])  # no CREATE for us
    setup.inventory.synced.set()
    setup.election.join()
    setup.controller.turn(everything=True, refresh=False, whole=set(), pods={})
    assert len(zk.get_children(good)) == 3
    assert zk.get_children(bad) == []
    assert bad in setup.controller._deferred and setup.controller._failures[bad][0] >= 2
    # The next turn does not try the path that backs off, and still serves the others.
    setup.inventory.put_pod(pod("good-9", "good", "10.0.0.9"))
    failures = setup.controller._failures[bad][0]
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods=setup.controller._pods)
    assert len(zk.get_children(good)) == 4
    assert setup.controller._failures[bad][0] == failures


def test_a_pod_event_plans_that_pod_alone(zk, setup):
    path = setup.registry("web", 20)
    setup.start()
    eventually(lambda: len(zk.get_children(path)) == 20, 10, "20 registrations")
    planned: list[int] = []
    plan_pods = setup.controller._plan_pods
    setup.controller._plan_pods = lambda p, uids: planned.append(len(set(uids))) or plan_pods(p, uids)
    setup.inventory.put_pod(pod("web-3", "web", "10.0.0.4", ready=False))
    eventually(lambda: "uid-web-3" not in zk.get_children(path), 10, "the not-Ready pod to go")
    assert planned and max(planned) == 1


def test_the_resync_repairs_a_registration_rewritten_behind_our_back(zk, setup):
    path = setup.registry("web", 2)
    setup.start()
    eventually(lambda: len(zk.get_children(path)) == 2, 10, "2 registrations")
    name = sorted(zk.get_children(path))[0]
    good = zk.get(f"{path}/{name}")[0]
    zk.set(f"{path}/{name}", good.replace(b'"port":80', b'"port":81'))  # no watch sees this
    eventually(lambda: zk.get(f"{path}/{name}")[0] == good, 10, "the resync to restore the data")


def test_a_path_whose_parent_refuses_us_backs_off_alone(zk, setup):
    good = setup.registry("good", 3)
    bad = setup.registry("bad", 2)
    zk.create(bad.rsplit("/", 1)[0], acl=[ACL(Permissions.READ, Id("world", "anyone"))])  # no CREATE below
    setup.inventory.synced.set()
    setup.election.join()
    setup.controller.turn(everything=True, refresh=False, whole=set(), pods={})
    assert zk.exists(good) and len(zk.get_children(good)) == 3
    assert bad in setup.controller._deferred


def test_a_child_too_deep_to_parse_is_an_external_member_not_a_crash(zk, setup):
    path = setup.registry("web", 2)
    setup.start()
    eventually(lambda: zk.exists(path) and len(zk.get_children(path)) == 2, 10, "2 registrations")
    # Once the path is claimed, a child that someone allowed to create there wrote (no digest
    # identity here, so the ACL is open) is an external member.
    zk.create(f"{path}/evil", b"[" * 5000)
    setup.controller.resync()  # a refresh reads the child again, on the controller's thread
    eventually(lambda: setup.membership.has(path, "evil"), 10, "the mirror to hold the child")
    assert setup.membership.snapshot(path)["evil"].member is None
    assert setup.thread.is_alive()


def test_an_unreadable_child_does_not_keep_the_other_paths_from_being_listed(zk, setup):
    paths = [setup.registry("a", 1), setup.registry("b", 1)]
    setup.start()
    eventually(lambda: all(zk.exists(p) and len(zk.get_children(p)) == 1 for p in paths), 10, "both registered")
    first, later = setup.membership.paths()[:2]  # the order in which every refresh reads them
    zk.create(f"{first}/private", b"x", acl=[make_digest_acl("someone", "secret", all=True)])
    try:
        eventually(lambda: setup.membership.has(first, "private"), 10, "the unreadable child in the mirror")
        drop_connection(setup.client)  # the watches are gone; the resync's refresh must set them again
        zk.create(f"{later}/external", b'{"id":"external","name":"web","address":"10.9.9.9","port":1}',
                  ephemeral=True)
        eventually(lambda: setup.membership.has(later, "external"), 10, "the later path's watch to be set again")
    finally:
        zk.delete(f"{first}/private")  # its parent's ACL lets us; the fixture could not even list it


def test_a_fence_whose_data_changed_still_fences(zk, setup):
    path = setup.registry("web", 1)
    setup.start()
    eventually(lambda: zk.exists(path) and len(zk.get_children(path)) == 1, 10, "1 registration")
    zk.set(setup.election.node, b"touched")  # its version is no longer 0
    setup.inventory.put_pod(pod("web-7", "web", "10.0.0.7"))
    eventually(lambda: len(zk.get_children(path)) == 2, 10, "a write fenced by the touched znode")


def hold_writes(setup: Setup) -> tuple[threading.Event, threading.Event]:
    """Makes the controller's next writes wait for the returned gate; `entered` is set once one
    does."""
    gate, entered = threading.Event(), threading.Event()
    apply = setup.controller.writer.apply

    def held(plans, fence):
        entered.set()
        gate.wait(10)
        return apply(plans, fence)

    setup.controller.writer.apply = held
    return gate, entered


def never_cleared_while_in_flight(setup: Setup, gate: threading.Event, uid: str) -> None:
    try:
        for _ in range(20):
            assert uid not in setup.controller.cleared, "cleared while a create was in flight"
            setup.controller.wake()
            threading.Event().wait(0.1)
    finally:
        gate.set()


def test_a_deleted_registry_is_cleared_only_once_no_write_of_its_own_is_in_flight(zk, setup):
    """The finalizer of a deleted registry may go when `Controller.cleared` says so. A create
    planned before the deletion was seen and still in flight must hold it: the mirror does not
    show that znode yet, but ZooKeeper will. And a registry made again under the same name is
    not cleared by what was decided of its predecessor."""
    path = setup.registry("web", 0)
    gate, entered = hold_writes(setup)
    setup.start()
    setup.inventory.put_pod(pod("web-0", "web", "10.0.0.1"))
    assert entered.wait(10), "the create was never written"
    first = setup.inventory.registry((NS, "web"))
    setup.inventory.put_registry(dataclasses.replace(first, deleting=True))
    never_cleared_while_in_flight(setup, gate, first.uid)
    eventually(lambda: first.uid in setup.controller.cleared, 10, "the registry to be cleared")
    assert zk.get_children(path) == [], "cleared with a registration left"

    setup.inventory.remove_registry(first.key)
    gate, entered = hold_writes(setup)
    second = dataclasses.replace(first, uid="r-web-2")
    setup.inventory.put_registry(second)
    assert entered.wait(10), "the second registry's create was never written"
    setup.inventory.put_registry(dataclasses.replace(second, deleting=True))
    never_cleared_while_in_flight(setup, gate, second.uid)
    eventually(lambda: second.uid in setup.controller.cleared, 10, "the second registry to be cleared")
    assert zk.get_children(path) == []


def test_a_registration_the_mirror_missed_holds_a_deleted_registry(zk, setup):
    """A create whose reply was lost commits all the same, and the mirror may not have listed it
    yet: the controller reads the path afresh before it calls a deleted registry cleared."""
    path = setup.registry("web", 0)
    setup.start()
    eventually(lambda: setup.controller.caught_up(), 10, "the first turn")
    lost = Instance("uid-lost", "web", "10.0.0.9", 80, NS, "web-9", "web", 0)
    setup.membership._list = lambda path: None  # no watch tells the mirror
    zk.ensure_path(path)
    zk.create(f"{path}/uid-lost", curator.CODEC.encode(lost, OWNER), ephemeral=True)
    registry = setup.inventory.registry((NS, "web"))
    setup.inventory.put_registry(dataclasses.replace(registry, deleting=True))

    left_when_cleared: list[list[str]] = []

    def cleared() -> bool:
        if registry.uid not in setup.controller.cleared:
            return False
        left_when_cleared.append(zk.get_children(path))
        return True

    eventually(cleared, 10, "the registry to be cleared")
    assert left_when_cleared == [[]], "cleared with a registration left"


def test_a_deleted_registry_whose_successor_failed_to_delete_its_members_is_not_cleared(zk, setup):
    """Two registries of one namespace ask for one path; the older writes it. Once it is being
    deleted the other takes the path over, and deletes the members it does not want: until that
    has worked, the deleted one keeps its finalizer."""
    path = setup.registry("web", 2)
    older = dataclasses.replace(setup.inventory.registry((NS, "web")), created="2026-01-01T00:00:00Z")
    setup.inventory.put_registry(older)
    setup.inventory.put_registry(
        Registry(NS, "later", "r-later", "web", f"{setup.root}/web", created="2026-06-01T00:00:00Z")
    )
    setup.start()
    eventually(lambda: len(zk.get_children(path)) == 2, 10, "2 registrations")
    fail = threading.Event()
    fail.set()
    apply = setup.controller.writer.apply

    def failing(plans, fence):  # as a transaction whose reply was lost
        if fail.is_set():
            return {path: Outcome(failed=len(ops)) for path, ops in plans.items()}
        return apply(plans, fence)

    setup.controller.writer.apply = failing
    first = setup.inventory.registry((NS, "web"))
    setup.inventory.put_registry(dataclasses.replace(first, deleting=True))
    for _ in range(20):
        assert first.uid not in setup.controller.cleared, "cleared while its members are registered"
        setup.controller.wake()
        threading.Event().wait(0.1)
    fail.clear()
    eventually(lambda: first.uid in setup.controller.cleared, 15, "the registry to be cleared")
    assert zk.get_children(path) == []


def test_a_new_leader_is_caught_up_once_its_takeover_plans_are_written(zk, setup):
    path = setup.registry("web", 3)
    setup.inventory.synced.set()
    setup.election.join()
    setup.election.step()
    assert setup.election.writable and not setup.controller.caught_up(), "caught up before any plan"
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})
    assert setup.controller.caught_up() and len(zk.get_children(path)) == 3


def test_a_repair_is_not_lost_to_a_transaction_that_lands_while_it_reads(zk, ensemble, root):
    """The resync finds a registration of ours rewritten by hand and reads it again; a
    transaction of ours that lands meanwhile makes that read stale. It is read once more, not
    left to the next resync."""
    setup = Setup(ensemble, root, resync=300.0)
    try:
        path = setup.registry("web", 2)
        setup.start()
        eventually(lambda: len(zk.get_children(path)) == 2, 10, "2 registrations")
        name = sorted(zk.get_children(path))[0]
        good = zk.get(f"{path}/{name}")[0]
        get_async, landed = setup.client.get_async, [2]

        def read_while_a_transaction_lands(p, *args, **kwargs):
            result = get_async(p, *args, **kwargs)
            if p == f"{path}/{name}" and landed[0]:
                landed[0] -= 1
                # What a transaction of ours that touches the name does to the mirror (here it
                # writes back what the mirror holds).
                node = setup.membership.snapshot(path)[name]
                update = Update(name, node.version - 1, node.data, node.member)
                setup.membership.applied(path, [update], [None], node.session)
            return result

        setup.client.get_async = read_while_a_transaction_lands
        zk.set(f"{path}/{name}", good.replace(b'"port":80', b'"port":81'))
        setup.controller.resync()  # the one resync of this test
        eventually(lambda: zk.get(f"{path}/{name}")[0] == good, 10, "the registration written right")
        assert landed == [0]
    finally:
        setup.close()


def test_a_turn_checks_a_bounded_number_of_registrations(zk, ensemble, root, monkeypatch):
    """The check for registrations rewritten by hand sends a few stats per turn, never one per
    registration at once: ZooKeeper answers them all before the transactions sent after them."""
    monkeypatch.setattr(controller_module, "VERIFY_PER_TURN", 4)
    setup = Setup(ensemble, root, resync=300.0)
    try:
        path = setup.registry("web", 10)
        setup.inventory.synced.set()
        setup.election.join()
        setup.controller.turn(everything=True, refresh=False, whole=set(), pods={})
        assert len(zk.get_children(path)) == 10
        name = sorted(zk.get_children(path))[0]
        good = zk.get(f"{path}/{name}")[0]
        zk.set(f"{path}/{name}", good.replace(b'"port":80', b'"port":81'))
        stats: list[str] = []
        exists_async = setup.client.exists_async
        setup.client.exists_async = lambda p, *args, **kwargs: stats.append(p) or exists_async(p, *args, **kwargs)
        turns = 0
        while zk.get(f"{path}/{name}")[0] != good and turns < 10:
            before = len(stats)
            setup.controller.turn(everything=False, refresh=turns == 0, whole=set(), pods=setup.controller._pods)
            setup.controller._pods = {}
            assert len(stats) - before <= 4 + 1  # and the fence's check
            turns += 1
            threading.Event().wait(0.2)
        assert zk.get(f"{path}/{name}")[0] == good, "not repaired within a round of checks"
    finally:
        setup.close()


@pytest.fixture
def quiet(ensemble, root) -> Iterator[Setup]:
    """A setup whose resync does not come during a test."""
    s = Setup(ensemble, root, resync=60.0)
    yield s
    s.close()


def test_planned_counts_follow_pod_events_without_recomputing_the_registry(zk, quiet, monkeypatch):
    setup = quiet
    path = setup.registry("web", 5)
    registry = setup.inventory.registry((NS, "web"))
    assert setup.controller.planned(registry) is None  # nothing planned yet
    setup.start()
    eventually(lambda: setup.controller.planned(registry) == 5, 10, "the takeover's plan of 5 pods")
    eventually(lambda: len(zk.get_children(path)) == 5, 10, "5 registrations")
    # From here on, pod events alone: the whole registry is never computed again.
    whole: list[Registry] = []
    monkeypatch.setattr(setup.inventory, "desired", lambda registry: whole.append(registry) or ({}, []))
    setup.inventory.put_pod(pod("web-1", "web", "10.0.0.2", ready=False))
    setup.inventory.put_pod(pod("web-7", "web", "10.0.0.8"))
    setup.inventory.put_pod(pod("web-8", "web", "10.0.0.9"))
    eventually(lambda: setup.controller.planned(registry) == 6, 10, "5 - 1 + 2 planned")
    eventually(lambda: len(zk.get_children(path)) == 6, 10, "6 registrations")
    assert whole == []
    other = Registry(NS, "other", "r-other", "web", f"{setup.root}/web")  # another registry, same path
    assert setup.controller.planned(other) is None  # only the path's writer has a count
    # A new format is planned whole: until then the old count is not the registry's.
    assert setup.controller.planned(dataclasses.replace(registry, format="serverset")) is None


def next_turn(setup: Setup, everything: bool = False) -> None:
    """One turn of what the wake-ups have marked since the last, as `Controller.run` takes it."""
    controller = setup.controller
    whole, pods, controller._whole, controller._pods = controller._whole, controller._pods, set(), {}
    controller.turn(everything=everything, refresh=False, whole=whole, pods=pods)


def test_a_deployment_change_plans_its_pods_alone_and_reports_its_registries(zk, quiet):
    """A Deployment's change is planned as pod events are, for the pods it leads to: moving a
    Deployment of 3 pods from a registry of 23 to another plans those 3 in both paths, never a
    whole path. A new Deployment with a bad port annotation and no pods plans no pod, and its
    registry is reported all the same, for the problem its status and Events show."""
    setup = quiet
    web, other = setup.registry("web", 20), setup.registry("other", 0)
    setup.inventory.put_deployment(Deployment(NS, "api", "d-api", "web", None, (("http", 80),)))
    setup.inventory.put_replicaset(ReplicaSet(NS, "api-rs", "api"))
    api = {f"uid-api-{i}" for i in range(3)}
    for i in range(3):
        setup.inventory.put_pod(pod(f"api-{i}", "api", f"10.0.1.{i + 1}"))
    setup.inventory.synced.set()
    setup.election.join()
    next_turn(setup, everything=True)  # the takeover, and the registries' own changes
    assert len(zk.get_children(web)) == 23
    planned: list[tuple[str, str, frozenset[str]]] = []
    for name in ("_plan_path", "_plan_pods"):
        plan = getattr(setup.controller, name)

        def recorded(path, *uids, plan=plan, name=name):
            planned.append((name, path, frozenset(*uids)))
            return plan(path, *uids)

        setattr(setup.controller, name, recorded)
    reported: list[set] = []
    setup.controller.on_reconciled = lambda keys: reported.append(set(keys))

    setup.inventory.put_deployment(Deployment(NS, "api", "d-api", "other", None, (("http", 80),)))
    next_turn(setup)
    assert sorted(planned) == [("_plan_pods", other, api), ("_plan_pods", web, api)]
    assert len(zk.get_children(web)) == 20 and set(zk.get_children(other)) == api
    assert reported == [{(NS, "web"), (NS, "other")}]

    planned.clear()
    reported.clear()
    setup.inventory.put_deployment(Deployment(NS, "bad", "d-bad", "web", "70000", (("http", 80),)))
    next_turn(setup)
    assert planned == [("_plan_pods", web, frozenset())]
    assert reported == [{(NS, "web")}], "the registry of the new Deployment was not reported"
    problems = setup.inventory.problems(setup.inventory.registry((NS, "web")))
    assert [(p.reason, p.deployment) for p in problems] == [("InvalidPort", (NS, "bad"))]


def test_the_periodic_resync_plans_a_path_per_turn_and_pods_in_between(zk, quiet):
    """A resync reads and plans every path whole: O(registrations), over a second at 10,000. It
    takes one path per turn, so that a pod that turns Ready meanwhile waits for one path's plan,
    not for all of them."""
    setup = quiet
    paths = [setup.registry(name, 3) for name in ("a", "b", "c")]
    setup.inventory.synced.set()
    setup.election.join()
    setup.controller.turn(everything=True, refresh=False, whole=set(), pods={})
    assert all(len(zk.get_children(path)) == 3 for path in paths)
    order: list[str] = []
    for name in ("_plan_path", "_plan_pods"):
        plan = getattr(setup.controller, name)
        recorded = lambda path, *rest, plan=plan, name=name: order.append((name, path)) or plan(path, *rest)  # noqa: E731
        setattr(setup.controller, name, recorded)
    refreshed: list[str] = []
    refresh = setup.membership.refresh
    setup.membership.refresh = lambda path, **kwargs: refreshed.append(path) or refresh(path, **kwargs)
    setup.controller._sweeping, setup.controller._swept = sorted(paths), True  # what `run` does at a resync
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})
    assert order == [("_plan_path", paths[0])] and refreshed == [paths[0]]
    setup.inventory.put_pod(pod("c-9", "c", "10.0.0.9"))  # turns Ready during the resync
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods=setup.controller._pods)
    assert ("_plan_path", paths[1]) in order and ("_plan_pods", paths[2]) in order
    assert ("_plan_path", paths[2]) not in order  # its whole plan comes a turn later
    assert "uid-c-9" in zk.get_children(paths[2])
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})
    assert [p for kind, p in order if kind == "_plan_path"] == sorted(paths) and refreshed == sorted(paths)
    assert setup.controller._sweeping == []


def test_a_takeover_turn_runs_without_the_cyclic_garbage_collector(zk, quiet):
    """A takeover makes a few records per pod; each batch would start a collection that walks every
    object of the process. The collector is off for the takeover's turn only."""
    setup = quiet
    setup.registry("web", 3)
    setup.inventory.synced.set()
    setup.election.join()
    seen: list[bool] = []
    reconcile = setup.controller._reconcile
    setup.controller._reconcile = lambda whole, pods: seen.append(gc.isenabled()) or reconcile(whole, pods)
    assert gc.isenabled()
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})  # the takeover
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})  # an ordinary turn
    assert seen == [False, True] and gc.isenabled()


def test_a_sweep_is_never_cut_short_by_the_next_resync_or_a_takeover(zk, quiet):
    """Found by review: each resync began the sweep again from its first path, so that a sweep
    longer than the resync period never reached the last ones, and a turn that planned everything
    (a takeover, a retry after failed admission) dropped what was left unread."""
    setup = quiet
    paths = [setup.registry(name, 1) for name in ("a", "b", "c")]
    setup.inventory.synced.set()
    setup.election.join()
    setup.controller.turn(everything=True, refresh=False, whole=set(), pods={})  # leading, paths claimed
    refreshed: list[str] = []
    refresh = setup.membership.refresh
    setup.membership.refresh = lambda path, **kwargs: refreshed.append(path) or refresh(path, **kwargs)
    setup.controller._begin_sweep()
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})  # reads a
    setup.controller._begin_sweep()  # the next resync, with b and c not read yet
    setup.controller.turn(everything=True, refresh=False, whole=set(), pods={})  # everything: reads b
    while setup.controller._sweeping:
        setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})
    a, b, c = sorted(paths)
    assert refreshed == [a, b, c, a]  # b and c kept their place; the new resync reads a again


def test_no_version_check_is_sent_ahead_of_a_takeover_s_transactions(zk, setup, monkeypatch):
    """A round of checks left unfinished when leadership was lost must not go ahead of the next
    takeover's transactions (ZooKeeper answers a session in order): the takeover's turn checks
    nothing; the turns after it go on with the round."""
    path = setup.registry("web", 5)
    setup.inventory.synced.set()
    setup.election.join()
    setup.controller.turn(everything=True, refresh=False, whole=set(), pods={})
    assert len(zk.get_children(path)) == 5
    checks: list[bool] = []
    monkeypatch.setattr(setup.membership, "verify", lambda limit, start=False: checks.append(start))
    setup.controller.turn(everything=False, refresh=True, whole=set(), pods={})
    assert checks == [True], "a leader whose takeover is written checks, and a refresh begins a round"
    node = setup.election.node
    zk.delete(node)  # deposed, as when an admin removes the election znode: a new candidacy
    setup.election.fence_lost(node)
    term = setup.election.term
    eventually(lambda: (setup.election.step(), setup.election.term > term)[1], 10, "leadership again")
    checks.clear()
    setup.controller.turn(everything=False, refresh=True, whole=set(), pods={})  # the takeover
    assert checks == [], "a check went ahead of the takeover's transactions"
    setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})
    assert checks == [False]


def test_what_a_takeover_or_a_full_read_built_is_kept_out_of_later_collections(zk, quiet):
    """The records of a takeover and of a full read live on: they are frozen (gc.freeze) at the
    turn after those, never in the takeover's own (the collection before a freeze would delay its
    writes), and at most once per resync period (a flapping connection reconnects often), owed
    until then; an ordinary turn freezes nothing more."""
    setup = quiet
    path = setup.registry("web", 3)
    setup.inventory.synced.set()
    setup.election.join()
    gc.unfreeze()
    try:
        setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})  # the takeover
        assert len(zk.get_children(path)) == 3
        assert gc.get_freeze_count() == 0, "froze in the takeover's turn, delaying its writes"
        setup.inventory.put_pod(pod("web-7", "web", "10.0.0.8"))
        setup.controller.turn(everything=False, refresh=False, whole=set(), pods=setup.controller._pods)
        assert len(zk.get_children(path)) == 4
        assert gc.get_freeze_count() > 0, "the takeover's records were not frozen at the next turn"
        gc.unfreeze()
        setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})
        assert gc.get_freeze_count() == 0, "an ordinary turn froze"
        setup.controller.turn(everything=False, refresh=True, whole=set(), pods={})  # a reconnect's
        setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})
        assert gc.get_freeze_count() == 0, "froze twice within a resync period"
        setup.controller.resync_seconds = 0.0  # the period has passed: the freeze owed comes now
        setup.controller.turn(everything=False, refresh=False, whole=set(), pods={})
        assert gc.get_freeze_count() > 0, "a full read's records were not frozen"
    finally:
        gc.unfreeze()
