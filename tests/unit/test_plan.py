"""plan.calculate, exhaustively: whatever the mix of ours, theirs, stale and foreign znodes, the
plan reaches exactly the desired state and never touches a znode of another owner."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from zkregistry.formats import Member
from zkregistry.plan import ALTERNATE, Create, Delete, Node, Replace, Update, Wanted, calculate

OWNER, SESSION = "us", 7


def node(name: str, data: bytes, owner: str | None, session: int, uid: str | None = None, version: int = 0) -> Node:
    member = None if owner is None else Member(id=name, address="10.0.0.1", port=80, owner=owner, uid=uid or name)
    return Node(name=name, data=data, version=version, session=session, member=member)


SEQUENCE = itertools.count(1000)


def apply(actual: dict[str, Node], plan) -> dict[str, Node]:
    """What ZooKeeper would hold after the plan (the writer's effect, without I/O)."""
    result = dict(actual)
    for op in plan.ops:
        if isinstance(op, Delete | Replace):
            assert result[op.name].version == op.version
            del result[op.name]
        if isinstance(op, Update):
            old = result[op.name]
            assert old.version == op.version
            result[op.name] = Node(op.name, op.data, op.version + 1, old.session, old.member)
        create = op.new if isinstance(op, Replace) else op
        if isinstance(create, Create):
            name = f"{create.name}{next(SEQUENCE):010d}" if create.sequential else create.name
            assert name not in result, "create over an existing znode"
            uid = create.data.decode().split("|")[0]
            result[name] = node(name, create.data, OWNER, SESSION, uid=uid)
    return result


def test_creates_missing_and_deletes_stale():
    desired = {"a": Wanted("a", b"a|1"), "b": Wanted("b", b"b|1")}
    actual = {"b": node("b", b"b|1", OWNER, SESSION), "c": node("c", b"c|1", OWNER, SESSION)}
    plan = calculate(desired, actual, OWNER, SESSION)
    assert plan.ops == [Delete("c", 0), Create("a", b"a|1")]


def test_takes_over_another_sessions_znode_make_before_break():
    desired = {"a": Wanted("a", b"a|1")}
    actual = {"a": node("a", b"a|1", OWNER, session=3, version=2)}
    # First a registration of this session under the pod's other name; the old one stays ...
    make = calculate(desired, actual, OWNER, SESSION)
    assert make.ops == [Create("a" + ALTERNATE, b"a|1", uid="a")]
    # ... and goes only once the new one exists.
    after = apply(actual, make)
    assert calculate(desired, after, OWNER, SESSION).ops == [Delete("a", 2)]


def test_the_break_waits_until_the_new_registration_has_settled():
    desired = {"a": Wanted("a", b"a|1")}
    young = Node("a" + ALTERNATE, b"a|1", 0, SESSION, node("x", b"", OWNER, 0, uid="a").member, created=100.0)
    actual = {"a": node("a", b"a|1", OWNER, session=3, version=2), young.name: young}
    # Created at t=100: at t=100.5 (settled before 99.5) the old znode stays, at t=101.5 it goes.
    assert calculate(desired, actual, OWNER, SESSION, settled=99.5).ops == []
    assert calculate(desired, actual, OWNER, SESSION, settled=100.5).ops == [Delete("a", 2)]


def test_takeover_when_both_names_are_held_by_other_sessions_keeps_one_visible():
    desired = {"a": Wanted("a", b"a|1")}
    actual = {
        "a": node("a", b"a|1", OWNER, session=3, uid="a"),
        "a" + ALTERNATE: node("a" + ALTERNATE, b"a|1", OWNER, session=4, uid="a"),
    }
    plan = calculate(desired, actual, OWNER, SESSION)
    assert plan.ops == [Replace("a" + ALTERNATE, 0, Create("a" + ALTERNATE, b"a|1", uid="a"))]


def test_format_change_moves_a_registration_to_its_new_name_first():
    desired = {"p": Wanted("member_", b"p|2", sequential=True)}
    actual = {"p": node("p", b"p|1", OWNER, SESSION, uid="p")}  # the old format's name
    assert calculate(desired, actual, OWNER, SESSION).ops == [Create("member_", b"p|2", True, uid="p")]


def test_updates_data_in_place_within_the_session():
    desired = {"a": Wanted("a", b"a|2")}
    actual = {"a": node("a", b"a|1", OWNER, SESSION, version=4)}
    assert calculate(desired, actual, OWNER, SESSION).ops == [Update("a", 4, b"a|2")]


def test_never_touches_foreign_or_unparseable_znodes():
    desired = {"a": Wanted("a", b"a|1")}
    actual = {
        "a": node("a", b"theirs", "someone-else", 9),  # same name, other owner: a conflict
        "x": node("x", b"not json", None, 9),
        "y": node("y", b"{}", "someone-else", SESSION),
    }
    plan = calculate(desired, actual, OWNER, SESSION)
    assert plan.ops == [Create("a" + ALTERNATE, b"a|1", uid="a")]  # the pod's other name is free
    actual["a" + ALTERNATE] = node("a" + ALTERNATE, b"theirs", "someone-else", 9)
    plan = calculate(desired, actual, OWNER, SESSION)
    assert plan.ops == [] and plan.conflicts == ["a"]


def test_sequential_duplicates_keep_the_one_this_session_owns():
    desired = {"p": Wanted("member_", b"p|1", sequential=True)}
    actual = {
        "member_0000000001": node("member_0000000001", b"p|1", OWNER, 3, uid="p"),
        "member_0000000002": node("member_0000000002", b"p|1", OWNER, SESSION, uid="p"),
    }
    assert calculate(desired, actual, OWNER, SESSION).ops == [Delete("member_0000000001", 0)]


def test_nothing_to_do_is_an_empty_plan():
    desired = {"a": Wanted("a", b"a|1")}
    actual = {"a": node("a", b"a|1", OWNER, SESSION)}
    assert not calculate(desired, actual, OWNER, SESSION)


uids = st.sampled_from(list("abcdefgh"))
owners = st.sampled_from([OWNER, "other", None])
sessions = st.sampled_from([SESSION, 3, 9])


@st.composite
def scenarios(draw):
    sequential = draw(st.booleans())
    desired_uids = draw(st.sets(uids))
    version = draw(st.integers(0, 3))
    desired = {u: Wanted("member_" if sequential else u, f"{u}|{version}".encode(), sequential) for u in desired_uids}
    actual: dict[str, Node] = {}
    for i, (uid, owner, session, v) in enumerate(
        draw(st.lists(st.tuples(uids, owners, sessions, st.integers(0, 3)), max_size=12))
    ):
        name = f"member_{i:010d}" if sequential else uid + draw(st.sampled_from(["", ALTERNATE]))
        if name in actual:
            continue
        actual[name] = node(name, f"{uid}|{v}".encode(), owner, session, uid=uid, version=v)
    return desired, actual


@settings(max_examples=600, deadline=None)
@given(scenarios())
def test_plans_reach_desired_without_a_gap_and_spare_others(scenario):
    desired, actual = scenario
    foreign = {n: v for n, v in actual.items() if v.member is None or v.member.owner != OWNER}
    conflicts: set[str] = set()
    for _ in range(3):  # make, then break: converges in two rounds, the third finds nothing
        plan = calculate(desired, actual, OWNER, SESSION)
        touched = {op.name for op in plan.ops if not isinstance(op, Create)}
        assert not touched & set(foreign), "the plan touched a znode that is not ours"
        conflicts |= set(plan.conflicts)
        after = apply(actual, plan)
        # Make before break: a desired pod registered before a round is registered after it.
        for uid in desired:
            if registered(actual, uid):
                assert registered(after, uid), f"{uid} vanished within a round"
        actual = after
    assert not calculate(desired, actual, OWNER, SESSION), "not converged in two rounds"
    assert {n: v for n, v in actual.items() if n in foreign} == foreign
    ours = {n: v for n, v in actual.items() if n not in foreign}
    assert sorted(v.member.uid for v in ours.values()) == sorted(
        u for u in desired if desired[u].name not in conflicts or desired[u].sequential
    )
    for v in ours.values():
        assert v.session == SESSION and v.data == desired[v.member.uid].data


def registered(actual: dict[str, Node], uid: str) -> bool:
    return any(v.member is not None and v.member.owner == OWNER and v.member.uid == uid for v in actual.values())
