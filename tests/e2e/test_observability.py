"""Metrics and health endpoints of a running operator, with plausible values."""

from __future__ import annotations

from conftest import eventually
from kit import apply_registry, create_deployment, in_sync


def metric(text: str, name: str, labels: str = "") -> float | None:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


def test_metrics_and_probes(kube_api, zk, namespace, replicas):
    started = replicas.start(2)
    leader = replicas.wait_leader()  # ready (inventory listed) comes before the election
    (standby,) = [r for r in started if r is not leader]
    assert not standby.is_leader()
    for replica in (leader, standby):
        assert replica.get("/healthz") == (200, "ok\n")
        assert replica.get("/readyz") == (200, "ok\n")

    apply_registry(kube_api, namespace, "web")
    create_deployment(kube_api, namespace, "web", replicas=3, registry="web")
    path = f"/{namespace}/web"
    in_sync(kube_api, zk, namespace, path, count=3)
    labels = f'namespace="{namespace}",registry="web"'
    text = eventually(
        lambda: (t := leader.get("/metrics")[1]) and metric(t, "zkregistry_registrations", labels) == 3 and t,
        30,
        "the registrations gauge",
    )
    assert metric(text, "zkregistry_leader") == 1
    assert metric(text, "zkregistry_zookeeper_connected") == 1
    assert metric(text, "zkregistry_reconcile_errors_total") == 0
    assert metric(text, "zkregistry_zookeeper_operations_total") >= 3 + 1  # 3 creates and a fence check
    latencies = metric(text, "zkregistry_ready_to_registered_seconds_count")
    assert latencies == 3
    assert 0 < metric(text, "zkregistry_ready_to_registered_seconds_sum") < 3 * 5

    standby_text = standby.get("/metrics")[1]
    assert metric(standby_text, "zkregistry_leader") == 0
    assert metric(standby_text, "zkregistry_zookeeper_operations_total") == 0
    assert leader.get("/nothing")[0] == 404
