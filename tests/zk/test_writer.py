"""The writer and the mirror against a real ensemble: fenced transactions, make-before-break
takeover as a client with a watch on every child sees it, the mirror's epochs, and a deposed
leader that cannot write."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError
from kazoo.protocol.states import EventType
from kazoo.security import ACL, Id, Permissions

from conftest import eventually
from zk.conftest import OWNER, wanted
from zkregistry import formats, membership, reads
from zkregistry.formats import serverset
from zkregistry.model import Instance
from zkregistry.plan import ALTERNATE, Create, Delete, Wanted, calculate


def on_reads(monkeypatch, client, hook) -> None:
    """Calls `hook(path)` before each read of a child that `client`'s mirror sends, alone
    (`get_async`) or a hundred to a multiRead (`reads.get_many`)."""
    get_async, get_many = client.get_async, reads.get_many

    def one(p, *args, **kwargs):
        hook(p)
        return get_async(p, *args, **kwargs)

    def many(c, paths):
        if c is client:
            for p in paths:
                hook(p)
        return get_many(c, paths)

    monkeypatch.setattr(client, "get_async", one)
    monkeypatch.setattr(reads, "get_many", many)


class ChildWatcher:
    """A client that watches every child's data and the path's children, as Curator's
    ServiceCache does: records each (event, name) in the order ZooKeeper delivered them."""

    def __init__(self, client, path: str) -> None:
        self.client, self.path = client, path
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        for name in client.get_children(path, watch=self._children):
            client.exists(f"{path}/{name}", watch=self._data)

    def _children(self, event) -> None:
        if event.type == EventType.NONE:
            return
        for name in self.client.get_children(self.path, watch=self._children):
            self.client.exists(f"{self.path}/{name}", watch=self._data)

    def _data(self, event) -> None:
        name = event.path.rsplit("/", 1)[1]
        with self.lock:
            self.events.append((event.type, name))
        if event.type != EventType.DELETED:
            self.client.exists(event.path, watch=self._data)

    def deleted(self) -> list[str]:
        with self.lock:
            return [name for kind, name in self.events if kind == EventType.DELETED]


def test_takeover_never_deletes_a_pod_before_its_new_registration_exists(zk, replica_factory):
    a, b = replica_factory("a"), replica_factory("b")
    path, desired = a.path, wanted(35, "web")
    a.lead()
    b.lead()
    assert a.election.leader and not b.election.leader
    outcome = a.sync(desired)
    assert outcome.applied == 35 and outcome.failed == 0
    assert outcome.zk_ops == 35 + 4  # four transactions of ten, each with its fence check
    eventually(lambda: len(b.membership.snapshot(path)) == 35, 10, "b's mirror to see a's 35 znodes")

    # Per pod, the moment its first znode was deleted and the moment its new one was created.
    created: dict[str, int] = {}
    deleted: dict[str, int] = {}
    clock = iter(range(10**6))
    seen = set(zk.get_children(path))

    def on_children(children):
        tick = next(clock)
        for name in set(children) - seen:
            created.setdefault(name.removesuffix(ALTERNATE), tick)
        for name in seen - set(children):
            deleted.setdefault(name.removesuffix(ALTERNATE), tick)
        seen.clear()
        seen.update(children)

    zk.ChildrenWatch(path, on_children)
    watcher = ChildWatcher(zk, path)

    a.election.leave()
    eventually(lambda: b.election.step() or b.election.leader, 10, "b to lead")
    outcome = b.sync(desired)
    assert outcome.failed == 0 and outcome.applied == 70  # 35 creates, then 35 deletes
    zk.sync(path)  # our reads may come from a server that has not applied b's writes yet
    owners = {zk.get(f"{path}/{name}")[1].ephemeralOwner for name in zk.get_children(path)}
    assert owners == {b.session()}
    assert sorted(zk.get_children(path)) == sorted(f"{uid}{ALTERNATE}" for uid in desired)
    eventually(lambda: len(watcher.deleted()) == 35, 10, "the data watches to see the old znodes go")
    # No name was deleted and created again: the new registrations have names of their own.
    assert set(watcher.deleted()) == set(desired)
    assert all(created[uid] <= deleted[uid] for uid in desired), "a pod was gone before its new znode came"
    a.close()  # the old session ends: nothing of b's may go with it
    assert len(zk.get_children(path)) == 35
    assert b.sync(desired).applied == 0  # idempotent


def test_a_deposed_leader_cannot_write(zk, replica_factory):
    a = replica_factory("a")
    path = a.path
    a.lead()
    stale_fence = a.election.node
    a.sync(wanted(3, "web"))
    # Someone else removes a's election znode while a's session lives.
    zk.delete(stale_fence)
    plan = calculate(wanted(5, "web"), a.membership.snapshot(path), OWNER, a.session())
    outcome = a.writer.apply({path: plan.ops}, stale_fence)[path]
    assert outcome.applied == 0 and outcome.failed == 2 and outcome.fence_gone
    assert len(zk.get_children(path)) == 3


def test_a_stale_refusal_is_not_a_lost_fence(zk, replica_factory):
    a = replica_factory("a")
    a.lead()
    a.sync(wanted(1, "web"))
    stale = calculate({}, a.membership.snapshot(a.path), OWNER, a.session()).ops  # deletes uid-0
    zk.delete(f"{a.path}/uid-0")  # behind the plan's back, so its Delete must fail
    outcome = a.writer.apply({a.path: stale}, a.election.node)[a.path]
    assert outcome.failed == 1 and not outcome.fence_gone


def test_format_change_moves_registrations_and_leaves_none_behind(zk, replica_factory):
    a = replica_factory("a")
    a.lead()
    a.sync(wanted(4, "web"))
    instances = [Instance(f"uid-{i}", "web", "10.0.0.1", 80 + i, "ns", f"pod-{i}", "web", 0) for i in range(4)]
    as_serversets = {
        i.id: Wanted(serverset.CODEC.node_name(i), serverset.CODEC.encode(i, OWNER), True, i.id) for i in instances
    }
    assert a.sync(as_serversets).failed == 0
    names = zk.get_children(a.path)
    assert len(names) == 4 and all(n.startswith("member_") for n in names), names


def test_mirror_sees_external_members_come_and_go(zk, replica_factory):
    a = replica_factory("a")
    path = a.path
    zk.create(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"192.168.0.9","port":80}', ephemeral=True)
    zk.create(f"{path}/junk", b"\xff\x00", ephemeral=True)
    nodes = eventually(lambda: (s := a.membership.snapshot(path)) and len(s) == 2 and s, 5, "mirror")
    assert nodes["vm-1"].member.address == "192.168.0.9" and nodes["vm-1"].member.owner is None
    assert nodes["junk"].member is None
    zk.delete(f"{path}/junk")
    eventually(lambda: "junk" not in a.membership.snapshot(path), 5, "removal")
    # A child rewritten in place is not watched; the resync's refresh reads it again.
    zk.set(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"192.168.0.10","port":80}')
    a.membership.refresh(path)
    assert a.membership.snapshot(path)["vm-1"].member.address == "192.168.0.10"


def test_a_listing_older_than_our_transaction_never_undoes_it(zk, replica_factory):
    """The mirror's epochs: a listing sent before our transaction but applied after it must not
    make our new znode look deleted. kazoo applies replies on its completion thread and watch
    events on its callback thread; holding both makes the interleaving certain, and keeps the
    watch event of our own create from repairing the mirror behind the test's back."""
    a = replica_factory("a")
    path = a.path
    a.lead()
    releases = []
    for queue in (a.client.handler.completion_queue, a.client.handler.callback_queue):
        held, release = threading.Event(), threading.Event()
        queue.put(lambda held=held, release=release: (held.set(), release.wait(20)))
        assert held.wait(5)
        releases.append(release)
    try:
        a.membership._list(path)  # answered at once, applied only once the thread is released
        assert zk.get_children(path) == []  # our own request, ordered after a's listing
        create = Create("uid-0", wanted(1, "web")["uid-0"].data, uid="uid-0")
        outcome = a.writer.apply({path: [create]}, a.election.node)[path]  # needs no callback
        assert outcome.applied == 1 and a.membership.has(path, "uid-0")
        releases[0].set()  # the stale listing, without uid-0, is applied now
        eventually(lambda: a.client.handler.completion_queue.empty(), 5, "the held replies to be applied")
        eventually(lambda: a.membership.has(path, "uid-0"), 5, "the mirror to hold our znode")
    finally:
        for release in releases:
            release.set()


