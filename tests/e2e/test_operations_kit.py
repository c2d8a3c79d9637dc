"""The chart's operations kit (metrics.serviceMonitor, metrics.prometheusRule,
metrics.grafanaDashboard): the rules and the dashboard parse, their PromQL parses with Prometheus's
own parser (tools/promql), and every metric that an alert or a panel queries is on /metrics of a
real replica that serves a registry. tests/e2e/test_manifests.py sends the rendered objects to a
real API server with the Prometheus Operator's CRDs.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import eventually
from e2e.test_manifests import CHART, helm
from kit import apply_registry, create_deployment, in_sync

TOP = Path(__file__).resolve().parents[2]
DASHBOARD = CHART / "dashboards" / "zkregistry.json"
KIT = ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true",
       "--set", "metrics.grafanaDashboard.enabled=true"]
# The values Grafana puts in for its variables, so that the queries are PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$job": "zkregistry-metrics"}
# Prometheus durations: one or more number-unit pairs.
DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict]:
    """The kit as `helm template` renders it with its defaults, by kind."""
    text = helm("template", "zkregistry", str(CHART), "--namespace", "zkregistry", *KIT).stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    return {d["kind"]: d for d in docs if d["kind"] in ("ServiceMonitor", "PrometheusRule", "ConfigMap")
            and (d["kind"] != "ConfigMap" or d["metadata"]["name"].endswith("-dashboard"))}


@pytest.fixture(scope="module")
def promql() -> Path:
    built = subprocess.run([str(TOP / "tools" / "promql.sh")], capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        pytest.fail(f"tools/promql.sh could not build Prometheus's PromQL parser:\n{built.stderr[-3000:]}")
    return Path(built.stdout.strip())


def parse(promql: Path, expressions: list[str]) -> list[dict]:
    """Each expression, parsed by Prometheus's parser: {"metrics": [...]} or {"error": ...}."""
    result = subprocess.run([str(promql)], input=json.dumps(expressions), capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def alerts(rendered) -> list[dict]:
    return [rule for group in rendered["PrometheusRule"]["spec"]["groups"] for rule in group["rules"]]


def dashboard_queries(dashboard: dict) -> list[str]:
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable, value in GRAFANA_VARIABLES.items():
        queries = [q.replace(variable, value) for q in queries]
    return queries


def test_the_rules_are_the_ones_on_call_needs(rendered, promql):
    rules = alerts(rendered)
    by_name = {r["alert"]: r for r in rules}
    assert len(by_name) == len(rules), "alert names must be unique"
    assert set(by_name) == {
        "ZkregistryNoLeader",
        "ZkregistryRegistrationsDifferFromReadyPods",
        "ZkregistryZooKeeperDisconnected",
        "ZkregistryReconcileErrors",
        "ZkregistryHandoverTimedOut",
        "ZkregistryStatusHeartbeatStale",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert "for" not in rule or DURATION.fullmatch(rule["for"]), rule
    parsed = dict(zip(by_name, parse(promql, [r["expr"] for r in rules]), strict=True))
    assert not {name: p["error"] for name, p in parsed.items() if "error" in p}
    # The bounds the chart promises: no leader for longer than the session timeout (10 s), a
    # heartbeat staler than three resync periods (30 s), as the operator's NoLeader Event.
    assert by_name["ZkregistryNoLeader"]["for"] == "10s"
    assert "sum(zkregistry_leader{" in by_name["ZkregistryNoLeader"]["expr"]
    assert by_name["ZkregistryStatusHeartbeatStale"]["expr"].rstrip().endswith("> 90")
    assert parsed["ZkregistryHandoverTimedOut"]["metrics"] == ["zkregistry_handover_timeouts_total"]
    assert parsed["ZkregistryRegistrationsDifferFromReadyPods"]["metrics"] == [
        "zkregistry_leader", "zkregistry_ready_pods", "zkregistry_registrations"]
    # Every series they select belongs to the job that the ServiceMonitor gives the replicas.
    job = f'job="{rendered["ServiceMonitor"]["metadata"]["name"]}-metrics"'
    assert all(r["expr"].count("zkregistry_") == r["expr"].count(job) for r in rules)


def test_the_dashboard_is_for_the_sidecar_and_parses(rendered, promql):
    configmap = rendered["ConfigMap"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (name, text), = configmap["data"].items()
    assert name.endswith(".json") and json.loads(text) == json.loads(DASHBOARD.read_text())
    dashboard = json.loads(text)
    assert dashboard["uid"] and dashboard["title"]
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "job"}
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(set(titles)) == len(titles)
    for panel in dashboard["panels"]:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    queries = dashboard_queries(dashboard)
    assert not [(q, p["error"]) for q, p in zip(queries, parse(promql, queries), strict=True) if "error" in p]
    shown = {m for p in parse(promql, queries) for m in p["metrics"]}
    # What the dashboard is for: registrations, Ready-to-registered latency, leader, ZooKeeper.
    assert {"zkregistry_registrations", "zkregistry_ready_pods", "zkregistry_ready_to_registered_seconds_bucket",
            "zkregistry_leader", "zkregistry_zookeeper_operations_total"} <= shown


def test_the_service_monitor_selects_the_metrics_service(rendered):
    monitor = rendered["ServiceMonitor"]
    text = helm("template", "zkregistry", str(CHART), "--namespace", "zkregistry", *KIT).stdout
    (service,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True


def test_every_queried_metric_is_on_a_real_replicas_metrics(rendered, promql, kube_api, zk, namespace, replicas):
    """The names that the rules and the panels select, against a scrape of a leader that serves a
    registry (per-registry series exist only then)."""
    replicas.start(2)
    leader = replicas.wait_leader()
    apply_registry(kube_api, namespace, "web")
    create_deployment(kube_api, namespace, "web", replicas=2, registry="web")
    in_sync(kube_api, zk, namespace, f"/{namespace}/web", count=2)
    labels = f'namespace="{namespace}",registry="web"'
    text = eventually(
        lambda: (t := leader.get("/metrics")[1]) and f"zkregistry_ready_pods{{{labels}}} 2.0" in t and t,
        30,
        "the leader to report the registry",
    )
    scraped = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    expressions = [r["expr"] for r in alerts(rendered)] + dashboard_queries(json.loads(DASHBOARD.read_text()))
    queried = {metric for parsed in parse(promql, expressions) for metric in parsed["metrics"]}
    assert len(queried) >= 10
    assert queried <= scraped, f"queried but not on /metrics: {sorted(queried - scraped)}"
