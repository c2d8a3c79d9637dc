"""Which fault each absence seen by an observer belongs to, and the figures per kind.

An absence is an interval in which an observer did not see a steady pod (one that stayed Ready all
along). It belongs to every fault of the round whose window holds its start: from the round's
first injection until the checker found every invariant true again, plus `SLACK` for an
observer's own delay. An absence that belongs to no round (nothing was wrong) or only to rounds of
graceful kinds breaks an invariant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from soak.nemesis import GRACEFUL, Round

SLACK = 2.0
NONE = "none"  # the kind of an absence outside every round

Interval = tuple[float, float]


def window(round_: Round, bound: float) -> Interval:
    end = round_.converged if round_.converged is not None else round_.healed + bound
    return round_.start, end + SLACK


def kinds_at(t: float, rounds: Iterable[Round], bound: float) -> set[str]:
    out: set[str] = set()
    for round_ in rounds:
        lo, hi = window(round_, bound)
        if lo <= t <= hi:
            out.update(round_.kinds)
    return out


def attribute(
    missing: Mapping[str, Mapping[str, Mapping[str, list[Interval]]]], rounds: list[Round], bound: float
) -> tuple[dict, list[dict], list[dict]]:
    """`missing`: registry -> observer -> pod uid -> intervals. Returns (kind -> observer ->
    {intervals, total_s, longest_s}, the absences that break the invariant, and every absence:
    {t, registry, observer, uid, seconds, kinds, rounds})."""
    figures: dict[str, dict[str, dict]] = {}
    violations: list[dict] = []
    every: list[dict] = []
    for registry, by_observer in missing.items():
        for observer, by_pod in by_observer.items():
            for uid, spans in by_pod.items():
                for start, end in spans:
                    kinds = kinds_at(start, rounds, bound) or {NONE}
                    every.append(
                        {
                            "t": start,
                            "registry": registry,
                            "observer": observer,
                            "uid": uid,
                            "seconds": round(end - start, 3),
                            "kinds": sorted(kinds),
                            "rounds": [r.number for r in rounds if window(r, bound)[0] <= start <= window(r, bound)[1]],
                        }
                    )
                    for kind in kinds:
                        f = figures.setdefault(kind, {}).setdefault(
                            observer, {"intervals": 0, "total_s": 0.0, "longest_s": 0.0}
                        )
                        f["intervals"] += 1
                        f["total_s"] = round(f["total_s"] + end - start, 3)
                        f["longest_s"] = round(max(f["longest_s"], end - start), 3)
                    if kinds <= GRACEFUL | {NONE}:
                        violations.append(
                            {
                                "t": start,
                                "invariant": "no absence outside non-graceful faults",
                                "problem": f"{observer} missed steady pod {uid[:8]} of {registry} for "
                                f"{(end - start) * 1000:.0f} ms during {sorted(kinds)}",
                            }
                        )
    every.sort(key=lambda a: a["t"])
    return figures, violations, every
