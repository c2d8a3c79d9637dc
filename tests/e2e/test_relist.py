"""Objects deleted while the operator's watches are broken are forgotten at the next relist.

Every replica is frozen, kube-apiserver restarts (the watches break with nothing left in flight),
two pods of one Deployment are deleted, another Deployment is deleted with its pods orphaned (they
stay Ready, owned by a ReplicaSet that no Deployment controls any more), and etcd is compacted up
to its current revision, so that a watch resumed from any resourceVersion the replicas know is
answered 410 Gone. No DELETED event for those objects ever reaches the replicas: only a fresh list
of each kind, treated as the whole truth (client-go's DeltaFIFO.Replace), can tell them that the
pods are gone and that the orphaned pods no longer lead to a registry.
"""

from __future__ import annotations

import time

import kubernetes

from conftest import eventually
from kit import apply_registry, create_deployment, in_sync, ready_pods, registered

RELIST_BOUND = 30.0  # seconds from the replicas' resumption until ZooKeeper holds no deleted pod
RESYNC = 5.0  # the replicas fixture's --resync-seconds


def test_objects_deleted_during_a_watch_gap_are_deregistered(kube_api, zk, namespace, replicas, cluster):
    replicas.start(3)
    apply_registry(kube_api, namespace, "web")
    apply_registry(kube_api, namespace, "api")
    create_deployment(kube_api, namespace, "web", replicas=4, registry="web")
    create_deployment(kube_api, namespace, "api", replicas=2, registry="api")
    path, api_path = f"/{namespace}/web", f"/{namespace}/api"
    before = in_sync(kube_api, zk, namespace, path, count=4)
    in_sync(kube_api, zk, namespace, api_path, app="api", count=2)
    replicas.wait_leader()
    core, apps = kubernetes.client.CoreV1Api(kube_api), kubernetes.client.AppsV1Api(kube_api)
    names = {p.metadata.uid: p.metadata.name for p in core.list_namespaced_pod(namespace).items}
    deleted = set(sorted(before)[:2])

    for replica in replicas.members:
        replica.pause()
    try:
        cluster.restart_apiserver()
        for uid in deleted:
            core.delete_namespaced_pod(names[uid], namespace, grace_period_seconds=0)

        # The ReplicaSet replaces them; wait for that, so that what follows measures the operator.
        def replaced() -> bool:
            ready = ready_pods(kube_api, namespace, "web")
            return len(ready) == 4 and not deleted & set(ready)

        eventually(replaced, 60, "two Ready replacements of the deleted pods")
        # The garbage collector takes the ReplicaSet's owner reference away, then the Deployment.
        apps.delete_namespaced_deployment("api", namespace, propagation_policy="Orphan")

        def orphaned() -> bool:
            if any(d.metadata.name == "api" for d in apps.list_namespaced_deployment(namespace).items):
                return False
            replicasets = apps.list_namespaced_replica_set(namespace, label_selector="app=api").items
            return bool(replicasets) and not any(rs.metadata.owner_references for rs in replicasets)

        eventually(orphaned, 60, "the Deployment api gone, its ReplicaSet orphaned")
        revision = cluster.compact_etcd()
    finally:
        for replica in replicas.members:
            replica.resume()
    resumed = time.monotonic()
    print(f"deleted {sorted(deleted)} while the replicas were frozen; etcd compacted at revision {revision}")

    current: dict[str, str] = {}
    pods: dict[str, str] = {}
    orphans: dict[str, str] = {}
    while time.monotonic() - resumed < RELIST_BOUND:
        pods, current = ready_pods(kube_api, namespace, "web"), registered(zk, path, namespace)
        orphans = registered(zk, api_path, namespace)
        if current == pods and not deleted & set(current) and not orphans:
            break
        time.sleep(0.2)
    took = time.monotonic() - resumed
    stale = sorted(deleted & set(current))
    print(
        f"{took:.1f} s after resuming: ZooKeeper {sorted(current)}, Ready pods {sorted(pods)}, stale {stale}, "
        f"orphans still registered {sorted(orphans)}"
    )
    assert not stale, f"znodes of deleted pods still in ZooKeeper {RELIST_BOUND:.0f} s after resuming: {stale}"
    assert current == pods, f"ZooKeeper {sorted(current)} != Ready pods {sorted(pods)}"
    assert len(ready_pods(kube_api, namespace, "api")) == 2, "the orphaned pods still serve"
    assert not orphans, f"the pods of the deleted Deployment api are still registered: {sorted(orphans)}"

    # A full resync later, nothing of the deleted pods or of the Deployment has come back.
    time.sleep(RESYNC + 1)
    assert registered(zk, path, namespace) == ready_pods(kube_api, namespace, "web")
    assert registered(zk, api_path, namespace) == {}