def test_a_mirror_handing_over_learns_which_names_are_gone_and_reads_no_new_one(zk, replica_factory, monkeypatch):
    """A replica handing over waits only for its own znodes to go. ZooKeeper answers a session in
    order, so every read of a successor's new znode that its mirror sends delays the listing that
    shows its own gone: once told `names_only`, the mirror reads nothing."""
    a = replica_factory("a")
    path = a.path
    a.lead()
    assert a.sync(wanted(3, "web")).applied == 3
    ours = sorted(a.membership.snapshot(path))
    read: list[str] = []
    on_reads(monkeypatch, a.client, read.append)
    a.membership.names_only()
    for i in range(20):  # a successor's new names
        zk.create(f"{path}/new-{i}", b'{"name":"web","id":"x","address":"10.9.0.1","port":80}', ephemeral=True)
    for name in ours:
        zk.delete(f"{path}/{name}")
    eventually(lambda: not set(a.membership.snapshot(path)) & set(ours), 10, "our names to leave the mirror")
    a.membership.refresh(path)  # a resync while handing over reads nothing either
    assert read == []
    assert not any(name.startswith("new-") for name in a.membership.snapshot(path))


def test_the_mirror_lists_a_path_once_after_a_write_not_once_per_transaction(zk, replica_factory):
    """Each of our transactions fires the children watch; listing the path again for each is
    O(path) per transaction. While a write is in flight the listing waits, and one follows it."""
    a = replica_factory("a")
    path = a.path
    a.lead()
    listings: list[str] = []
    get_children_async = a.client.get_children_async
    a.client.get_children_async = lambda p, *args, **kwargs: (
        listings.append(p) or get_children_async(p, *args, **kwargs)
    )
    applied = a.membership.applied

    def slow(*args, **kwargs) -> None:  # a controller thread that waits for the interpreter
        threading.Event().wait(0.02)
        applied(*args, **kwargs)

    a.membership.applied = slow
    outcome = a.sync(wanted(200, "web"))  # 20 transactions of 10
    assert outcome.applied == 200
    zk.create(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"192.168.0.9","port":80}', ephemeral=True)
    eventually(lambda: a.membership.has(path, "vm-1"), 5, "a foreign member seen after the write")
    assert len(listings) <= 3, f"{len(listings)} listings for one write"


