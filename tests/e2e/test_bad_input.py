"""Bad input gets a clear error where the user sees it, and disturbs nothing else."""

from __future__ import annotations

import time

import kubernetes
import pytest

from conftest import eventually
from kit import (
    annotate,
    apply_registry,
    create_deployment,
    events_for,
    get_registry,
    in_sync,
    registered,
)
from zkregistry import api


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"serviceName": ".."}, "serviceName must be one ZooKeeper path component"),
        ({"serviceName": "a/b"}, "serviceName must be one ZooKeeper path component"),
        ({"serviceName": "bad\u0007bell"}, "serviceName must be one ZooKeeper path component"),
        ({"serviceName": "x" * 300}, "spec.serviceName"),
        ({"basePath": "services"}, "basePath must be an absolute ZooKeeper path"),
        ({"basePath": "/a/../b"}, "basePath must be an absolute ZooKeeper path"),
        ({"basePath": "/zookeeper/quota"}, "reserves"),
        ({"port": 70000}, "port must be a number from 1 to 65535"),
        ({"port": 0}, "port must be a number from 1 to 65535"),
        ({"port": 99999}, "port must be a number from 1 to 65535"),
        ({"port": "0"}, "port must be a number from 1 to 65535"),  # digits are a number, not a name
        ({"port": "99999"}, "port must be a number from 1 to 65535"),
        ({"port": "123456789012345678901234567890"}, "spec.port"),
        ({"format": "xml"}, "spec.format"),
    ],
)
def test_invalid_registry_is_refused_by_kubectl_apply(cluster, namespace, tmp_path, spec, message):
    import json

    manifest = tmp_path / "bad.json"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": f"{api.GROUP}/{api.VERSION}",
                "kind": api.KIND,
                "metadata": {"name": "bad", "namespace": namespace},
                "spec": spec,
            }
        )
    )
    result = cluster.kubectl("apply", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("port", [1, 65535, "1", "08080", "65535", "http", "h2c-9"])
def test_valid_ports_are_accepted(kube_api, namespace, port):
    assert apply_registry(kube_api, namespace, "ok", port=port)["spec"]["port"] == port


def test_missing_registry_and_missing_port_warn_and_recover(kube_api, zk, namespace, replicas):
    replicas.start(1)
    apply_registry(kube_api, namespace, "web")
    create_deployment(kube_api, namespace, "good", replicas=2, registry="web")
    create_deployment(
        kube_api, namespace, "noport", replicas=1, registry="web", annotations={api.PORT_ANNOTATION: "grpc"}
    )
    create_deployment(kube_api, namespace, "lost", replicas=1, registry="nope")
    path = f"/{namespace}/web"
    good = in_sync(kube_api, zk, namespace, path, app="good", count=2)

    port_warning = eventually(
        lambda: events_for(kube_api, namespace, "noport", "PortNotFound"), 30, "PortNotFound Event"
    )
    assert port_warning[0].type == "Warning" and "grpc" in port_warning[0].message
    lost_warning = eventually(
        lambda: events_for(kube_api, namespace, "lost", "RegistryNotFound"), 30, "RegistryNotFound Event"
    )
    assert "nope" in lost_warning[0].message
    ready = eventually(
        lambda: next(
            (
                c
                for c in (get_registry(kube_api, namespace, "web").get("status") or {}).get("conditions", ())
                if c["type"] == "Ready" and c["reason"] == "PortNotFound"
            ),
            None,
        ),
        30,
        "Ready=False PortNotFound",
    )
    assert "noport" in ready["message"]
    assert registered(zk, path, namespace) == good  # nothing of the broken ones, the good one intact

    # Both recover by themselves once fixed.
    annotate(kube_api, namespace, "noport", api.PORT_ANNOTATION, "http")
    apply_registry(kube_api, namespace, "nope")
    eventually(lambda: len(registered(zk, path, namespace)) == 3, 30, "the fixed Deployment registered")
    eventually(lambda: len(registered(zk, f"/{namespace}/nope", namespace)) == 1, 30, "the orphan registered")


def test_two_registries_on_one_path(kube_api, zk, namespace, replicas):
    replicas.start(1)
    apply_registry(kube_api, namespace, "first", serviceName="shared")
    time.sleep(1.1)  # creationTimestamp has a resolution of one second: make "first" the older
    apply_registry(kube_api, namespace, "second", serviceName="shared")
    create_deployment(kube_api, namespace, "a", replicas=2, registry="first")
    create_deployment(kube_api, namespace, "b", replicas=1, registry="second")
    path = f"/{namespace}/shared"
    a = in_sync(kube_api, zk, namespace, path, app="a", count=2)

    def conflict():
        conditions = (get_registry(kube_api, namespace, "second").get("status") or {}).get("conditions") or ()
        return next((c for c in conditions if c["type"] == "PathConflict" and c["status"] == "True"), None)

    assert "first" in eventually(conflict, 30, "PathConflict on the later registry")["message"]
    # No flapping: through two full resyncs the path keeps exactly the first registry's pods.
    versions = {n: zk.get(f"{path}/{n}")[1].czxid for n in zk.get_children(path)}
    deadline = time.monotonic() + 11
    while time.monotonic() < deadline:
        assert registered(zk, path, namespace) == a
        time.sleep(0.5)
    assert {n: zk.get(f"{path}/{n}")[1].czxid for n in zk.get_children(path)} == versions


def test_kubectl_describe_shows_the_warning(cluster, kube_api, namespace, replicas):
    replicas.start(1)
    create_deployment(kube_api, namespace, "web", replicas=1, registry="missing")
    eventually(lambda: events_for(kube_api, namespace, "web", "RegistryNotFound"), 30, "the Warning")
    out = cluster.kubectl("describe", "deployment", "web", "-n", namespace).stdout
    assert "RegistryNotFound" in out and "missing" in out
    # The operator wrote nothing on the Deployment: no annotation, no finalizer of ours.
    body = kubernetes.client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)
    assert not body.metadata.finalizers
    assert not [k for k in (body.metadata.annotations or {}) if k.startswith("kopf.") or k == "zkregistry.io/last"]
