"""Per-registry settings (additionalPorts, metadata, address, drainTerminating): from the object's
spec to the desired registrations, and through the codecs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zkregistry.formats import curator, serverset
from zkregistry.model import Deployment, Pod, Registry, desired_instances, node_zone

PORTS = [
    {"name": "http", "containerPort": 8080, "hostPort": 30080},
    {"name": "admin", "containerPort": 9000},
    {"name": "grpc", "containerPort": 7000, "hostPort": 30070},
    {"containerPort": 6000},
]


def registry(**spec) -> Registry:
    return Registry.from_body({"metadata": {"name": "reg", "namespace": "ns", "uid": "r"}, "spec": spec})


def deployment(ports=PORTS, port=None) -> Deployment:
    annotations = {"zkregistry.io/registry": "reg"} | ({"zkregistry.io/port": port} if port else {})
    return Deployment.from_body({
        "metadata": {"name": "web", "namespace": "ns", "uid": "d", "annotations": annotations},
        "spec": {"template": {"spec": {"containers": [{"ports": ports}]}}},
    })


def pod(name="a", ports=PORTS, ready=True, deleting=False, labels=None, node="n1", host_ip="192.168.0.1") -> Pod:
    meta = {
        "name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels or {},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": True}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:05Z"
    return Pod.from_body({
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"ports": ports}]},
        "status": {
            "podIP": "10.0.0.1", "hostIP": host_ip,
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:01Z"},
            ],
        },
    })


def desired(reg: Registry, pods, dep=None, zones=None):
    return desired_instances(reg, [dep or deployment()], {"web": pods}, zones)


def test_defaults_when_the_spec_omits_them():
    reg = registry()
    assert reg.additional_ports == ("*",) and reg.pod_labels == () and not reg.zone
    assert reg.address == "PodIP" and not reg.drain_terminating


def test_settings_from_the_spec():
    reg = registry(
        port="grpc", additionalPorts=["admin"], metadata={"podLabels": ["version"], "zone": True},
        address="HostIP", drainTerminating=True,
    )
    assert (reg.port, reg.additional_ports, reg.pod_labels, reg.zone) == ("grpc", ("admin",), ("version",), True)
    assert reg.address == "HostIP" and reg.drain_terminating


def test_every_named_port_is_an_endpoint_by_default():
    instances, problems = desired(registry(), [pod()])
    assert problems == []
    instance = instances["uid-a"]
    assert (instance.address, instance.port) == ("10.0.0.1", 8080)
    assert instance.endpoints == (("admin", 9000), ("grpc", 7000), ("http", 8080))  # unnamed 6000 has no name


@pytest.mark.parametrize(
    ("listed", "expected"),
    [(["admin"], (("admin", 9000),)), ([], ()), (["admin", "metrics"], (("admin", 9000),))],
)
def test_listed_ports_only(listed, expected):
    assert desired(registry(additionalPorts=listed), [pod()])[0]["uid-a"].endpoints == expected


def test_metadata_from_pod_labels_and_the_nodes_zone():
    reg = registry(metadata={"podLabels": ["version", "app.kubernetes.io/part-of", "missing"], "zone": True})
    pods = [
        pod("a", labels={"version": "1.2", "app.kubernetes.io/part-of": "shop", "other": "x"}, node="n1"),
        pod("b", labels={"version": "1.3"}, node="n2"),
        pod("c", node="n3"),  # a node that the zones mapping does not know
    ]
    instances, _ = desired(reg, pods, zones={"n1": "eu-1a", "n2": "eu-1b"})
    assert instances["uid-a"].metadata == (("app.kubernetes.io/part-of", "shop"), ("version", "1.2"), ("zone", "eu-1a"))
    assert instances["uid-b"].metadata == (("version", "1.3"), ("zone", "eu-1b"))
    assert instances["uid-c"].metadata == ()


def test_node_zone():
    assert node_zone({"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "eu-1a"}}}) == "eu-1a"
    assert node_zone({"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": ""}}}) is None
    assert node_zone({"metadata": {"name": "n1"}}) is None


def test_zone_wins_over_a_pod_label_of_that_name_and_needs_the_setting():
    labels, zones = {"zone": "from-pod"}, {"n1": "z"}
    both = registry(metadata={"podLabels": ["zone"], "zone": True})
    assert desired(both, [pod(labels=labels)], zones=zones)[0]["uid-a"].metadata == (("zone", "z"),)
    assert desired(registry(), [pod(labels=labels)], zones=zones)[0]["uid-a"].metadata == ()


def test_host_ip_uses_the_nodes_address_and_host_ports():
    instances, problems = desired(registry(address="HostIP"), [pod()])
    assert problems == []
    instance = instances["uid-a"]
    assert (instance.address, instance.port) == ("192.168.0.1", 30080)
    assert instance.endpoints == (("grpc", 30070), ("http", 30080))  # admin has no hostPort: unreachable


def test_host_ip_without_a_host_port_is_a_problem():
    instances, problems = desired(registry(address="HostIP", port="admin"), [pod()])
    assert instances == {}
    assert [(p.reason, p.deployment) for p in problems] == [("HostPortNotFound", ("ns", "web"))]
    assert "9000" in problems[0].message and "hostPort" in problems[0].message
    # The Deployment's annotation picks another port: that one has a hostPort.
    instances, problems = desired(registry(address="HostIP", port="admin"), [pod()], dep=deployment(port="grpc"))
    assert problems == [] and instances["uid-a"].port == 30070


def test_host_ip_skips_an_older_pod_without_the_host_port():
    old = pod("old", ports=[{"name": "http", "containerPort": 8080}])
    unscheduled = pod("new", host_ip=None)
    instances, problems = desired(registry(address="HostIP"), [pod(), old, unscheduled])
    assert list(instances) == ["uid-a"] and problems == []


def test_terminating_pods_are_removed_unless_drained():
    pods = [pod("a"), pod("b", deleting=True), pod("c", deleting=True, ready=False)]
    assert list(desired(registry(), pods)[0]) == ["uid-a"]
    instances, _ = desired(registry(drainTerminating=True), pods)
    assert sorted(instances) == ["uid-a", "uid-b"]  # c no longer serves: gone
    assert instances["uid-a"].enabled and not instances["uid-b"].enabled


def test_draining_reaches_the_codecs():
    instance = desired(registry(drainTerminating=True), [pod("b", deleting=True)])[0]["uid-b"]
    assert json.loads(curator.CODEC.encode(instance, "o"))["enabled"] is False
    assert json.loads(serverset.CODEC.encode(instance, "o"))["status"] == "STOPPING"
    assert not curator.CODEC.decode("uid-b", curator.CODEC.encode(instance, "o")).enabled


def test_settings_reach_the_codecs():
    reg = registry(additionalPorts=["admin"], metadata={"podLabels": ["version"]})
    instance = desired(reg, [pod(labels={"version": "2"})])[0]["uid-a"]
    payload = json.loads(curator.CODEC.encode(instance, "o"))["payload"]
    assert payload["metadata"] == {"version": "2"} and payload["ports"] == {"admin": 9000}
    document = json.loads(serverset.CODEC.encode(instance, "o"))
    assert document["metadata"] == {"version": "2"}
    assert document["additionalEndpoints"] == {"admin": {"host": "10.0.0.1", "port": 9000}}


def test_instances_compare_by_value_so_unchanged_pods_are_not_re_encoded():
    reg = registry(metadata={"podLabels": ["version"], "zone": True})
    first = desired(reg, [pod(labels={"version": "1"})], zones={"n1": "z"})[0]
    again = desired(reg, [pod(labels={"version": "1"})], zones={"n1": "z"})[0]
    assert first == again and hash(first["uid-a"]) == hash(again["uid-a"])
    relabelled = desired(reg, [pod(labels={"version": "2"})], zones={"n1": "z"})[0]
    assert relabelled["uid-a"] != first["uid-a"]


port_names = st.sampled_from(["http", "admin", "grpc", "metrics", ""])
port_specs = st.lists(
    st.fixed_dictionaries(
        {"name": port_names, "containerPort": st.integers(1, 65535)},
        optional={"hostPort": st.integers(1, 65535)},
    ),
    min_size=1, max_size=5,
)


@given(
    ports=port_specs,
    listed=st.one_of(st.just(["*"]), st.lists(port_names.filter(bool), unique=True)),
    address=st.sampled_from(["PodIP", "HostIP"]),
    drain=st.booleans(),
    deleting=st.booleans(),
)
def test_properties(ports, listed, address, drain, deleting):
    reg = registry(additionalPorts=listed, address=address, drainTerminating=drain)
    p = pod(ports=ports, deleting=deleting)
    instances, problems = desired(reg, [p], dep=deployment(ports=ports))
    assert len(instances) + len(problems) <= 1
    for instance in instances.values():
        assert instance.enabled == (not deleting) and (drain or not deleting)
        named = {name for name, _ in p.ports if name}
        assert {name for name, _ in instance.endpoints} <= (named if "*" in listed else named & set(listed))
        reachable = {host for _, host in p.host_ports} if address == "HostIP" else {n for _, n in p.ports}
        assert instance.port in reachable and {port for _, port in instance.endpoints} <= reachable
        assert instance.address == ("192.168.0.1" if address == "HostIP" else "10.0.0.1")
