"""Objects to model records, and the desired registrations they imply."""

from __future__ import annotations

import pytest

from zkregistry.inventory import Inventory
from zkregistry.model import Deployment, Pod, Registry, ReplicaSet, desired_instances, resolve_port


def pod_body(
    name: str, rs: str = "web-1", ready: bool = True, ip: str | None = "10.0.0.1", deleting: bool = False
) -> dict:
    meta = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "controller": True}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "n1", "containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {
            "podIP": ip,
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:01Z"}
            ],
        },
    }


def deployment_body(name: str = "web", registry: str | None = "reg", port: str | None = None) -> dict:
    annotations = {}
    if registry:
        annotations["zkregistry.io/registry"] = registry
    if port:
        annotations["zkregistry.io/port"] = port
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": "d-uid", "annotations": annotations},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9000}]}
                    ]
                }
            }
        },
    }


REGISTRY_BODY = {"metadata": {"name": "reg", "namespace": "ns", "uid": "r"}, "spec": {}}
REGISTRY = Registry.from_body(REGISTRY_BODY)


def test_registry_defaults():
    assert REGISTRY.service_name == "reg"
    assert REGISTRY.service_path == "/services/reg"
    assert REGISTRY.format == "curator"


def test_pod_readiness():
    assert Pod.from_body(pod_body("a")).serving
    assert not Pod.from_body(pod_body("a", ready=False)).serving
    assert not Pod.from_body(pod_body("a", deleting=True)).serving
    assert not Pod.from_body(pod_body("a", ip=None)).serving
    assert Pod.from_body(pod_body("a")).ready_since_ms == 1767225601000


def test_resolve_port():
    ports = (("http", 8080), ("admin", 9000))
    assert resolve_port(None, ports) == 8080
    assert resolve_port("admin", ports) == 9000
    assert resolve_port(7000, ports) == 7000
    assert resolve_port("7000", ports) == 7000
    assert resolve_port("grpc", ports) is None
    assert resolve_port(None, ()) is None


def test_desired_only_serving_pods_and_problems_isolated():
    good = Deployment.from_body(deployment_body("web"))
    bad = Deployment.from_body(deployment_body("api", port="grpc"))
    pods = {
        "web": [Pod.from_body(pod_body("a")), Pod.from_body(pod_body("b", ready=False))],
        "api": [Pod.from_body(pod_body("c", rs="api-1"))],
    }
    instances, problems = desired_instances(REGISTRY, [good, bad], pods)
    assert list(instances) == ["uid-a"]
    assert instances["uid-a"].port == 8080 and instances["uid-a"].deployment == "web"
    assert [p.reason for p in problems] == ["PortNotFound"] and problems[0].deployment == ("ns", "api")
    assert "grpc" in problems[0].message


@pytest.mark.parametrize("number", [0, 65536, 99999, -1, "0", "65536", "99999", "00", "-1"])
def test_resolve_port_refuses_numbers_outside_the_port_range(number):
    assert resolve_port(number, (("http", 8080),)) is None


def test_resolve_port_range_ends_and_non_ascii_digits():
    assert resolve_port(1, ()) == 1 and resolve_port("65535", ()) == 65535
    assert resolve_port("²", (("http", 8080),)) is None  # str.isdigit() says yes, int() refuses


@pytest.mark.parametrize("annotation", ["0", "99999", "65536", "-1"])
def test_annotation_port_outside_the_range_is_an_invalid_port(annotation):
    good = Deployment.from_body(deployment_body("web"))
    bad = Deployment.from_body(deployment_body("api", port=annotation))
    pods = {"web": [Pod.from_body(pod_body("a"))], "api": [Pod.from_body(pod_body("c", rs="api-1"))]}
    instances, problems = desired_instances(REGISTRY, [good, bad], pods)
    assert list(instances) == ["uid-a"] and instances["uid-a"].port == 8080  # the other is unaffected
    assert [(p.reason, p.deployment) for p in problems] == [("InvalidPort", ("ns", "api"))]
    message = problems[0].message
    assert "'api'" in message and repr(annotation) in message and "zkregistry.io/port" in message
    assert "1 to 65535" in message