def test_the_mirror_does_not_decode_a_registration_it_holds_under_another_name(zk, replica_factory, monkeypatch):
    """A takeover creates each pod's znode anew, with the bytes of the one it supersedes: the
    mirror takes the member it already decoded rather than parse 10,000 payloads again."""
    a = replica_factory("a")
    a.lead()
    assert a.sync(wanted(20, "web")).applied == 20
    old = {name: node.member for name, node in a.membership.snapshot(a.path).items()}
    decoded: list[str] = []
    read_any = formats.read_any
    monkeypatch.setattr(formats, "read_any", lambda name, data: decoded.append(name) or read_any(name, data))
    taken_over = [Create(f"{uid}{ALTERNATE}", w.data, uid=uid) for uid, w in wanted(20, "web").items()]
    assert a.writer.apply({a.path: taken_over}, a.election.node)[a.path].applied == 20
    assert decoded == []
    nodes = a.membership.snapshot(a.path)
    assert all(nodes[f"{uid}{ALTERNATE}"].member == old[uid] for uid in old)


def test_the_mirror_records_our_creates_and_updates_without_decoding_them(zk, replica_factory, monkeypatch):
    """A crash successor creates 10,000 registrations that nobody holds: the mirror takes each
    one's member from the plan instead of parsing what the controller has just encoded."""
    a = replica_factory("a")
    a.lead()
    decoded: list[str] = []
    read_any = formats.read_any
    monkeypatch.setattr(formats, "read_any", lambda name, data: decoded.append(name) or read_any(name, data))
    assert a.sync(wanted(20, "web")).applied == 20
    assert a.sync(wanted(20, "web", port=1000)).applied == 20  # an Update each: new port, same znode
    assert decoded == []
    recorded = a.membership.snapshot(a.path)
    monkeypatch.undo()
    a.membership.refresh(a.path, reread=True)  # what ZooKeeper holds, read and decoded
    assert a.membership.snapshot(a.path) == recorded
    assert {node.member.port for node in recorded.values()} == set(range(1000, 1020))


