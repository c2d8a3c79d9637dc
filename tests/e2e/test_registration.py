"""End to end: Ready pods of annotated Deployments become ZooKeeper registrations, and
what ZooKeeper holds becomes the ServiceRegistry's status."""

from __future__ import annotations

import json
import time

import kubernetes
import pytest

from conftest import eventually
from kit import (
    annotate,
    apply_registry,
    create_deployment,
    delete_registry,
    get_registry,
    in_sync,
    patch_deployment,
    registered,
    registry_exists,
    scale,
    set_pod_ready,
    znodes,
)
from zkregistry import api


@pytest.mark.parametrize("replica_count", [1, 3])
def test_ready_pods_are_registered_and_reported(kube_api, zk, namespace, replicas, cluster, replica_count):
    replicas.start(replica_count)
    apply_registry(kube_api, namespace, "web", port="http")
    create_deployment(kube_api, namespace, "web", replicas=3, registry="web")
    path = f"/{namespace}/web"
    pods = in_sync(kube_api, zk, namespace, path, count=3)

    node = znodes(zk, path)[next(iter(pods))]
    assert node["name"] == "web" and node["port"] == 8080 and node["serviceType"] == "DYNAMIC"
    assert node["payload"]["namespace"] == namespace and node["payload"]["deployment"] == "web"
    assert node["address"] == pods[node["id"]]
    assert zk.get(f"{path}/{node['id']}")[1].ephemeralOwner != 0

    leader = replicas.wait_leader()

    def reported():
        s = get_registry(kube_api, namespace, "web").get("status") or {}
        return s if s.get("memberCount") == 3 and s.get("readyPods") == 3 else None

    status = eventually(reported, 30, "status with 3 members")
    assert status["leader"] == leader.name and status["servicePath"] == path
    assert {m["id"] for m in status["members"]} == set(pods)
    assert all(m["source"] == "kubernetes" for m in status["members"])
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
    registry = get_registry(kube_api, namespace, "web")
    assert api.FINALIZER in registry["metadata"]["finalizers"]

    table = cluster.kubectl("get", "serviceregistries", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "SERVICE", "MEMBERS", "READY", "ADMITTED", "LEADER", "AGE"]
    assert row.split()[:6] == ["web", path, "3", "3", "True", leader.name]


def test_readiness_scaling_and_rollout_are_followed(kube_api, zk, namespace, replicas):
    replicas.start(1)
    apply_registry(kube_api, namespace, "web")
    create_deployment(kube_api, namespace, "web", replicas=3, registry="web")
    path = f"/{namespace}/web"
    in_sync(kube_api, zk, namespace, path, count=3)
    core = kubernetes.client.CoreV1Api(kube_api)
    pod = core.list_namespaced_pod(namespace, label_selector="app=web").items[0]

    set_pod_ready(kube_api, namespace, pod.metadata.name, False)
    eventually(lambda: pod.metadata.uid not in registered(zk, path, namespace), 30, "not-Ready pod deregistered")
    set_pod_ready(kube_api, namespace, pod.metadata.name, True)
    eventually(lambda: pod.metadata.uid in registered(zk, path, namespace), 30, "Ready pod registered again")

    core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
    in_sync(kube_api, zk, namespace, path, count=3)
    assert pod.metadata.uid not in registered(zk, path, namespace)

    scale(kube_api, namespace, "web", 5)
    in_sync(kube_api, zk, namespace, path, count=5)
    scale(kube_api, namespace, "web", 2)
    in_sync(kube_api, zk, namespace, path, count=2)

    # A rolling update replaces every pod; ZooKeeper follows it exactly.
    old = set(registered(zk, path, namespace))
    patch_deployment(
        kube_api, namespace, "web", {"spec": {"template": {"metadata": {"labels": {"app": "web", "rev": "2"}}}}}
    )
    pods = eventually(
        lambda: (p := in_sync(kube_api, zk, namespace, path, count=2)) and not (set(p) & old) and p,
        60,
        "the rollout to finish in ZooKeeper",
    )
    assert registered(zk, path, namespace) == pods


