"""The observers' bookkeeping (tests/observers.py), fed by hand: no server, no process."""

from __future__ import annotations

import json

import pytest

from observers import (
    ChildrenTracker,
    DataTracker,
    Presence,
    curator_presence,
    describe,
    longest,
    total,
    uid_of,
)
from zkregistry.formats import codec
from zkregistry.model import Instance


def instance(uid: str) -> Instance:
    return Instance(
        id=uid, service="web", address="10.0.0.1", port=8080, namespace="ns", pod=f"web-{uid}",
        deployment="web", registration_ms=0,
    )


def curator(uid: str, owner: str = "ns") -> bytes:
    return codec("curator").encode(instance(uid), owner)


def serverset(uid: str, owner: str = "ns") -> bytes:
    return codec("serverset").encode(instance(uid), owner)


# -- Presence -------------------------------------------------------------------------------


def test_a_pod_that_never_leaves_is_never_missing():
    p = Presence()
    for t in range(5):
        p.update(t, {"a", "b"})
    assert p.missing() == {}
    assert p.first_seen == {"a": 0, "b": 0}


def test_an_absence_runs_from_the_first_snapshot_without_to_the_first_with():
    p = Presence()
    p.update(1.0, {"a", "b"})
    p.update(2.0, {"b"})
    p.update(2.5, set())
    p.update(3.0, {"a"})
    p.update(4.0, {"a", "b"})
    assert p.missing() == {"a": [(2.0, 3.0)], "b": [(2.5, 4.0)]}
    assert total(p.missing()) == pytest.approx(2.5) and longest(p.missing()) == pytest.approx(1.5)


def test_a_pod_is_tracked_only_from_when_it_is_first_seen():
    p = Presence()
    p.update(1.0, {"a"})
    p.update(2.0, {"a", "late"})
    assert p.missing() == {}
    assert p.never_seen({"a", "late", "ghost"}) == {"ghost"}
    assert p.missing({"ghost"}) == {}


def test_an_absence_that_has_not_ended_lasts_until_the_query():
    p = Presence()
    p.update(1.0, {"a"})
    p.update(2.0, set())
    assert p.missing() == {"a": [(2.0, 2.0)]}  # until the latest snapshot by default
    assert p.missing(until=5.0) == {"a": [(2.0, 5.0)]}


def test_absences_are_clipped_to_the_window():
    p = Presence()
    p.update(0.0, {"a"})
    p.update(1.0, set())
    p.update(2.0, {"a"})
    p.update(5.0, set())
    p.update(7.0, {"a"})
    assert p.missing(since=1.5) == {"a": [(1.5, 2.0), (5.0, 7.0)]}
    assert p.missing(since=2.5, until=6.0) == {"a": [(5.0, 6.0)]}
    assert p.missing(since=2.5, until=4.0) == {}
    assert p.missing(since=2.0, until=4.0) == {}  # one that ended as the window began is not in it


def test_an_absence_too_short_for_the_clock_still_counts():
    p = Presence()
    p.update(1.0, {"a"})
    p.update(2.0, set())
    p.update(2.0, {"a"})
    assert p.missing() == {"a": [(2.0, 2.0)]}
    assert "1 pod(s) missing in 1 interval(s)" in describe("x", p.missing(), p, [])


def test_missing_for_chosen_pods_only():
    p = Presence()
    p.update(1.0, {"a", "b"})
    p.update(2.0, set())
    p.update(3.0, {"a", "b"})
    assert set(p.missing(["b"])) == {"b"}


def test_blind_periods():
    p = Presence()
    p.update(1.0, {"a"})
    p.blinded(2.0)
    p.blinded(2.5)  # still the same period
    p.sighted(4.0)
    p.sighted(4.5)  # nothing to end
    p.blinded(6.0)
    assert p.blind == [(2.0, 4.0)]
    assert p.blind_periods(until=7.0) == [(2.0, 4.0), (6.0, 7.0)]
    assert "blind 2 time(s), 3000 ms" in describe("x", {}, p, p.blind_periods(7.0))


# -- formats --------------------------------------------------------------------------------


def test_uid_of_reads_either_format():
    assert uid_of("u1", curator("u1")) == "u1"
    assert uid_of("u1.1", curator("u1")) == "u1"  # an alternate name: the uid is in the data
    assert uid_of("member_0000000003", serverset("u2")) == "u2"


def test_uid_of_anything_else_is_none():
    vm = {"name": "web", "id": "vm-1", "address": "192.168.7.7", "port": 1, "payload": {"owner": "someone-else"}}
    assert uid_of("vm-1", json.dumps(vm).encode()) is None
    assert uid_of("garbage", b"\xff not json") is None


# -- what a children watch sees -------------------------------------------------------------


def test_children_replaced_under_the_same_name_are_invisible_to_a_children_watch():
    data = {"u1": curator("u1"), "u2": curator("u2")}
    reads = []

    def resolve(name):
        reads.append(name)
        return uid_of(name, data[name])

    tracker = ChildrenTracker()
    tracker.listed(1.0, ["u1", "u2"], resolve)
    tracker.listed(2.0, ["u1", "u2"], resolve)  # delete + create of both, in one multi
    assert tracker.presence.missing() == {}
    assert reads == ["u1", "u2"]  # each name is read once


def test_make_before_break_under_an_alternate_name_keeps_the_pod_for_a_children_watch():
    data = {"u1": curator("u1"), "u1.1": curator("u1")}
    tracker = ChildrenTracker()
    resolve = lambda name: uid_of(name, data[name])  # noqa: E731
    tracker.listed(1.0, ["u1"], resolve)
    tracker.listed(2.0, ["u1", "u1.1"], resolve)  # the successor's create
    tracker.listed(3.0, ["u1.1"], resolve)  # then the old znode's delete
    assert tracker.presence.missing() == {}
    assert tracker.presence.present == {"u1"}


