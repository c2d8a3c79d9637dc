"""The reporter's pace: a registry's status is written at most once per pace, which grows with the
members it shows, and a change that came too soon is written once the pace allows."""

from __future__ import annotations

import threading
import time

from zkregistry import reporter
from zkregistry.model import Registry
from zkregistry.reporter import Reporter


class FakeKube:
    def __init__(self) -> None:
        self.patched: list[dict] = []

    def patch_status(self, registry: Registry, status: dict) -> None:
        self.patched.append(status)


def make() -> tuple[Reporter, FakeKube]:
    kube = FakeKube()
    return Reporter(None, None, None, None, kube, "owner", threading.Event()), kube  # type: ignore[arg-type]


REGISTRY = Registry.from_body({"metadata": {"name": "web", "namespace": "ns", "uid": "u"}, "spec": {}})


def status(shown: int) -> dict:
    return {"members": [{"id": str(i)} for i in range(shown)], "memberCount": shown}


def test_a_large_registry_is_written_at_most_every_max_pace():
    r, kube = make()
    r._patch_paced(REGISTRY, status(200))
    started = time.monotonic()
    r._patch_paced(REGISTRY, status(199))  # a change a moment later: held, not written
    assert kube.patched == [status(200)]
    assert r._held[REGISTRY.key] - started <= reporter.MAX_PACE
    assert r._held[REGISTRY.key] - started > reporter.MAX_PACE - 0.5


def test_a_small_registry_is_written_again_after_the_settle_time():
    r, kube = make()
    r._patch_paced(REGISTRY, status(3))
    r._patch_paced(REGISTRY, status(4))
    assert len(kube.patched) == 1
    assert r._held[REGISTRY.key] - time.monotonic() <= reporter.SETTLE_SECONDS
    time.sleep(reporter.SETTLE_SECONDS)
    r._patch_paced(REGISTRY, status(4))
    assert kube.patched == [status(3), status(4)]
