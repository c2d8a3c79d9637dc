"""status.compute: members from ZooKeeper, exact counts, a capped list, conditions."""

from __future__ import annotations

from dataclasses import replace

from zkregistry import status
from zkregistry.formats import curator
from zkregistry.model import Instance, Problem, Registry
from zkregistry.plan import Node

REGISTRY = Registry.from_body({"metadata": {"name": "reg", "namespace": "ns", "generation": 3}, "spec": {}})


def ours(i: int) -> Node:
    instance = Instance(f"uid-{i}", "reg", f"10.0.0.{i % 250}", 80, "ns", f"pod-{i:05d}", "web", 0)
    data = curator.CODEC.encode(instance, "us")
    return Node(instance.id, data, 0, 1, curator.CODEC.decode(instance.id, data))


def observe(nodes, **kwargs) -> dict:
    o = status.Observation(
        registry=REGISTRY,
        nodes=nodes,
        ready_pods=kwargs.pop("ready", len(nodes)),
        owner="us",
        leader="r0",
        **kwargs,
    )
    return status.compute(o, "2026-01-01T00:00:00Z")


def test_in_sync_with_external_and_unparseable_members():
    external = Node("vm-1", b'{"name":"reg","id":"vm-1","address":"192.168.1.5","port":9}', 0, 5, None)
    external = Node("vm-1", external.data, 0, 5, curator.CODEC.decode("vm-1", external.data))
    junk = Node("junk", b"\xff\xfe", 0, 5, None)
    s = observe({"uid-1": ours(1), "vm-1": external, "junk": junk}, ready=1)
    assert s["memberCount"] == 3 and s["readyPods"] == 1 and s["leader"] == "r0"
    assert [m["source"] for m in s["members"]] == ["kubernetes", "external", "external"]
    assert s["members"][0]["pod"] == "pod-00001"
    assert any(m.get("error") for m in s["members"])
    ready = next(c for c in s["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 3
    assert s["observedGeneration"] == 3


def test_large_services_are_capped_but_counted_exactly():
    nodes = {n.name: n for n in map(ours, range(5000))}
    s = observe(nodes)
    assert s["memberCount"] == 5000 and len(s["members"]) == status.MAX_MEMBERS
    truncated = next(c for c in s["conditions"] if c["type"] == "MembersTruncated")
    assert truncated["status"] == "True" and "200 of 5000" in truncated["message"]


def test_conditions_say_what_is_wrong():
    other = Registry.from_body({"metadata": {"name": "first", "namespace": "x"}, "spec": {"serviceName": "reg"}})
    s = observe({}, ready=0, conflict_with=other)
    assert {c["type"]: c["reason"] for c in s["conditions"]}["PathConflict"] == "PathClaimed"
    s = observe({}, ready=2)
    assert next(c for c in s["conditions"] if c["type"] == "Ready")["reason"] == "Registering"
    s = observe({}, ready=0, problems=[Problem(("ns", "web"), "PortNotFound", "no port")])
    assert next(c for c in s["conditions"] if c["type"] == "Ready")["reason"] == "PortNotFound"


def test_transition_time_kept_while_status_unchanged():
    o = status.Observation(registry=REGISTRY, nodes={}, ready_pods=0, owner="us", leader="r0")
    first = status.compute(o, "2026-01-01T00:00:00Z")
    second = status.compute(o, "2026-01-02T00:00:00Z", previous=first)
    beats = [c.pop("lastHeartbeatTime", None) for c in (*first["conditions"], *second["conditions"])]
    assert second["conditions"] == first["conditions"]
    # Only the Leader condition has a heartbeat, and it is the time of each write.
    assert [b for b in beats if b] == ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]


def test_heartbeat_age_says_how_fresh_a_status_is():
    import datetime as dt

    o = status.Observation(registry=REGISTRY, nodes={}, ready_pods=0, owner="us", leader="r0")
    written = status.compute(o, "2026-01-01T00:00:00Z")
    at = dt.datetime(2026, 1, 1, 0, 2, tzinfo=dt.UTC)
    assert status.heartbeat_age(written, "2025-12-01T00:00:00Z", at) == 120
    # Never written by any leader: as old as the object.
    assert status.heartbeat_age({}, "2026-01-01T00:01:00Z", at) == 60


def test_capped_members_are_the_first_of_the_whole_order():
    foreign = {f"vm-{i}": Node(f"vm-{i}", b"", 0, 5, replace(ours(i).member, owner="them")) for i in range(150)}
    junk = {f"junk-{i}": Node(f"junk-{i}", b"\xff", 0, 5, None) for i in range(50)}
    nodes = {**foreign, **junk, **{n.name: n for n in map(ours, reversed(range(300)))}}
    whole = status.members(nodes, "us")
    assert status.members(nodes, "us", 200) == whole[:200]
    assert [m["source"] for m in whole].count("kubernetes") == 300 == status.count_ours(nodes, "us")
    assert [m["pod"] for m in whole[:3]] == ["pod-00000", "pod-00001", "pod-00002"]
    assert {m["source"] for m in whole[300:]} == {"external"}