def test_a_mirror_handing_over_sees_its_znode_replaced_in_place_by_the_successor(zk, replica_factory):
    """With the pod's other name taken, the successor replaces the old znode in place (a delete
    and a create of one name in one transaction): a listing shows no change, so the replica
    handing over would wait for that znode until its deadline. Checking the owner of its own
    names (stats, no data) shows that it owns it no longer."""
    a, b = replica_factory("a"), replica_factory("b")
    path = a.path
    a.lead()
    assert a.sync(wanted(1, "web")).applied == 1
    zk.create(f"{path}/uid-0{ALTERNATE}", b"someone else's", ephemeral=True)
    eventually(lambda: b.membership.has(path, "uid-0") and b.membership.has(path, f"uid-0{ALTERNATE}"), 5, "b's mirror")
    a.membership.names_only()
    b.lead()
    a.election.leave(timeout=4)
    eventually(lambda: (b.election.step(), b.election.writable)[1], 10, "b to lead")
    plan = calculate(wanted(1, "web"), b.membership.snapshot(path), OWNER, b.session())
    assert [type(op).__name__ for op in plan.ops] == ["Replace"]
    assert b.writer.apply({path: plan.ops}, b.election.node)[path].applied == 1

    def owned_by_a() -> int:
        return a.membership.count(path, lambda n: n.session == a.session())

    a.membership.refresh(path)
    assert owned_by_a() == 1, "a listing alone cannot see a replace in place"
    a.membership.forget_disowned(a.session(), OWNER, time.monotonic() + 4)
    assert owned_by_a() == 0


def test_a_replica_handing_over_counts_a_registration_taken_once_the_successor_s_has_settled(
    zk, replica_factory, monkeypatch
):
    """The replica handing over need not wait for the successor's break: once each pod's other
    name has been listed for `settled`, its session may close, which deletes what the break would.
    It reads nothing new meanwhile. A successor's name that goes again (its pod went unready
    before the break) is awaited again."""
    a, b = replica_factory("a"), replica_factory("b")
    path = a.path
    a.lead()
    assert a.sync(wanted(3, "web")).applied == 3
    read: list[str] = []
    on_reads(monkeypatch, a.client, read.append)
    a.membership.names_only()
    b.lead()
    a.election.leave(timeout=4)
    eventually(lambda: (b.election.step(), b.election.writable)[1], 10, "b to lead")
    made = [Create(f"{uid}{ALTERNATE}", w.data, uid=uid, member=w.member) for uid, w in wanted(3, "web").items()]
    assert b.writer.apply({path: made}, b.election.node)[path].applied == 3  # the make, never the break

    def awaiting(settled: float) -> int:
        return a.membership.awaiting_successor(a.session(), OWNER, settled)

    eventually(lambda: awaiting(time.monotonic()) == 0, 5, "every other name listed")
    listed = time.monotonic()
    assert awaiting(listed - 60) == 3, "listed too recently for clients to have read them"
    b.writer.apply({path: [Delete(f"uid-2{ALTERNATE}", 0)]}, b.election.node)
    eventually(lambda: awaiting(time.monotonic()) == 1, 5, "uid-2's successor gone again")
    assert a.membership.count(path, lambda n: n.session == a.session()) == 3, "nothing of a's was deleted"
    assert read == []


def test_forgetting_disowned_znodes_ends_by_its_deadline_whatever_zookeeper_does(zk, replica_factory):
    a = replica_factory("a")
    a.lead()
    assert a.sync(wanted(3, "web")).applied == 3
    a.client.exists_async = lambda path, *args, **kwargs: a.client.handler.async_result()  # never answered
    started = time.monotonic()
    a.membership.forget_disowned(a.session(), OWNER, started + 0.5)
    assert time.monotonic() - started < 1.5
    assert a.membership.count(a.path, lambda n: n.session == a.session()) == 3


