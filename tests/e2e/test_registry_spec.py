"""The spec fields on the real API server: the schema's defaults, and its validation of
additionalPorts, metadata, address and drainTerminating."""

from __future__ import annotations

import kubernetes
import pytest

from kit import apply_registry, get_registry


def test_defaults_are_filled_in_by_the_schema(kube_api, namespace):
    apply_registry(kube_api, namespace, "plain")
    spec = get_registry(kube_api, namespace, "plain")["spec"]
    assert spec["additionalPorts"] == ["*"]
    assert spec["metadata"] == {"zone": False}
    assert spec["address"] == "PodIP" and spec["drainTerminating"] is False


def test_settings_are_accepted(kube_api, namespace):
    apply_registry(
        kube_api,
        namespace,
        "full",
        additionalPorts=["admin", "metrics"],
        metadata={"podLabels": ["version", "app.kubernetes.io/version"], "zone": True},
        address="HostIP",
        drainTerminating=True,
    )
    spec = get_registry(kube_api, namespace, "full")["spec"]
    assert spec["additionalPorts"] == ["admin", "metrics"] and spec["metadata"]["zone"] is True
    assert spec["address"] == "HostIP" and spec["drainTerminating"] is True


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"additionalPorts": ["*", "admin"]}, "cannot be combined"),
        ({"additionalPorts": ["Admin_Port"]}, "additionalPorts must be container port names"),
        ({"additionalPorts": ["admin", "admin"]}, "Duplicate value"),
        ({"metadata": {"podLabels": ["not a label!"]}}, "podLabels must be label keys"),
        ({"metadata": {"zone": "yes"}}, "zone"),
        ({"address": "NodeIP"}, "Unsupported value"),
        ({"drainTerminating": "true"}, "drainTerminating"),
    ],
)
def test_invalid_settings_are_refused(kube_api, namespace, spec, message):
    with pytest.raises(kubernetes.client.ApiException) as refused:
        apply_registry(kube_api, namespace, "bad", **spec)
    assert refused.value.status == 422 and message in refused.value.body


def test_serverset_with_endpoints_labels_and_zone(cluster, kube_api, zk, namespace, replicas):
    """The settings reach ZooKeeper: serverset members with every named port as an additional
    endpoint, and the pod's label and its node's zone as metadata."""
    from conftest import eventually
    from kit import create_deployment, ready_pods, znodes

    nodes = cluster.kubectl("get", "nodes", "-o", "name").stdout.split()
    for i, node in enumerate(nodes):
        cluster.kubectl("label", node, f"topology.kubernetes.io/zone=zone-{i}", "--overwrite")
    replicas.start(1)
    apply_registry(kube_api, namespace, "web", format="serverset", metadata={"podLabels": ["app"], "zone": True})
    create_deployment(kube_api, namespace, "web", replicas=2, registry="web", ports=(("http", 8080), ("admin", 9000)))
    path = f"/{namespace}/web"

    def members():
        pods = ready_pods(kube_api, namespace, "web")
        found = {n: v for n, v in znodes(zk, path).items() if isinstance(v, dict)}
        return found if len(pods) == 2 and len(found) == 2 else None

    found = eventually(members, 60, "two serverset members")
    pods = ready_pods(kube_api, namespace, "web")
    for name, member in found.items():
        assert name.startswith("member_")
        assert member["status"] == "ALIVE" and member["serviceEndpoint"]["port"] == 8080
        assert member["serviceEndpoint"]["host"] in pods.values()
        assert {k: v["port"] for k, v in member["additionalEndpoints"].items()} == {"http": 8080, "admin": 9000}
        assert member["metadata"]["app"] == "web"
        assert member["metadata"]["zone"].startswith("zone-")
