"""/healthz: a replica whose controller loop or election has stopped making progress reports
unhealthy, so that Kubernetes restarts it instead of keeping a dead replica that looks alive."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from zkregistry.app import Operator
from zkregistry.config import Settings
from zkregistry.election import Election


def operator(turn_age: float, election_age: float) -> Operator:
    op = Operator.__new__(Operator)  # only what healthy() reads; no clients, no threads
    now = time.monotonic()
    op.settings = Settings(session_timeout=4.0)
    op._threads = []
    op.controller = SimpleNamespace(last_turn=now - turn_age)
    op.election = Election.__new__(Election)
    op.election._joined, op.election.progress = True, now - election_age
    return op


def test_healthy_while_both_make_progress():
    assert operator(1.0, 1.0).healthy()


def test_a_stalled_controller_loop_is_unhealthy():
    op = operator(0.0, 0.0)
    assert not operator(op.stall_bound + 1, 0.0).healthy()


def test_a_stalled_election_is_unhealthy():
    op = operator(0.0, 0.0)
    assert not operator(0.0, op.stall_bound + 1).healthy()


def test_a_replica_still_listing_before_it_joins_is_not_stalled():
    op = operator(0.0, 10**6)
    op.election._joined = False  # it joins only once its inventory is complete, however long that takes
    assert op.healthy()


def test_a_dead_worker_thread_is_unhealthy():
    # A reflector's `run` (one thread per kind) raises, and so ends, when a scope's thread died.
    op = operator(0.0, 0.0)
    dead = threading.Thread(target=lambda: None, name="replicasets")
    dead.start()
    dead.join()
    op._threads = [dead]
    assert not op.healthy()