@pytest.mark.parametrize("number", [0, 99999, "0", "99999"])
def test_spec_port_outside_the_range_is_an_invalid_port_for_every_deployment(number):
    meta = {"name": "reg", "namespace": "ns", "uid": "r"}
    registry = Registry.from_body({"metadata": meta, "spec": {"port": number}})
    web, api = Deployment.from_body(deployment_body("web")), Deployment.from_body(deployment_body("api"))
    overridden = Deployment.from_body(deployment_body("admin", port="admin"))  # its annotation wins
    pods = {
        "web": [Pod.from_body(pod_body("a"))],
        "api": [Pod.from_body(pod_body("c", rs="api-1"))],
        "admin": [Pod.from_body(pod_body("d", rs="admin-1"))],
    }
    instances, problems = desired_instances(registry, [web, api, overridden], pods)
    assert list(instances) == ["uid-d"] and instances["uid-d"].port == 9000
    invalid = [("InvalidPort", ("ns", "web")), ("InvalidPort", ("ns", "api"))]
    assert [(p.reason, p.deployment) for p in problems] == invalid
    assert all(repr(number) in p.message and "spec.port" in p.message and "'reg'" in p.message for p in problems)
    assert "'web'" in problems[0].message and "'api'" in problems[1].message


def test_inventory_follows_pod_to_registry_through_replicaset():
    changed: list[set] = []
    pods: list[tuple] = []
    inventory = Inventory(
        on_change=lambda keys: changed.append(set(keys)), on_pods=lambda key, uids: pods.append((key, uids))
    )
    inventory.put_registry(REGISTRY)
    inventory.put_deployment(Deployment.from_body(deployment_body("web")))
    inventory.put_replicaset(ReplicaSet("ns", "web-1", "web"))
    changed.clear()
    pods.clear()
    inventory.put_pod(Pod.from_body(pod_body("a")))
    # A pod event names its registry and that pod alone: no whole-registry change.
    assert pods == [(("ns", "reg"), {"uid-a"})] and changed == []
    assert list(inventory.desired(REGISTRY)[0]) == ["uid-a"]
    assert inventory.instance(REGISTRY, "uid-a") == inventory.desired(REGISTRY)[0]["uid-a"]
    # The Deployment opts out: the registry is told of its pod, and wants nothing.
    inventory.put_deployment(Deployment.from_body(deployment_body("web", registry=None)))
    assert pods[-1] == (("ns", "reg"), {"uid-a"}) and changed == []
    assert inventory.desired(REGISTRY)[0] == {} and inventory.instance(REGISTRY, "uid-a") is None
    inventory.remove_pod(("ns", "a"))
    assert inventory.instance(REGISTRY, "uid-a") is None


def test_a_status_only_change_of_a_registry_wakes_nothing():
    changed: list[set] = []
    inventory = Inventory(on_change=lambda keys: changed.append(set(keys)))
    inventory.put_registry(REGISTRY)
    changed.clear()
    with_status = Registry.from_body({**REGISTRY_BODY, "status": {"memberCount": 3}})
    inventory.put_registry(with_status)
    assert changed == []
    assert inventory.registry(REGISTRY.key).status == {"memberCount": 3}  # still stored, for the reporter


def test_orphaned_deployments():
    inventory = Inventory()
    inventory.put_deployment(Deployment.from_body(deployment_body("web", registry="missing")))
    assert [d.name for d in inventory.orphaned_deployments()] == ["web"]
    inventory.put_registry(Registry.from_body({"metadata": {"name": "missing", "namespace": "ns"}, "spec": {}}))
    assert inventory.orphaned_deployments() == []