def test_a_standby_lists_a_path_at_most_once_per_interval_under_a_burst(zk, replica_factory):
    """A standby learns of each of the leader's writes by its children watch, and each event
    would list the whole path again: O(path) per pod event. Listings of one path are at least
    `membership.LIST_INTERVAL` apart, however many events come meanwhile, and the last event is
    always followed by a listing."""
    b = replica_factory("b")
    path = b.path
    listings: list[float] = []
    get_children_async = b.client.get_children_async
    b.client.get_children_async = lambda p, *args, **kwargs: (
        listings.append(time.monotonic()) or get_children_async(p, *args, **kwargs)
    )
    started = time.monotonic()
    for i in range(300):
        zk.create(f"{path}/m-{i}", b'{"name":"web","id":"m","address":"10.0.0.1","port":80}', ephemeral=True)
    elapsed = time.monotonic() - started
    eventually(lambda: len(b.membership.snapshot(path)) == 300, 10, "every member in the mirror")
    allowed = 2 + elapsed / membership.LIST_INTERVAL
    assert len(listings) <= allowed, f"{len(listings)} listings in {elapsed:.2f} s (at most {allowed:.0f})"


def test_a_refresh_never_brings_back_a_znode_that_a_later_listing_saw_go(zk, replica_factory, monkeypatch):
    """A refresh's listing is older than a listing that the watch sends while the refresh reads
    children: committing it would bring back what the newer one saw deleted."""
    a = replica_factory("a")
    path = a.path
    a.lead()
    a.membership.owner = OWNER  # as in app.py: a refresh does not read ours again
    assert a.sync(wanted(2, "web")).applied == 2
    zk.create(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"192.168.0.9","port":80}', ephemeral=True)
    eventually(lambda: a.membership.has(path, "vm-1"), 5, "the foreign member, which a refresh reads again")
    deleted: list[str] = []

    def deleting_first(p: str) -> None:
        if not deleted:  # meanwhile, someone deletes uid-0, and the watch's listing sees it go
            deleted.append(p)
            zk.delete(f"{path}/uid-0")
            eventually(lambda: not a.membership.has(path, "uid-0"), 5, "the watch's listing")

    on_reads(monkeypatch, a.client, deleting_first)
    a.membership.refresh(path)
    assert deleted and not a.membership.has(path, "uid-0")


def test_a_leader_writing_a_path_all_the_time_lists_it_once_per_after_write_interval(zk, replica_factory):
    """Each of our writes fires the path's children watch, and the mirror has applied the write
    already: listing the whole path again ten times a second is O(path) per pod event. A path we
    wrote lately is listed at most once per `after_write`; what others did meanwhile is not lost."""
    a = replica_factory("a")
    path = a.path
    a.lead()
    assert a.membership.after_write == membership.LIST_AFTER_WRITE
    listings: list[float] = []
    get_children_async = a.client.get_children_async
    a.client.get_children_async = lambda p, *args, **kwargs: (
        listings.append(time.monotonic()) or get_children_async(p, *args, **kwargs)
    )
    started, port = time.monotonic(), 1000
    while time.monotonic() - started < 2.5:  # an Update of 20 registrations, again and again
        port += 20
        assert a.sync(wanted(20, "web", port=port)).applied == 20
        if port == 1100:
            zk.create(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"192.168.0.9","port":80}', ephemeral=True)
    elapsed = time.monotonic() - started
    allowed = 2 + elapsed / membership.LIST_AFTER_WRITE
    assert len(listings) <= allowed, f"{len(listings)} listings in {elapsed:.2f} s (at most {allowed:.0f})"
    eventually(lambda: a.membership.has(path, "vm-1"), 10, "the member someone else added meanwhile")


def test_handing_over_sends_the_listings_that_wait_after_our_writes(zk, replica_factory):
    """A replica handing over learns only from listings that its own znodes are gone; one that
    waits `after_write` after its last write would delay the handover by as much."""
    a = replica_factory("a")
    path = a.path
    a.lead()
    a.membership.after_write = 60.0
    assert a.sync(wanted(3, "web")).applied == 3
    assert a.sync(wanted(3, "web", port=1000)).applied == 3  # its listing now waits 60 s
    a.membership.names_only()
    zk.delete(f"{path}/uid-1")  # as a successor does once it has registered the pod anew
    eventually(lambda: not a.membership.has(path, "uid-1"), 10, "the deletion seen well before 60 s")


