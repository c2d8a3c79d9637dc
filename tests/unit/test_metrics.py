"""Per-registry series on /metrics follow the registries that exist: a deleted registry's last
values must not linger, or an alert on them would never resolve."""

from __future__ import annotations

from prometheus_client import generate_latest

from zkregistry import metrics


def series(name: str) -> set[str]:
    return {line.split(" ")[0] for line in generate_latest().decode().splitlines() if line.startswith(name + "{")}


def test_keep_registries_drops_the_series_of_registries_that_are_gone():
    for gauge in metrics.PER_REGISTRY:
        gauge.labels("a", "web").set(1)
        gauge.labels("b", "db").set(2)
    metrics.keep_registries([("a", "web"), ("c", "never-reported")])
    for name in ("zkregistry_registrations", "zkregistry_ready_pods", "zkregistry_status_heartbeat_age_seconds"):
        assert series(name) == {f'{name}{{namespace="a",registry="web"}}'}
    metrics.keep_registries([])
    assert not series("zkregistry_registrations")
