"""The benchmark's scaling layouts, its summary, the pod-level view of znode names, the intake split
and the goals of ARCHITECTURE.md: pure arithmetic, no ensemble."""

from __future__ import annotations

import math

from benchmarks import measure, report, run, scaling
from benchmarks.observe import uid_of


def test_layouts_spread_n_over_1_to_50_registries():
    for n in (1000, 10_000, 100_000):
        for layout in scaling.LAYOUTS:
            sizes = scaling.registry_sizes(n, layout)
            assert sum(sizes) == n
            assert len(sizes) == max(1, min(50, n // 1000))
    assert scaling.registry_sizes(100_000, "even") == [2000] * 50
    zipf = scaling.registry_sizes(100_000, "zipf")
    assert zipf == sorted(zipf, reverse=True) and zipf[0] > 20_000  # the largest path grows with N
    assert scaling.registry_sizes(1000, "zipf") == scaling.registry_sizes(1000, "even") == [1000]


def test_jobs_run_each_n_once_per_layout_that_differs():
    jobs = scaling.jobs([100_000, 1000, 10_000], memory=True)
    assert jobs[:2] == [(1000, "even", "cpu"), (1000, "even", "memory")]
    assert (1000, "zipf", "cpu") not in jobs  # one registry: the same replica as the even one
    assert jobs[-3:] == [(100_000, "even", "cpu"), (100_000, "even", "memory"), (100_000, "zipf", "cpu")]


def test_summary_takes_the_ratio_over_the_smallest_n_of_either_layout():
    def cpu(us: float | None, **more) -> dict:
        return {"transitions": {"cpu_us_per_transition": us}, **more} if us else more

    runs = {
        "even": {"1000": cpu(2000.0), "10000": cpu(2500.0), "100000": cpu(3000.0)},
        "zipf": {"10000": cpu(4000.0), "100000": cpu(None, aborted="RSS passed the cap")},
    }
    out = scaling.summarise(runs, 10.0, 2000)
    assert out["cpu_ratio_by_layout"] == {"even": 1.5, "zipf": None}
    assert out["cpu_ratio_largest_over_smallest"] == 1.5
    note = next(r["note"] for r in out["table"] if r["layout"] == "zipf" and r["pods"] == 100_000)
    assert "cap" in note


def test_a_pod_is_one_member_under_either_of_its_names():
    assert uid_of("0b9c-uid") == uid_of("0b9c-uid.1") == "0b9c-uid"
    swept = {"a": (10.0, 1), "a.1": (12.0, 2), "b.1": (11.0, 2)}
    assert measure.by_pod(swept) == {"a": 10.0, "b": 11.0}


def test_the_intake_is_the_end_to_end_mean_less_the_controllers():
    own = measure.histogram_quantiles({0.05: 0, math.inf: 0}, {0.05: 3, math.inf: 4}, 1.0, 1.4)
    assert own == {"count": 4, "p50_le": 50.0, "p95_le": "inf", "p99_le": "inf", "mean": 100.0}
    split = run._split({"mean": 180.0}, own)
    assert split["intake_and_notification_mean_ms"] == 80.0 and split["controller_ms"] is own
    assert run._split({"mean": 1.0}, None) == {}
    cost = {
        "transitions": 500,
        "replicas": {
            "a": {"role": "leader", "cpu_s": 1.0},
            "b": {"role": "standby", "cpu_s": 0.2},
            "c": {"role": "standby", "cpu_s": 0.4},
            run.KCM: {"role": run.KCM, "cpu_s": 3.0},
        },
    }
    assert run._per_1000(cost) == {"leader": 2.0, "standby": 0.6, run.KCM: 6.0}


def test_goals_follow_architecture_md():
    results = {
        "register_latency_ms": {"ours": {"p50": 40.0, "p99": 300.0}, "endpointslice": {"p50": 50.0, "p99": 400.0}},
        "deregister_latency_ms": {"ours": {"p99": 200.0}, "endpointslice": {"p99": 150.0}},
        "cold_resync_s": 0.8,
        "crash_failover_gap_s": 1.2,
        "graceful_handover_removals": 0,
        "handover_old_leader_exit_s": 6.0,
        "rss_mib": {"leader_loaded": 90.0, "standby_loaded": 80.0, "peak_any_replica": 120.0},
        "cpu_s_per_1000_transitions": 1.5,
        "standby_cpu_s_per_1000_transitions": 0.6,
        "scaling_cpu_ratio": 1.4,
    }
    met = {g["goal"]: g["met"] for g in report.goals(results)}
    assert met == {
        "register_vs_endpointslice": True,
        "register_p50": True,
        "register_p99": False,
        "deregister_vs_endpointslice": False,
        "deregister_p99": True,
        "cold_resync": True,
        "crash_failover": False,
        "graceful_handover": True,
        "handover_exit": False,
        "memory": True,  # the peak, 120 MiB, counts
        "memory_stretch": False,
        "leader_cpu": True,
        "standby_cpu": False,
        "scaling_ratio": True,
    }
    results["scaling_cpu_ratio"] = None
    assert next(g for g in report.goals(results) if g["goal"] == "scaling_ratio")["met"] is None
    # Every layout must scale: one whose largest N could not be measured did not.
    results["scaling"] = {"cpu_ratio_by_layout": {"even": 0.3, "zipf": None}}
    scaling_goal = next(g for g in report.goals(results) if g["goal"] == "scaling_ratio")
    assert scaling_goal["met"] is False and "zipf not measured" in scaling_goal["measured"]
    results["scaling"] = {"cpu_ratio_by_layout": {"even": 0.3, "zipf": 1.2}}
    assert next(g for g in report.goals(results) if g["goal"] == "scaling_ratio")["met"] is True