def test_a_member_someone_else_adds_is_mirrored_within_seconds_while_we_keep_writing_the_path(zk, replica_factory):
    """A read of a new name sent before a transaction of ours and answered after it is stale only
    if that transaction touched the name: were every such read retried through a listing, a
    member added by someone else would never reach the mirror while we keep writing the path."""
    a = replica_factory("a")
    path = a.path
    a.lead()
    created: list[float] = []
    seen: list[float] = []
    started, port = time.monotonic(), 1000
    while (elapsed := time.monotonic() - started) < 6.0:  # an Update of 20 registrations, again and again
        port += 20
        a.sync(wanted(20, "web", port=port))
        if not created and elapsed > 0.5:
            zk.create(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"192.168.0.9","port":80}', ephemeral=True)
            created.append(elapsed)
        if created and not seen and a.membership.has(path, "vm-1"):
            seen.append(elapsed)
    assert created
    assert seen, "the foreign member never reached the mirror while we kept writing (6 s)"
    assert seen[0] - created[0] < 3 * membership.LIST_AFTER_WRITE, f"seen {seen[0] - created[0]:.2f} s after its create"


def test_a_standby_lists_a_large_path_less_often_under_a_burst(zk, replica_factory):
    """A listing costs O(path): a path of 2,000 children is listed at most once per
    2,000 * LIST_SECONDS_PER_CHILD seconds under a burst, so that listings cost a bounded share of
    a core whatever the path's size; the last event is still followed by a listing."""
    b = replica_factory("b")
    path = b.path
    data = b'{"name":"web","id":"m","address":"10.0.0.1","port":80}'
    for start in range(0, 2000, 100):  # in transactions of 100: quick
        transaction = zk.transaction()
        for i in range(start, start + 100):
            transaction.create(f"{path}/m-{i}", data, ephemeral=True)
        transaction.commit()
    eventually(lambda: len(b.membership.snapshot(path)) == 2000, 20, "2,000 members in the mirror")
    time.sleep(1.0)
    listings: list[float] = []
    get_children_async = b.client.get_children_async
    b.client.get_children_async = lambda p, *args, **kwargs: (
        listings.append(time.monotonic()) or get_children_async(p, *args, **kwargs)
    )
    started = time.monotonic()
    for i in range(2000, 2200):
        zk.create(f"{path}/m-{i}", data, ephemeral=True)
    elapsed = time.monotonic() - started
    eventually(lambda: len(b.membership.snapshot(path)) == 2200, 10, "every member in the mirror")
    interval = 2000 * membership.LIST_SECONDS_PER_CHILD
    allowed = 2 + elapsed / interval
    assert len(listings) <= allowed, f"{len(listings)} listings in {elapsed:.2f} s (at most {allowed:.0f})"


def test_a_round_of_version_checks_covers_every_path_once_a_few_at_a_time(zk, replica_factory, root, monkeypatch):
    """`verify` takes paths into its round as it goes: each call reads at most `limit` znodes, a
    hundred to a multiRead, and the round checks every registration of ours under every path
    exactly once."""
    replicas = [replica_factory(name, f"{root}/services/{name}") for name in ("a", "b", "c")]
    for replica in replicas:
        zk.ensure_path(replica.path)
        replica.lead()
        replica.membership.owner = OWNER
        assert replica.sync(wanted(7, "web")).applied == 7
    mirror = replicas[0].membership
    for replica in replicas[1:]:  # one mirror of the three paths, as a leader's is
        mirror.watch(replica.path)
        mirror.refresh(replica.path)
    monkeypatch.setattr(membership, "READ_BATCH", 2)
    read: list[list[str]] = []
    get_many = reads.get_many
    monkeypatch.setattr(reads, "get_many", lambda client, paths: read.append(list(paths)) or get_many(client, paths))
    exists_async = mirror.client.exists_async
    mirror.client.exists_async = lambda p, *args, **kwargs: pytest.fail(f"a stat of {p} alone")
    sent = [0]
    mirror.verify(5, start=True)
    while sum(map(len, read)) > sent[-1]:
        sent.append(sum(map(len, read)))
        mirror.verify(5)
    mirror.client.exists_async = exists_async
    assert max(b - a for a, b in itertools.pairwise(sent)) <= 5, f"reads per call: {sent}"
    assert max(map(len, read)) <= 2
    checked = [p for batch in read for p in batch]
    assert sorted(checked) == sorted(f"{r.path}/{name}" for r in replicas for name in zk.get_children(r.path))


