"""The soak's pure parts: charging absences to faults, slopes, and the nemesis's schedule."""

from __future__ import annotations

import random

import pytest

from soak.absences import NONE, attribute
from soak.checker import slope_per_hour
from soak.nemesis import DOMAIN, KINDS, Fault, Nemesis, Round


def round_(number: int, kinds: list[str], start: float, healed: float, converged: float | None) -> Round:
    return Round(number, [Fault(k, "x", start, healed) for k in kinds], start, healed, converged)


def test_an_absence_counts_for_every_kind_of_its_round_and_breaks_nothing_there():
    rounds = [round_(1, ["kill", "zk-stop"], 100.0, 110.0, 111.0)]
    missing = {"r0": {"curator": {"uid-a": [(105.0, 105.5)]}}}
    figures, violations, every = attribute(missing, rounds, bound=60)
    assert [(a['rounds'], a['seconds']) for a in every] == [([1], 0.5)]
    assert figures == {
        "kill": {"curator": {"intervals": 1, "total_s": 0.5, "longest_s": 0.5}},
        "zk-stop": {"curator": {"intervals": 1, "total_s": 0.5, "longest_s": 0.5}},
    }
    assert violations == []


def test_an_absence_in_a_graceful_round_or_outside_every_round_breaks_the_invariant():
    rounds = [round_(1, ["term"], 100.0, 103.0, 104.0)]
    missing = {"r1": {"data": {"uid-b": [(101.0, 101.2), (200.0, 200.1)]}}}
    figures, violations, _ = attribute(missing, rounds, bound=60)
    assert set(figures) == {"term", NONE}
    assert [v["t"] for v in violations] == [101.0, 200.0]


def test_a_round_that_never_converged_lasts_its_bound():
    rounds = [round_(1, ["znode-corrupt"], 100.0, 101.0, None)]
    figures, violations, _ = attribute({"r0": {"children": {"u": [(150.0, 151.0)]}}}, rounds, bound=60)
    assert "znode-corrupt" in figures and not violations


def test_slope_per_hour():
    assert slope_per_hour([(0.0, 10.0), (1800.0, 11.0), (3600.0, 12.0)]) == pytest.approx(2.0)
    assert slope_per_hour([(0.0, 1.0), (1.0, 1.0)]) is None


def test_the_same_seed_draws_the_same_schedule_each_kind_from_its_own_domain():
    def schedule(seed: int) -> list:
        nemesis = Nemesis(random.Random(seed), None, None, None, None, [], "o", None)  # type: ignore[arg-type]
        return [nemesis.draw() for _ in range(50)]

    assert schedule(7) == schedule(7) != schedule(8)
    for plan in schedule(7):
        domains = [DOMAIN[k] for k, _ in plan]
        assert len(domains) == len(set(domains)) and all(k in KINDS for k, _ in plan)