def test_opt_out_move_and_deletion(kube_api, zk, namespace, replicas):
    replicas.start(1)
    apply_registry(kube_api, namespace, "a")
    apply_registry(kube_api, namespace, "b")
    create_deployment(kube_api, namespace, "web", replicas=2, registry="a")
    path_a, path_b = f"/{namespace}/a", f"/{namespace}/b"
    in_sync(kube_api, zk, namespace, path_a, count=2)

    annotate(kube_api, namespace, "web", api.REGISTRY_ANNOTATION, "b")  # moved to another registry
    in_sync(kube_api, zk, namespace, path_b, count=2)
    eventually(lambda: registered(zk, path_a, namespace) == {}, 30, "registrations to leave a")

    annotate(kube_api, namespace, "web", api.REGISTRY_ANNOTATION, None)  # opted out
    eventually(lambda: registered(zk, path_b, namespace) == {}, 30, "registrations to go on opt-out")

    annotate(kube_api, namespace, "web", api.REGISTRY_ANNOTATION, "b")
    in_sync(kube_api, zk, namespace, path_b, count=2)
    kubernetes.client.AppsV1Api(kube_api).delete_namespaced_deployment("web", namespace)
    eventually(lambda: registered(zk, path_b, namespace) == {}, 30, "registrations to go with the Deployment")

    create_deployment(kube_api, namespace, "api", replicas=2, registry="b")
    in_sync(kube_api, zk, namespace, path_b, app="api", count=2)
    delete_registry(kube_api, namespace, "b")
    eventually(lambda: not registry_exists(kube_api, namespace, "b"), 30, "the registry to be deleted")
    assert registered(zk, path_b, namespace) == {}, "the finalizer let go before the registrations were gone"


def test_external_members_are_reported_and_left_alone(kube_api, zk, namespace, replicas):
    replicas.start(1)
    apply_registry(kube_api, namespace, "web")
    create_deployment(kube_api, namespace, "web", replicas=1, registry="web")
    path = f"/{namespace}/web"
    in_sync(kube_api, zk, namespace, path, count=1)

    vm = {
        "name": "web",
        "id": "vm-1",
        "address": "192.168.7.7",
        "port": 9090,
        "payload": None,
        "registrationTimeUTC": 0,
        "serviceType": "DYNAMIC",
        "sslPort": None,
        "uriSpec": None,
    }
    zk.create(f"{path}/vm-1", json.dumps(vm).encode(), ephemeral=True)
    zk.create(f"{path}/garbage", b"\xff\xfenot json", ephemeral=True)
    started = time.monotonic()

    def members():
        s = get_registry(kube_api, namespace, "web").get("status") or {}
        return {m["id"]: m for m in s.get("members") or ()}

    seen = eventually(
        lambda: (m := members()) and {"vm-1", "garbage"} <= set(m) and m, 30, "external members in status"
    )
    print(f"external member in status after {time.monotonic() - started:.2f} s")
    assert seen["vm-1"]["source"] == "external" and seen["vm-1"]["address"] == "192.168.7.7"
    assert seen["garbage"]["source"] == "external" and "error" in seen["garbage"]
    assert get_registry(kube_api, namespace, "web")["status"]["memberCount"] == 3

    # Through full resyncs (every 5 s here) the operator never changes or deletes them.
    before = {n: zk.get(f"{path}/{n}")[1].mzxid for n in ("vm-1", "garbage")}
    first = _resyncs(replicas.members[0])
    eventually(lambda: _resyncs(replicas.members[0]) >= first + 2, 30, "two full resyncs")
    assert {n: zk.get(f"{path}/{n}")[1].mzxid for n in ("vm-1", "garbage")} == before


def _resyncs(replica) -> float:
    for line in replica.get("/metrics")[1].splitlines():
        if line.startswith("zkregistry_resyncs_total "):
            return float(line.split()[1])
    return 0.0


def test_resync_repairs_out_of_band_changes(kube_api, zk, namespace, replicas):
    replicas.start(1)
    apply_registry(kube_api, namespace, "web")
    create_deployment(kube_api, namespace, "web", replicas=2, registry="web")
    path = f"/{namespace}/web"
    pods = in_sync(kube_api, zk, namespace, path, count=2)

    victim = next(iter(pods))
    zk.delete(f"{path}/{victim}")  # deleted by hand: it comes back
    eventually(lambda: victim in registered(zk, path, namespace), 30, "the deleted registration restored")

    # A stale registration of ours (our owner id, no such pod): removed.
    stale = dict(znodes(zk, path)[victim], id="gone-pod")
    stale["payload"] = dict(stale["payload"], uid="gone-pod", pod="gone")
    zk.create(f"{path}/gone-pod", json.dumps(stale).encode(), ephemeral=True)
    eventually(lambda: not zk.exists(f"{path}/gone-pod"), 30, "the stale registration removed")
    assert registered(zk, path, namespace) == pods
