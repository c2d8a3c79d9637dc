"""Prometheus metrics, and the HTTP endpoint that serves them with the health probes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from zkregistry.writer import Outcome

# Per registry, from the leader's last status report (a standby keeps what it last reported as
# leader; alerts and dashboards take these from the replica whose zkregistry_leader is 1).
REGISTRATIONS = Gauge("zkregistry_registrations", "znodes of ours under the registry's path", ["namespace", "registry"])
READY_PODS = Gauge(
    "zkregistry_ready_pods",
    "Ready pods of the Deployments opted in to the registry: what zkregistry_registrations should equal",
    ["namespace", "registry"],
)
LEADER = Gauge("zkregistry_leader", "1 while this replica is the leader and may write")
ZK_CONNECTED = Gauge("zkregistry_zookeeper_connected", "1 while the ZooKeeper connection is up")
READY_TO_REGISTERED = Histogram(
    "zkregistry_ready_to_registered_seconds",
    "from the pod's readiness being seen to its znode being created",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RESYNCS = Counter("zkregistry_resyncs_total", "full resyncs of every path")
RECONCILE_ERRORS = Counter("zkregistry_reconcile_errors_total", "reconciles or status reports that failed")
APPLIED = Counter("zkregistry_applied_operations_total", "plan operations that took effect in ZooKeeper")
ZK_OPERATIONS = Counter("zkregistry_zookeeper_operations_total", "ZooKeeper operations sent in transactions")
HEARTBEAT_AGE = Gauge(
    "zkregistry_status_heartbeat_age_seconds",
    "seconds since a leader last refreshed the registry's status (Leader condition); grows when no replica leads",
    ["namespace", "registry"],
)
HANDOVER_TIMEOUTS = Counter(
    "zkregistry_handover_timeouts_total", "graceful handovers whose deadline passed before the successor took over"
)
REFUSED = Counter("zkregistry_refused_transactions_total", "transactions refused as stale or unfenced")


PER_REGISTRY = (REGISTRATIONS, READY_PODS, HEARTBEAT_AGE)


def keep_registries(keys: Iterable[tuple[str, str]]) -> None:
    """Drops the per-registry series of every registry not among `keys` ((namespace, name)), so
    that a deleted registry's last values do not linger on /metrics (and in alerts) forever."""
    keep = set(keys)
    for gauge in PER_REGISTRY:
        for labels in list(gauge._metrics):  # prometheus_client has no public list of children
            if labels not in keep:
                gauge.remove(*labels)


def observe_write(outcome: Outcome) -> None:
    ZK_OPERATIONS.inc(outcome.zk_ops)
    APPLIED.inc(outcome.applied)
    if outcome.failed:
        REFUSED.inc()


def serve(port: int, healthy: Callable[[], bool], ready: Callable[[], bool]) -> ThreadingHTTPServer:
    """Serves /metrics, /healthz (the process works) and /readyz (synced and connected)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, code, kind = generate_latest(), 200, CONTENT_TYPE_LATEST
            elif self.path in ("/healthz", "/readyz"):
                ok = healthy() if self.path == "/healthz" else ready()
                body, code, kind = (b"ok\n" if ok else b"not ok\n"), (200 if ok else 503), "text/plain"
            else:
                body, code, kind = b"not found\n", 404, "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
