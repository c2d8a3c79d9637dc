"""A state in which no replica can write is visible: in status (the Leader condition's heartbeat
stops), in a Warning Event, and in a metric that an alert reads; and it heals on its own."""

from __future__ import annotations

import datetime as dt

from conftest import eventually
from kit import apply_registry, create_deployment, events_for, get_registry, in_sync
from zkregistry import status

RESYNC = 5.0  # the replicas fixture's --resync-seconds: the heartbeat period


def heartbeat_age(kube_api, namespace: str) -> float:
    body = get_registry(kube_api, namespace, "web")
    return status.heartbeat_age(body.get("status"), body["metadata"]["creationTimestamp"], dt.datetime.now(dt.UTC))


def metric(replica, name: str) -> float | None:
    for line in replica.get("/metrics")[1].splitlines():
        if line.startswith(name) and not line.startswith("#"):
            return float(line.split()[-1])
    return None


def test_no_writer_is_visible_and_heals(kube_api, zk, namespace, replicas, ensemble):
    replicas.start(3)
    apply_registry(kube_api, namespace, "web")
    create_deployment(kube_api, namespace, "web", replicas=2, registry="web")
    in_sync(kube_api, zk, namespace, f"/{namespace}/web", count=2)
    eventually(lambda: heartbeat_age(kube_api, namespace) < 2 * RESYNC, 30, "a fresh heartbeat in status")
    try:
        ensemble.stop_server(1)
        ensemble.stop_server(2)  # quorum lost: no replica can prove that it leads, none writes
        eventually(
            lambda: events_for(kube_api, namespace, "web", "NoLeader"), 120, "a NoLeader Warning on the registry"
        )
        assert heartbeat_age(kube_api, namespace) >= 3 * RESYNC
        # Every replica's gauge says so too (each samples it every half heartbeat period).
        eventually(
            lambda: all(
                (age := metric(r, "zkregistry_status_heartbeat_age_seconds")) is not None and age >= 3 * RESYNC
                for r in replicas.running()
            ),
            30,
            "every replica's heartbeat-age gauge to pass three periods",
        )
    finally:
        ensemble.start_server(1)
        ensemble.start_server(2)
    eventually(lambda: heartbeat_age(kube_api, namespace) < 2 * RESYNC, 60, "the heartbeat to resume")
    in_sync(kube_api, zk, namespace, f"/{namespace}/web", count=2)
