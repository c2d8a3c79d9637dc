"""The reporter's pace: a registry is reported at most once per pace, which grows with the members
its status shows, and a change that came sooner is reported once the pace allows."""

from __future__ import annotations

import threading
import time

from zkregistry import reporter
from zkregistry.model import Registry
from zkregistry.reporter import Reporter

REGISTRY = Registry.from_body({"metadata": {"name": "web", "namespace": "ns", "uid": "u"}, "spec": {}})


class FakeInventory:
    def registry(self, key):
        return REGISTRY if key == REGISTRY.key else None

    def orphaned_deployments(self) -> list:
        return []

    def policies(self) -> list:
        return []


class FakeElection:
    writable = True


def make(reported: list) -> Reporter:
    r = Reporter(None, FakeInventory(), None, FakeElection(), None, "owner", threading.Event())  # type: ignore[arg-type]
    r._report_registry = lambda registry: reported.append(registry.key)  # type: ignore[method-assign]
    return r


def test_the_pace_grows_with_the_members_shown_up_to_its_bound():
    assert reporter.pace(3) < reporter.SETTLE_SECONDS  # a small registry: the loop's own settling
    assert reporter.pace(100) == 100 * reporter.PACE_PER_MEMBER
    assert reporter.pace(200) == reporter.MAX_PACE
    assert reporter.pace(10_000) == reporter.MAX_PACE


def test_a_registry_reported_a_moment_ago_is_held_until_its_pace_allows():
    reported: list = []
    r = make(reported)
    until = time.monotonic() + reporter.MAX_PACE
    r._paced[REGISTRY.key] = until
    assert r.report({REGISTRY.key}) == set()
    assert reported == []
    assert r._held == {REGISTRY.key: until}
    r._paced[REGISTRY.key] = time.monotonic()  # the pace has passed
    r.report({REGISTRY.key})
    assert reported == [REGISTRY.key]


def test_a_registry_gone_leaves_no_pace_behind():
    r = make([])
    r._paced[("ns", "gone")] = time.monotonic() + 1
    r.report({("ns", "gone")})
    assert ("ns", "gone") not in r._paced