def test_a_round_of_checks_finds_one_of_ours_replaced_in_place_by_another_session(zk, replica_factory):
    """A delete and a create of one name in one transaction changes no listing and leaves the
    version at 0, as ours was: only the owner that the check reads shows it, and the mirror reads
    the znode again."""
    a = replica_factory("a")
    path = a.path
    a.lead()
    a.membership.owner = OWNER
    assert a.sync(wanted(3, "web")).applied == 3
    name = "uid-1"
    data, stat = zk.get(f"{path}/{name}")
    assert stat.version == 0 and stat.ephemeralOwner == a.session()
    transaction = zk.transaction()
    transaction.delete(f"{path}/{name}")
    transaction.create(f"{path}/{name}", data, ephemeral=True)
    transaction.commit()
    a.membership.refresh(path)
    assert a.membership.snapshot(path)[name].session == a.session(), "a listing alone cannot see it"
    a.changed.clear()
    a.membership.verify(100, start=True)
    eventually(lambda: a.membership.snapshot(path)[name].session == zk.client_id[0], 5, "the mirror to read it again")
    assert a.changed.is_set()
    assert all(n.session == a.session() for k, n in a.membership.snapshot(path).items() if k != name)


def test_a_multiread_answers_each_path_in_order(zk, ensemble, root):
    """`reads.get_many` against a real server: data and stat of each znode, NoNodeError for one
    that is not there and NoAuthError for one we may not read, each in its place; through a
    chrooted client too. `reads.supported` finds that the ensemble answers."""
    zk.create(f"{root}/a", b"alpha")
    zk.create(f"{root}/b", b"")
    zk.create(f"{root}/secret", b"x", acl=[ACL(Permissions.CREATE, Id("world", "anyone"))])
    zk.set(f"{root}/b", b"beta")
    answers = reads.get_many(zk, [f"{root}/a", f"{root}/none", f"{root}/b", f"{root}/secret"]).get(timeout=10)
    assert answers[0] == zk.get(f"{root}/a")
    assert isinstance(answers[1], NoNodeError)
    assert answers[2][0] == b"beta" and answers[2][1].version == 1
    assert isinstance(answers[3], NoAuthError)
    zk.delete(f"{root}/secret")  # the parent's ACL allows it; a recursive delete would list it
    assert reads.supported(lambda: KazooClient(ensemble.connection_string, timeout=4.0), timeout=10)
    chrooted = KazooClient(ensemble.connection_string + root, timeout=4.0)
    chrooted.start(timeout=30)
    try:
        assert reads.get_many(chrooted, ["/a"]).get(timeout=10) == [zk.get(f"{root}/a")]
    finally:
        chrooted.stop()
        chrooted.close()



def test_a_mirror_reads_new_children_a_hundred_to_a_request(zk, replica_factory, monkeypatch):
    """Children new to the mirror (another writer's, or a successor's) are read in multiReads of
    `READ_BATCH`, by the watch's listings and by a refresh alike, never one request each; what
    they hold reaches the mirror all the same."""
    b = replica_factory("b")
    path = b.path
    batches: list[int] = []
    get_many = reads.get_many
    monkeypatch.setattr(reads, "get_many", lambda c, paths: batches.append(len(paths)) or get_many(c, paths))
    alone: list[str] = []  # recorded, not failed here: a read's callback runs on kazoo's thread
    get_async = b.client.get_async
    b.client.get_async = lambda p, *args, **kwargs: alone.append(p) or get_async(p, *args, **kwargs)
    data = b'{"name":"web","id":"m","address":"10.0.0.1","port":80}'
    transaction = zk.transaction()
    for i in range(250):
        transaction.create(f"{path}/m-{i}", data, ephemeral=True)
    transaction.commit()
    eventually(lambda: len(b.membership.snapshot(path)) == 250, 10, "250 members in the mirror")
    members = [node.member for node in b.membership.snapshot(path).values()]
    assert all(member is not None and member.address == "10.0.0.1" for member in members)
    assert max(batches) <= membership.READ_BATCH and sum(batches) >= 250 and len(batches) < 250
    assert alone == [], f"{len(alone)} children read one at a time"
    other = replica_factory("c")
    other.membership.owner = OWNER
    other_get_async = other.client.get_async
    other.client.get_async = lambda p, *args, **kwargs: alone.append(p) or other_get_async(p, *args, **kwargs)
    eventually(lambda: len(other.membership.snapshot(path)) == 250, 10, "250 members in the second mirror")
    batches.clear()
    other.membership.refresh(path)  # reads every child: none is ours
    assert len(other.membership.snapshot(path)) == 250 and alone == []
    assert batches and max(batches) <= membership.READ_BATCH and sum(batches) == 250
