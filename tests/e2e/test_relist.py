"""A pod deleted while the operator's watches are broken is deregistered at the next relist.

Every replica is frozen, kube-apiserver restarts (the watches break with nothing left in flight),
two pods are deleted, and etcd is compacted up to its current revision, so that a watch resumed
from any resourceVersion the replicas know is answered 410 Gone. No DELETED event for those pods
ever reaches the replicas: only a fresh list, treated as the whole truth (client-go's
DeltaFIFO.Replace), can tell them that the pods are gone.
"""

from __future__ import annotations

import time

import kubernetes

from conftest import eventually
from kit import apply_registry, create_deployment, in_sync, ready_pods, registered

RELIST_BOUND = 30.0  # seconds from the replicas' resumption until ZooKeeper holds no deleted pod
RESYNC = 5.0  # the replicas fixture's --resync-seconds


def test_pods_deleted_during_a_watch_gap_are_deregistered(kube_api, zk, namespace, replicas, cluster):
    replicas.start(3)
    apply_registry(kube_api, namespace, "web")
    create_deployment(kube_api, namespace, "web", replicas=4, registry="web")
    path = f"/{namespace}/web"
    before = in_sync(kube_api, zk, namespace, path, count=4)
    replicas.wait_leader()
    core = kubernetes.client.CoreV1Api(kube_api)
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
        revision = cluster.compact_etcd()
    finally:
        for replica in replicas.members:
            replica.resume()
    resumed = time.monotonic()
    print(f"deleted {sorted(deleted)} while the replicas were frozen; etcd compacted at revision {revision}")

    current: dict[str, str] = {}
    pods: dict[str, str] = {}
    while time.monotonic() - resumed < RELIST_BOUND:
        pods, current = ready_pods(kube_api, namespace, "web"), registered(zk, path, namespace)
        if current == pods and not deleted & set(current):
            break
        time.sleep(0.2)
    took = time.monotonic() - resumed
    stale = sorted(deleted & set(current))
    print(f"{took:.1f} s after resuming: ZooKeeper {sorted(current)}, Ready pods {sorted(pods)}, stale {stale}")
    assert not stale, f"znodes of deleted pods still in ZooKeeper {RELIST_BOUND:.0f} s after resuming: {stale}"
    assert current == pods, f"ZooKeeper {sorted(current)} != Ready pods {sorted(pods)}"

    # A full resync later, nothing of the deleted pods has come back.
    time.sleep(RESYNC + 1)
    assert registered(zk, path, namespace) == ready_pods(kube_api, namespace, "web")
