"""`app.await_successor`, the wait of a replica handing over, with a fake controller and election:
when a successor's registrations count, and when only the old ones' going does."""

from __future__ import annotations

import time

from zkregistry import app


class FakeElection:
    def __init__(self, *firsts: str | None) -> None:
        self.firsts = list(firsts)  # what each read of the first contender returns; the last stays
        self.reads = 0

    def first(self, timeout: float | None = None) -> str | None:
        self.reads += 1
        return self.firsts.pop(0) if len(self.firsts) > 1 else self.firsts[0]


class FakeController:
    def __init__(self, awaiting: list[int], owned: list[int]) -> None:
        self.awaiting, self.owned_counts = awaiting, owned  # successive answers; the last stays
        self.calls: list[str] = []

    def awaiting_successor(self) -> int:
        self.calls.append("awaiting")
        return self.awaiting.pop(0) if len(self.awaiting) > 1 else self.awaiting[0]

    def owned(self) -> int:
        self.calls.append("owned")
        return self.owned_counts.pop(0) if len(self.owned_counts) > 1 else self.owned_counts[0]

    def forget_disowned(self, deadline: float) -> None:
        self.calls.append("forget")


def test_superseded_registrations_end_the_wait_while_the_successor_leads():
    controller = FakeController(awaiting=[3, 1, 0], owned=[3])
    left = app.await_successor(controller, FakeElection("b"), time.monotonic() + 5, 1.0)
    assert left == 0
    assert "owned" not in controller.calls


def test_once_the_successor_left_only_the_old_registrations_going_ends_the_wait():
    """The successor's names were all listed for a second, but it left just then: a third leader
    may replace them in place, so the wait goes on until the old registrations are gone."""
    controller = FakeController(awaiting=[0], owned=[2, 2, 1, 0])
    election = FakeElection("b", "c")
    left = app.await_successor(controller, election, time.monotonic() + 5, 1.0)
    assert left == 0
    assert controller.calls.count("owned") == 4, controller.calls
    assert election.reads == 2  # once at the start, once before counting the successor's names


def test_the_deadline_ends_the_wait_with_what_is_still_awaited():
    controller = FakeController(awaiting=[2], owned=[2])
    started = time.monotonic()
    left = app.await_successor(controller, FakeElection("b"), started + 0.3, 1.0)
    assert left == 2
    assert time.monotonic() - started < 1.0


def test_a_successor_that_cannot_be_confirmed_does_not_end_the_wait():
    """`Election.first` answers None when ZooKeeper does not answer: the wait then goes on until
    the old registrations are gone, as when the successor left."""
    controller = FakeController(awaiting=[0], owned=[1, 0])
    left = app.await_successor(controller, FakeElection("b", None), time.monotonic() + 5, 1.0)
    assert left == 0
    assert controller.calls.count("owned") == 2, controller.calls
