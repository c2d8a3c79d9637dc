"""The benchmark's arithmetic: latencies, percentiles, Prometheus parsing, goal verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks import measure, report

METRICS = """\
# HELP zkregistry_zookeeper_operations_total ZooKeeper operations sent in transactions
zkregistry_zookeeper_operations_total 120.0
zkregistry_registrations{namespace="a",registry="web"} 3.0
zkregistry_registrations{namespace="b",registry="api"} 4.0
zkregistry_registrations_created 1.0
zkregistry_ready_to_registered_seconds_bucket{le="0.05"} 6.0
zkregistry_ready_to_registered_seconds_bucket{le="0.1"} 9.0
zkregistry_ready_to_registered_seconds_bucket{le="+Inf"} 10.0
"""


def test_latencies_pair_starts_with_ends_and_count_the_missing():
    starts = measure.first_times([(1.0, "ready", "a", None), (2.0, "ready", "b", None), (5.0, "ready", "a", None)])
    assert starts == {"a": 1.0, "b": 2.0}
    values, missing = measure.latencies_ms(starts, {"a": 1.25})
    assert values == [250.0] and missing == 1


def test_nearest_rank_percentiles_and_summary():
    values = [float(v) for v in range(1, 101)]
    assert measure.percentile(values, 50) == 50 and measure.percentile(values, 99) == 99
    assert measure.percentile([7.0], 99) == 7.0
    s = measure.summary(values, missing=2)
    assert (s["p50"], s["p95"], s["p99"], s["max"], s["missing"]) == (50, 95, 99, 100, 2)
    assert measure.summary([])["p50"] is None
    assert measure.ratio(
        {"p50": 10, "p95": 20, "p99": 30, "max": 40}, {"p50": 20, "p95": 0, "p99": 30, "max": None}
    ) == {
        "p50": 0.5,
        "p95": None,
        "p99": 1.0,
        "max": None,
    }


def test_prometheus_text_is_read_by_name_not_prefix():
    assert measure.metric(METRICS, "zkregistry_zookeeper_operations_total") == 120
    assert measure.metric(METRICS, "zkregistry_registrations") == 7  # not _created
    buckets = measure.buckets(METRICS, "zkregistry_ready_to_registered_seconds")
    assert buckets == {0.05: 6, 0.1: 9, math.inf: 10}
    q = measure.histogram_quantiles({0.05: 1, 0.1: 1, math.inf: 1}, buckets)
    assert q == {"count": 9, "p50_le": 50.0, "p95_le": "inf", "p99_le": "inf"}  # 8.55 of 9 lie beyond 0.1 s


def test_goal_verdicts_follow_the_figures():
    committed = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    results = json.loads(sorted(committed.glob("*/results.json"))[-1].read_text())
    for key in (
        "pods",
        "register_latency_ms",
        "deregister_latency_ms",
        "cold_resync_s",
        "crash_failover_gap_s",
        "graceful_handover_removals",
        "rss_mib",
        "cpu_s_per_1000_transitions",
        "zk_ops_per_transition",
        "zk_ceiling_creates_per_s",
    ):
        assert key in results, key
    verdicts = {g["goal"]: g["met"] for g in report.goals(results)}
    assert verdicts["graceful_handover"] is (results["graceful_handover_removals"] == 0)
    assert verdicts["cold_resync"] is (results["cold_resync_s"] <= 1.0)
    assert verdicts["register_p50"] is (results["register_latency_ms"]["ours"]["p50"] <= 50)