def test_break_before_make_is_a_gap_for_a_children_watch():
    data = {"member_0000000001": serverset("u1"), "member_0000000002": serverset("u1")}
    tracker = ChildrenTracker()
    resolve = lambda name: uid_of(name, data[name])  # noqa: E731
    tracker.listed(1.0, ["member_0000000001"], resolve)
    tracker.listed(2.0, [], resolve)
    tracker.listed(2.1, ["member_0000000002"], resolve)
    assert tracker.presence.missing() == {"u1": [(2.0, 2.1)]}


def test_a_child_gone_before_it_is_read_is_left_out_and_read_again_later():
    tracker = ChildrenTracker()
    calls = []

    def gone(name):
        calls.append(name)
        raise LookupError(name)

    tracker.listed(1.0, ["u1"], gone)
    assert tracker.uids == {} and tracker.presence.present == set()
    tracker.listed(2.0, ["u1"], lambda name: "u1")
    assert tracker.presence.present == {"u1"} and calls == ["u1"]


def test_a_foreign_child_is_read_once_and_counts_for_no_pod():
    tracker = ChildrenTracker()
    calls = []

    def resolve(name):
        calls.append(name)
        return None

    tracker.listed(1.0, ["vm-1"], resolve)
    tracker.listed(2.0, ["vm-1"], resolve)
    assert calls == ["vm-1"] and tracker.presence.present == set()


# -- what a data watch per child sees -------------------------------------------------------


def reader(data: dict[str, bytes]):
    """A `resolve` that reads `data` (a name absent from it is a znode already gone)."""

    def resolve(name: str) -> str | None:
        if name not in data:
            raise LookupError(name)
        return uid_of(name, data[name])

    return resolve


def test_delete_and_create_of_the_same_name_is_a_gap_for_a_data_watch():
    tracker = DataTracker()
    tracker.listed(1.0, ["u1"], reader({"u1": curator("u1")}))
    # One multi deletes and creates u1: NodeDeleted comes first; the observer reads u1 again and
    # finds the new one; the children listing that follows shows the same name.
    tracker.deleted(2.0, "u1")
    tracker.read(2.004, "u1", "u1")
    tracker.listed(2.005, ["u1"], reader({}))  # a known name is not read again
    assert tracker.presence.missing() == {"u1": [(2.0, 2.004)]}


def test_make_before_break_is_no_gap_for_a_data_watch():
    tracker = DataTracker()
    data = {"u1": curator("u1"), "u1.1": curator("u1")}
    tracker.listed(1.0, ["u1"], reader(data))
    tracker.listed(2.0, ["u1", "u1.1"], reader(data))  # the create's children event
    tracker.deleted(2.01, "u1")  # then the old znode's NodeDeleted
    tracker.listed(2.011, ["u1.1"], reader(data))
    assert tracker.presence.missing() == {}
    assert tracker.nodes == {"u1.1": "u1"}


def test_a_listing_and_the_reads_of_its_new_names_are_one_step():
    """The children event of the creates is handled after the deletes happened: the listing no
    longer has the old names and has the new ones, which are read before the view changes."""
    tracker = DataTracker()
    old = {f"u{i}": curator(f"u{i}") for i in range(3)}
    new = {f"u{i}.1": curator(f"u{i}") for i in range(3)}
    tracker.listed(1.0, list(old), reader(old))
    tracker.listed(2.0, list(new), reader(new))
    for name in old:  # the deletes' NodeDeleted events, queued behind the children event
        tracker.deleted(2.1, name)
    assert tracker.presence.missing() == {}


def test_a_delete_seen_before_the_create_is_a_gap_even_in_one_multi():
    """A multi of [delete old, create new]: NodeDeleted(old) comes before the children event that
    reveals the new name."""
    tracker = DataTracker()
    data = {"member_0000000001": serverset("u1"), "member_0000000002": serverset("u1")}
    tracker.listed(1.0, ["member_0000000001"], reader(data))
    tracker.deleted(2.0, "member_0000000001")
    tracker.deleted(2.001, "member_0000000001")  # the read that followed found nothing
    tracker.listed(2.003, ["member_0000000002"], reader(data))
    assert tracker.presence.missing() == {"u1": [(2.0, 2.003)]}


def test_a_listing_forgets_znodes_that_it_no_longer_holds():
    tracker = DataTracker()
    tracker.listed(1.0, ["a", "b"], reader({"a": curator("ua"), "b": curator("ub")}))
    tracker.listed(2.0, ["a", "c"], reader({}))  # c is already gone when it is read
    assert tracker.presence.missing() == {"ub": [(2.0, 2.0)]}
    assert tracker.nodes == {"a": "ua"}


# -- what Curator's ServiceCache reported ---------------------------------------------------


def test_curator_lines():
    lines = [
        {"event": "initial", "t": 1000, "ids": ["u1", "u2"]},
        {"event": "changed", "t": 1500, "ids": ["u2"]},
        {"event": "changed", "t": 1560, "ids": ["u1", "u1", "u2"]},  # both znodes of u1, for a moment
        {"event": "state", "t": 2000, "state": "SUSPENDED"},
        {"event": "state", "t": 2600, "state": "RECONNECTED"},
        {"event": "changed", "t": 3000, "ids": ["u1"]},
    ]
    p = curator_presence(lines)
    assert p.missing(until=4.0) == {"u1": [(1.5, 1.56)], "u2": [(3.0, 4.0)]}
    assert p.blind == [(2.0, 2.6)]
    assert p.updates == 4
