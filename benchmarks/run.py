"""`make bench`: registration latency against the EndpointSlice controller, churn, failover, cost
and the ZooKeeper ceiling, on a local control plane and a 3-server ensemble with three operator
replicas, all started here in a temporary folder and torn down at the end.

    tools/env.sh python -m benchmarks.run [--pods 1000,10000] [--no-profile] [--keep]

Writes benchmarks/results/<YYYY-MM-DD>/ (or <YYYY-MM-DD>-2, ... if that day has results already)
report.md, results.json and PNG plots. For each N:

0. Scaling, before the control plane starts: one replica's handler-to-writer path alone at
   1,000, 10,000 and 100,000 pods against an ensemble of its own (benchmarks/scaling.py).
1. N pods (Deployments of 100, each annotated for one of 5 registries from its creation, each
   selected by a Service) become Ready: per pod, from its Ready being seen to its znode being seen
   (and its ctime), and to its endpoint being seen ready in an EndpointSlice. At N above the burst
   (1,000), the first N - 1,000 come up first, then the last 1,000 are the measured burst.
2. Churn: every Deployment scaled down by 10 %, a rolling update of 5 of them, scaled back up:
   from a pod's deletion (or not Ready) being seen to its znode gone / its endpoint not ready.
3. Graceful handover: SIGTERM to the leader; until its successor's session owns every znode,
   and the member removals that a watching client sees.
4. Crash: kill -9 of the leader; from the first removal seen (its session expiring) until every
   registration is back.
5. Cost: RSS of every replica, CPU seconds per transition of the leader, a standby and
   kube-controller-manager, and the leader's ZooKeeper operations per transition.
The ZooKeeper ceiling (pipelined multi creates) is measured once, before the cluster is loaded.
At the largest N the leader is profiled with py-spy during the burst, the successor during the
handover and during the crash failover.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import kubernetes
from kazoo.client import KazooClient

from benchmarks import measure, profile, report, scaling
from benchmarks.measure import Reading, State, first_times, latencies_ms, ratio, summary
from benchmarks.observe import Observers
from benchmarks.workload import PODS_PER_DEPLOYMENT, Workload
from zkregistry.devenv.environment import Environment
from zkregistry.devenv.processes import wait_for
from zkregistry.devenv.replicas import Replica, Replicas

TOP = Path(__file__).resolve().parents[1]
OWNER = "bench"
ELECTION = f"/zkregistry/{OWNER}/election"
PODS_PER_NODE = 110  # kwok's default node: allocatable pods 110 (kustomize/kwokctl/resource/node.yaml)
SESSION_TIMEOUT = 4.0
HANDOVER_TIMEOUT = 30.0
ROLLED_DEPLOYMENTS = 5
CHURN_FRACTION, CHURN_PODS = 0.1, 500  # scale down by 10 %, by 500 pods at most
BURST = 1000  # pods that become Ready while measured, at most (see Bench._prebuild)
KCM = "kube-controller-manager"

_started = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _started:7.1f}s] {message}", flush=True)


class Bench:
    def __init__(self, workdir: Path, out: Path, profiling: bool, burst: int = BURST) -> None:
        self.workdir = workdir
        self.burst = burst
        self.out = out
        self.profiling = profiling and profile.available()
        self.env = Environment(workdir)
        self.replicas: Replicas | None = None
        self.observers: Observers | None = None
        self.recordings: list[profile.Recording] = []
        self.zk: KazooClient | None = None
        self.state = State()
        self.plots: dict = {"runs": {}}

    # -- set-up and tear-down -----------------------------------------------------------------

    def up(self, nodes: int) -> dict:
        say(f"starting ZooKeeper (3 servers) and the control plane with {nodes} kwok nodes in {self.workdir}")
        took = self.env.up(nodes=nodes)
        say(f"ensemble up in {took['ensemble_s']:.1f} s, control plane up in {took['cluster_s']:.1f} s")
        cluster = self.env.cluster
        cluster.kubectl("apply", "-f", str(TOP / "crds"))
        cluster.kubectl(
            "wait", "--for", "condition=established", "--timeout=60s", "crd/serviceregistries.zkregistry.io"
        )
        self.kube_api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        self.zk = KazooClient(self.env.ensemble.connection_string, timeout=10)
        self.zk.start(timeout=30)
        return took

    def start_replicas(self, count: int) -> list[Replica]:
        if self.replicas is None:
            self.replicas = Replicas(
                self.env.ensemble.connection_string,
                self.env.cluster.kubeconfig,
                self.workdir / "replicas",
                owner=OWNER,
                session_timeout=SESSION_TIMEOUT,
                extra_args=["--handover-timeout", str(HANDOVER_TIMEOUT)],
                path_prefixes=["/"],  # each workload registers under /<its namespace>
            )
        started = self.replicas.start(count)
        say(f"operator replicas ready: {', '.join(f'{r.name} (pid {r.pid})' for r in started)}")
        return started

    def teardown(self) -> None:
        for recording in list(self.recordings):  # py-spy writes what it has on Ctrl-C
            with contextlib.suppress(Exception):
                recording.stop()
        if self.observers:
            self.observers.stop()
        if self.zk:
            self.zk.stop()
            self.zk.close()
        if self.replicas:
            self.replicas.stop_all()
        self.env.down()

    # -- waiting --------------------------------------------------------------------------------

    def pump(self) -> None:
        if self.observers:
            self.observers.check()
            for feed in self.observers.feeds.values():
                self.state.add(feed.read())

    def wait(self, condition: Callable[[], object], timeout: float, what: str, progress: Callable[[], str]) -> float:
        """Pumps the watchers' records until `condition` holds; returns the time it did."""
        deadline = time.monotonic() + timeout
        next_line = time.monotonic() + 5
        while True:
            self.pump()
            if condition():
                return time.time()
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}: {progress()}")
            if now >= next_line:
                say(f"  {what}: {progress()}")
                next_line = now + 5
            self._check_replicas()
            time.sleep(0.1)

    def _check_replicas(self) -> None:
        for replica in self.replicas.members if self.replicas else ():
            if replica.process.poll() is not None and not getattr(replica, "expected_exit", False):
                raise RuntimeError(
                    f"operator replica {replica.name} exited ({replica.process.returncode}); "
                    f"its log {replica.log}:\n{replica.output()[-3000:]}"
                )

    def counts(self, expected: int) -> str:
        s = self.state
        return (
            f"pods {len(s.pods_alive)} (ready {len(s.pods_ready)}/{expected}), "
            f"znodes {len(s.znodes)}, ready endpoints {len(s.endpoints_ready)}"
        )

    def leader(self, exclude: Replica | None = None, timeout: float = 60) -> Replica:
        return self.replicas.wait_leader(timeout=timeout, exclude=exclude)

    def by_name(self, name: str) -> Replica:
        return next(r for r in self.replicas.members if r.name == name and r.alive())

    def record(self, pid: int, name: str, rate: int = 50) -> profile.Recording | None:
        if not self.profiling:
            return None
        recording = profile.Recording.start(pid, self.out / f"profile-{name}", rate=rate)
        self.recordings.append(recording)
        time.sleep(0.5)  # py-spy attaches
        return recording

    def stop_recording(self, recording: profile.Recording | None) -> dict | None:
        if recording is None:
            return None
        result = recording.stop()
        self.recordings.remove(recording)
        return result

    def readings(self) -> dict[str, Reading]:
        """Every running replica's reading, and kube-controller-manager's CPU."""
        out = {r.name: Reading.of(r) for r in self.replicas.running()}
        pid = self.env.cluster.pid(KCM)
        if pid is not None:
            out[KCM] = Reading.of_process(pid)
        return out

    def rss(self, leader: Replica) -> dict:
        return {
            r.name: {"role": "leader" if r is leader else "standby", **measure.rss_mib(r.pid)}
            for r in self.replicas.running()
        }

    # -- the scenario of one N -------------------------------------------------------------------

    def scenario(self, pods: int, profiling: bool, last: bool, result: dict) -> None:
        """The phases at N = `pods`; their figures go into `result` as each phase ends."""
        namespace = f"bench-{pods}"
        workload = Workload(self.kube_api, namespace, pods)
        workload.prepare()
        self.state = State()
        self.observers = Observers(
            self.workdir / "observers" / namespace,
            self.env.cluster.kubeconfig,
            namespace,
            self.env.ensemble.connection_string,
            workload.paths,
            ELECTION,
        )
        self.observers.start()
        watched = {"pods", "slices", ELECTION, *workload.paths}
        self.wait(lambda: watched <= self.state.synced, 60, "the watchers", lambda: f"synced {self.state.synced}")
        plots: dict = {}
        self.plots["runs"][pods] = plots
        result.update(pods=pods, deployments=len(workload.deployments), registries=len(workload.registries))
        say(
            f"N={pods}: {len(workload.deployments)} Deployments of {PODS_PER_DEPLOYMENT} pods in {namespace}, "
            f"annotated for {len(workload.registries)} ServiceRegistries, one Service each"
        )

        # 0. At large N, all but the last `burst` pods first, annotated from their creation ---------
        burst_names = workload.deployments[-max(1, math.ceil(min(pods, self.burst) / PODS_PER_DEPLOYMENT)) :]
        early = workload.deployments[: len(workload.deployments) - len(burst_names)]
        burst = pods - sum(workload.replicas_of(i) for i in range(len(early)))
        result["burst_pods"] = burst
        leader = self.leader()
        if early:
            result["bulk_registration"] = self._prebuild(workload, early, pods - burst, leader, profiling, result)
            plots["prebuild"] = result["bulk_registration"].pop("_values")

        # 1. Registration of a burst of pods ----------------------------------------------------
        before = self.readings()
        recording = self.record(leader.pid, f"{pods}-burst-leader") if profiling else None
        standby = next((r for r in self.replicas.running() if r is not leader), None)
        watching = self.record(standby.pid, f"{pods}-burst-standby") if profiling and standby else None
        t0 = time.time()
        workload.create_deployments(burst_names)
        say(f"  created {len(burst_names)} Deployments; waiting for {burst} more Ready pods, znodes, endpoints")
        t1 = self.wait(
            lambda: len(self.state.pods_ready) == pods and self.state.converged(),
            180 + burst * 0.12,
            "registration",
            lambda: self.counts(pods),
        )
        profiled = self.stop_recording(recording)
        profiled_standby = self.stop_recording(watching)
        after = self.readings()
        ctimes = measure.by_pod(measure.sweep(self.zk, workload.paths))
        ready = first_times(self.state.between(t0, t1, "ready"))
        zadd = first_times(self.state.between(t0, t1, "zadd"))
        epready = first_times(self.state.between(t0, t1, "epready"))
        ours, ours_missing = latencies_ms(ready, zadd)
        eps, eps_missing = latencies_ms(ready, epready)
        by_ctime, _ = latencies_ms(ready, ctimes)
        register = {
            "ours": summary(ours, ours_missing),
            "ours_ctime": summary(by_ctime),
            "endpointslice": summary(eps, eps_missing),
            "seconds": round(t1 - t0, 1),
            "pods_ready_per_s": round(len(ready) / max(1e-9, max(ready.values(), default=t0) - t0), 1),
        }
        register["ratio"] = ratio(register["ours"], register["endpointslice"])
        result["register"] = register
        if profiled:
            result.setdefault("profiles", {})["burst_leader"] = profiled
        if profiled_standby:
            result.setdefault("profiles", {})["burst_standby"] = profiled_standby
        plots["register"] = {"ours": ours, "ours_ctime": by_ctime, "endpointslice": eps}
        plots["burst"] = {
            "ready": sorted(t - t0 for t in ready.values()),
            "znode": sorted(t - t0 for t in zadd.values()),
            "endpoint": sorted(t - t0 for t in epready.values()),
            "added": sorted(t - t0 for t in first_times(self.state.between(t0, t1, "added")).values()),
        }
        say(
            f"  registered {burst} pods in {t1 - t0:.1f} s: ours p50 {register['ours']['p50']} ms "
            f"p99 {register['ours']['p99']} ms; EndpointSlice p50 {register['endpointslice']['p50']} ms "
            f"p99 {register['endpointslice']['p99']} ms"
        )
        phases = {"register": self._cost(leader, before, after, t0, t1)}
        register.update(_split(register["ours"], phases["register"].get("leader_ready_to_registered_ms")))
        time.sleep(3)
        result["rss_loaded_mib"] = self.rss(leader)

        # 2. Churn --------------------------------------------------------------------------------
        churn: dict = result.setdefault("churn", {})
        fraction = 1 - min(CHURN_FRACTION, CHURN_PODS / pods)
        target = sum(workload.sizes(fraction).values())

        def phase(name: str, action: Callable[[], object], done: Callable[[], bool], expected: int) -> None:
            before = self.readings()
            t0 = time.time()
            action()
            t1 = self.wait(
                lambda: self.state.converged() and len(self.state.pods_ready) == expected and done(),
                120 + pods * 0.03,
                name,
                lambda: self.counts(expected),
            )
            churn[name] = self._churn_figures(t0, t1)
            phases[name] = self._cost(leader, before, self.readings(), t0, t1)
            summary_line = ", ".join(
                f"{kind} ours p99 {figures['ours']['p99']} ms vs EndpointSlice {figures['endpointslice']['p99']} ms"
                for kind, figures in churn[name].items()
                if kind in ("register", "deregister") and figures["ours"]["count"]
            )
            say(f"  {name} done in {t1 - t0:.1f} s: {summary_line}")

        say(f"  churn: scaling every Deployment down ({pods} -> {target} pods)")
        phase("scale_down", lambda: workload.scale_all(fraction), lambda: True, target)
        rolled = workload.deployments[:ROLLED_DEPLOYMENTS]
        result["rolled_deployments"] = len(rolled)
        say(f"  churn: rolling update of {len(rolled)} Deployments")
        phase("rolling_update", lambda: workload.roll(len(rolled), "2"), lambda: workload.rolled_out(rolled), target)
        say(f"  churn: scaling back up ({target} -> {pods} pods)")
        phase("scale_up", lambda: workload.scale_all(1.0), lambda: True, pods)
        result["deregister"] = self._combined(churn, ["scale_down", "rolling_update"], "deregister", plots)
        result["register_churn"] = self._combined(churn, ["rolling_update", "scale_up"], "register", plots)
        for figures in churn.values():
            for kind in ("register", "deregister"):
                figures[kind].pop("_values")
                figures[kind]["ratio"] = ratio(figures[kind]["ours"], figures[kind]["endpointslice"])
        result["cost"] = self._total_cost(phases)
        result["rss_loaded_mib"] = {
            name: max(result["rss_loaded_mib"].get(name, {}), now, key=lambda v: v.get("rss", 0))
            for name, now in self.rss(leader).items()
        }

        # 3. Graceful handover ---------------------------------------------------------------------
        result["handover"] = self._handover(workload, pods, profiling, plots)
        # 4. Crash -----------------------------------------------------------------------------------
        result["crash"] = self._crash(workload, profiling, plots)
        time.sleep(3)
        result["rss_after_failover_mib"] = self.rss(self.leader())
        result["complete"] = True

        if not last:
            self._clean(workload)
        self.observers.stop()
        self.observers = None

    def _prebuild(
        self, workload: Workload, names: list[str], count: int, leader: Replica, profiling: bool, result: dict
    ) -> dict:
        """The first `count` pods, from Deployments annotated from their creation, each measured as
        the burst's are (Ready seen -> znode seen, and -> endpoint ready), under the load of
        thousands of pods coming up at once; then the last pods (the burst) become Ready, each
        measured, into registries that already hold the others."""
        say(f"  creating the first {count} pods ({len(names)} Deployments, annotated from their creation)")
        before = self.readings()
        recording = self.record(leader.pid, f"{workload.pods}-prebuild-leader") if profiling else None
        t0 = time.time()
        workload.create_deployments(names, annotated=True)
        t1 = self.wait(
            lambda: (
                len(self.state.pods_ready) == count
                and self.state.pods_alive == self.state.pods_ready
                and self.state.endpoints_ready == self.state.pods_ready
                and set(self.state.znodes) == self.state.pods_ready
            ),
            240 + count * 0.1,
            "the first pods, registered",
            lambda: self.counts(count),
        )
        profiled = self.stop_recording(recording)
        if profiled:
            result.setdefault("profiles", {})["prebuild_leader"] = profiled
        cost = self._cost(leader, before, self.readings(), t0, t1)
        ctimes = measure.by_pod(measure.sweep(self.zk, workload.paths))
        ready = first_times(self.state.between(t0, t1, "ready"))
        ours, ours_missing = latencies_ms(ready, first_times(self.state.between(t0, t1, "zadd")))
        eps, eps_missing = latencies_ms(ready, first_times(self.state.between(t0, t1, "epready")))
        by_ctime, _ = latencies_ms(ready, ctimes)
        leader_cost = next(v for v in cost["replicas"].values() if v["role"] == "leader")
        out = {
            "znodes": count,
            "annotated_from_start": True,
            "seconds": round(t1 - t0, 2),  # the Deployments' creation -> every pod Ready and registered
            "seconds_by_ctime": round(max(ctimes.values()) - t0, 2) if ctimes else None,
            "leader_cpu_s": leader_cost["cpu_s"],
            "leader_zk_ops": leader_cost["zk_ops"],
            "prebuild_s": round(t1 - t0, 1),
            "pods_ready_per_s": round(len(ready) / max(1e-9, max(ready.values(), default=t0) - t0), 1),
            "ours": summary(ours, ours_missing),
            "ours_ctime": summary(by_ctime),
            "endpointslice": summary(eps, eps_missing),
            "cost": cost | {"per_1000_transitions": _per_1000(cost)},
            "_values": {"ours": ours, "endpointslice": eps},
        }
        out["ratio"] = ratio(out["ours"], out["endpointslice"])
        out.update(_split(out["ours"], cost.get("leader_ready_to_registered_ms")))
        say(
            f"  {count} pods Ready and registered {out['seconds']} s after their Deployments' creation: ours p50 "
            f"{out['ours']['p50']} ms p99 {out['ours']['p99']} ms; EndpointSlice p50 {out['endpointslice']['p50']} "
            f"ms p99 {out['endpointslice']['p99']} ms; CPU s per 1,000 transitions: "
            f"{out['cost']['per_1000_transitions']}"
        )
        return out

    def _cost(self, leader: Replica, before: dict, after: dict, t0: float, t1: float) -> dict:
        transitions = len(self.state.between(t0, t1, "ready")) + len(self.state.between(t0, t1, "unready"))
        out = {"transitions": transitions, "seconds": round(t1 - t0, 1), "replicas": {}}
        for name, b in before.items():
            a = after.get(name)
            if a is None:
                continue
            role = KCM if name == KCM else "leader" if name == leader.name else "standby"
            out["replicas"][name] = {"role": role, "cpu_s": round(a.cpu - b.cpu, 2), "zk_ops": int(a.zk_ops - b.zk_ops)}
            if name == leader.name:  # the operator's own view: readiness seen by its inventory -> znode
                out["leader_ready_to_registered_ms"] = measure.histogram_quantiles(
                    b.ready_to_registered, a.ready_to_registered, b.ready_to_registered_sum, a.ready_to_registered_sum
                )
        return out

    def _total_cost(self, phases: dict) -> dict:
        transitions = sum(p["transitions"] for p in phases.values())
        per_role: dict = {}
        for p in phases.values():
            for figures in p["replicas"].values():
                role = per_role.setdefault(figures["role"], {"cpu_s": 0.0, "zk_ops": 0, "replicas": 0})
                role["cpu_s"] += figures["cpu_s"]
                role["zk_ops"] += figures["zk_ops"]
        standbys = max(1, len([f for f in next(iter(phases.values()))["replicas"].values() if f["role"] == "standby"]))
        leader = per_role.get("leader", {"cpu_s": 0.0, "zk_ops": 0})
        standby = per_role.get("standby", {"cpu_s": 0.0, "zk_ops": 0})
        kcm = per_role.get(KCM)
        return {
            "transitions": transitions,
            "leader_cpu_s": round(leader["cpu_s"], 2),
            "leader_zk_ops": leader["zk_ops"],
            "cpu_s_per_1000_transitions": round(1000 * leader["cpu_s"] / max(1, transitions), 2),
            "standby_cpu_s_per_1000_transitions": round(1000 * standby["cpu_s"] / standbys / max(1, transitions), 2),
            "kcm_cpu_s_per_1000_transitions": round(1000 * kcm["cpu_s"] / max(1, transitions), 2) if kcm else None,
            "zk_ops_per_transition": round(leader["zk_ops"] / max(1, transitions), 2),
            "phases": phases,
        }

    def _churn_figures(self, t0: float, t1: float) -> dict:
        s = self.state
        ready = first_times(s.between(t0, t1, "ready"))
        unready = first_times(s.between(t0, t1, "unready"))
        out = {"seconds": round(t1 - t0, 1)}
        for kind, starts, ours_kind, eps_kind in (
            ("register", ready, "zadd", "epready"),
            ("deregister", unready, "zdel", "epgone"),
        ):
            ours, ours_missing = latencies_ms(starts, first_times(s.between(t0, t1, ours_kind)))
            eps, eps_missing = latencies_ms(starts, first_times(s.between(t0, t1, eps_kind)))
            out[kind] = {
                "ours": summary(ours, ours_missing),
                "endpointslice": summary(eps, eps_missing),
                "_values": (ours, eps),
            }
        return out

    @staticmethod
    def _combined(churn: dict, names: list[str], kind: str, plots: dict) -> dict:
        """One distribution from the `kind` latencies of several churn phases."""
        ours: list[float] = []
        eps: list[float] = []
        missing = [0, 0]
        for name in names:
            figures = churn[name][kind]
            ours += figures["_values"][0]
            eps += figures["_values"][1]
            missing[0] += figures["ours"]["missing"]
            missing[1] += figures["endpointslice"]["missing"]
        plots[kind if kind == "deregister" else "register_churn"] = {"ours": ours, "endpointslice": eps}
        combined = {"ours": summary(ours, missing[0]), "endpointslice": summary(eps, missing[1]), "phases": names}
        combined["ratio"] = ratio(combined["ours"], combined["endpointslice"])
        return combined

    # -- failover --------------------------------------------------------------------------------

    def _handover(self, workload: Workload, pods: int, profiling: bool, plots: dict) -> dict:
        leader = self.leader()
        order = measure.contenders(self.zk, ELECTION)
        successor = self.by_name(order[1])
        _, old_session = measure.session_of_leader(self.zk, ELECTION)
        before = measure.sweep(self.zk, workload.paths)
        owned_before = sum(1 for _, owner in before.values() if owner == old_session)
        recording = self.record(successor.pid, f"{pods}-handover-successor", rate=250) if profiling else None
        say(f"  graceful handover: SIGTERM to the leader {leader.name}; {order[1]} is next ({owned_before} znodes)")
        leader.expected_exit = True
        t_term = time.time()
        os.kill(leader.pid, signal.SIGTERM)
        self.wait(
            lambda: leader.process.poll() is not None,
            HANDOVER_TIMEOUT + 30,
            "the old leader to hand over and exit",
            lambda: self.counts(pods),
        )
        t_exit = time.time()
        profiled = self.stop_recording(recording)  # it exits once its successor superseded everything
        new = self.leader(exclude=leader)
        _, new_session = measure.session_of_leader(self.zk, ELECTION)

        def owned() -> dict:
            now = measure.sweep(self.zk, workload.paths)
            return now if now and all(owner == new_session for _, owner in now.values()) else {}

        after = wait_for(owned, 60, "the successor to own every znode", interval=1.0)
        time.sleep(2)
        self.pump()
        t_el = next((t for t, _k, _n, _x in self.state.between(t_term, time.time(), "eldel")), t_term)
        removals = self.state.between(t_term, time.time(), "zdel")
        named = self.state.between(t_term, time.time(), "zname")
        names = [e[3] for e in named]
        gone = [t for t, _k, _n, sign in named if sign == "-"]
        taken = sorted(c for c, _ in after.values() if c >= t_term - 0.5)
        log = leader.output()
        out = {
            "leader": leader.name,
            "successor": new.name,
            "znodes": len(after),
            "owned_by_old_leader_before": owned_before,
            "taken_over": len(taken),
            "cold_resync_s": round(taken[-1] - t_el, 3) if taken else None,
            "first_takeover_after_election_s": round(taken[0] - t_el, 3) if taken else None,
            "successor_logged_elected_after_s": _after(elected_at(new, t_term), t_el),
            "from_sigterm_s": round(taken[-1] - t_term, 3) if taken else None,
            "old_leader_exit_s": round(t_exit - t_term, 2),
            # the successor's break: the last superseded name deleted (the old leader waits for it)
            "last_name_removed_s": round(gone[-1] - t_term, 3) if gone else None,
            "removals_seen": len(removals),
            "names_added": names.count("+"),  # make-before-break: each pod's other name, then the old one goes
            "names_removed": names.count("-"),
            "handover_complete_logged": "handover complete" in log,
            "deadline_passed_logged": "handover deadline passed" in log,
        }
        if profiled:
            out["profile"] = profiled
        plots["handover"] = {"taken": [c - t_el for c in taken], "sigterm": t_term - t_el}
        say(
            f"  handover to {new.name}: {len(taken)} znodes taken over in {out['cold_resync_s']} s after the "
            f"election changed ({out['from_sigterm_s']} s after SIGTERM); {len(removals)} removals seen"
        )
        return out

    def _crash(self, workload: Workload, profiling: bool, plots: dict) -> dict:
        running = self.replicas.running()
        if len(running) < 2:
            self.start_replicas(2 - len(running))
        leader = self.leader()
        order = measure.contenders(self.zk, ELECTION)
        successor = self.by_name(order[1])
        expected = set(self.state.znodes)
        say(f"  crash: kill -9 of the leader {leader.name}; {successor.name} is next ({len(expected)} znodes)")
        leader.expected_exit = True
        t_kill = time.time()
        leader.kill()
        recording = None
        if profiling:  # from a moment before the session can expire (no sooner than 2/3 of its timeout)
            time.sleep(SESSION_TIMEOUT / 2)
            recording = self.record(successor.pid, f"{len(expected)}-crash-successor", rate=250)
        new = self.leader(exclude=leader, timeout=SESSION_TIMEOUT * 3 + 30)
        _, new_session = measure.session_of_leader(self.zk, ELECTION)
        self.wait(
            lambda: set(self.state.znodes) == expected,
            60,
            "every registration back",
            lambda: f"{len(self.state.znodes)}/{len(expected)} znodes",
        )

        def owned() -> dict:
            now = measure.sweep(self.zk, workload.paths)
            return now if len(now) == len(expected) and all(o == new_session for _, o in now.values()) else {}

        after = wait_for(owned, 60, "the successor to own every znode", interval=1.0)
        profiled = self.stop_recording(recording)
        self.pump()
        events = [e for e in self.state.between(t_kill, time.time(), "zadd", "zdel")]
        present = set(expected)
        t_first_del = t_back = None
        timeline = [(0.0, len(present))]
        for t, kind, name, _path in events:
            if kind == "zdel":
                present.discard(name)
                t_first_del = t_first_del or t
            else:
                present.add(name)
            timeline.append((t - t_kill, len(present)))
            if t_first_del is not None and t_back is None and present >= expected:
                t_back = t
        t_expiry = next((t for t, _k, _n, _x in self.state.between(t_kill, time.time(), "eldel")), None)
        recreated = sorted(c for c, _ in after.values() if c >= t_kill)
        start = t_first_del or t_expiry
        out = {
            "leader": leader.name,
            "successor": new.name,
            "znodes": len(after),
            "session_timeout_s": SESSION_TIMEOUT,
            "expiry_seen_after_kill_s": round(t_expiry - t_kill, 2) if t_expiry else None,
            "removals_seen": sum(1 for e in events if e[1] == "zdel"),
            "gap_s": round(t_back - t_first_del, 3) if t_back and t_first_del else None,
            "gap_by_ctime_s": round(recreated[-1] - start, 3) if recreated and start else None,
            "recreated": len(recreated),
            "successor_logged_elected_after_expiry_s": _after(elected_at(new, t_kill), start),
            "first_recreated_after_expiry_s": _after(recreated[0] if recreated else None, start),
        }
        if out["gap_s"] is None:  # the watcher never saw a member missing: the gap was too short
            out["gap_s"] = out["gap_by_ctime_s"]
        if profiled:
            out["profile"] = profiled
        plots["crash"] = {"timeline": timeline, "expiry": (t_expiry - t_kill) if t_expiry else None}
        say(
            f"  crash: session expired {out['expiry_seen_after_kill_s']} s after kill -9; every registration "
            f"back {out['gap_s']} s after the first removal ({out['removals_seen']} removals seen)"
        )
        return out

    def _clean(self, workload: Workload) -> None:
        missing = 3 - len(self.replicas.running())
        if missing > 0:
            self.start_replicas(missing)
        say(f"  deleting {workload.namespace}")
        workload.delete()
        self.wait(
            lambda: workload.gone() and not self.state.znodes,
            300,
            f"{workload.namespace} to be gone",
            lambda: self.counts(0),
        )


def _per_1000(cost: dict) -> dict:
    """CPU seconds per 1,000 transitions of a phase, by role (a standby's: their mean)."""
    by_role: dict[str, list[float]] = {}
    for figures in cost["replicas"].values():
        by_role.setdefault(figures["role"], []).append(figures["cpu_s"])
    n = max(1, cost["transitions"])
    return {role: round(1000 * sum(v) / len(v) / n, 2) for role, v in by_role.items()}


def _split(ours: dict, own: dict | None) -> dict:
    """End-to-end registration latency against the leader's own histogram (from its inventory
    seeing the pod serving to the create's reply): the difference of the means is the pod
    intake (the API's watch to the inventory, relative to the bench's own watch) plus the
    children watch's notification to the bench's watcher."""
    if not own:
        return {}
    out: dict = {"controller_ms": own}
    if own.get("mean") is not None and ours.get("mean") is not None:
        out["intake_and_notification_mean_ms"] = round(ours["mean"] - own["mean"], 1)
    return out


def elected_at(replica: Replica, since: float) -> float | None:
    """When `replica` logged that it was elected leader (its log's local time, ms), after `since`."""
    found = None
    for line in replica.output().splitlines():
        if "elected leader as" in line:
            with contextlib.suppress(ValueError):
                t = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if t >= since - 1:
                    found = found or t
    return found


def _after(t: float | None, start: float | None) -> float | None:
    return round(t - start, 3) if t is not None and start is not None else None


def nodes_for(pods: int) -> int:
    """kwok nodes for `pods` (kwok's default node takes 110), with room for a rolling update."""
    return math.ceil((pods * 1.05 + 100) / PODS_PER_NODE) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", default="1000,10000", help="comma-separated pod counts (default 1000,10000)")
    parser.add_argument("--out", type=Path, default=TOP / "benchmarks" / "results", help="results folder")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="do not run py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) after a success")
    parser.add_argument(
        "--burst",
        type=int,
        default=BURST,
        help=f"pods measured one by one as they become Ready (default {BURST}; the others of N come up first, "
        "before their Deployments opt in); 0: all N at once",
    )
    parser.add_argument(
        "--scaling-pods",
        default=",".join(str(n) for n in scaling.DEFAULT_PODS),
        help="N of the scaling phase (default 1000,10000,100000); empty: no scaling phase",
    )
    parser.add_argument(
        "--scaling-budget", type=float, default=1200.0, help="seconds the scaling phase may take (default 1200)"
    )
    args = parser.parse_args(argv)
    counts = sorted({int(p) for p in args.pods.split(",") if p.strip()})
    if not counts or min(counts) < 10:
        parser.error("--pods needs pod counts of at least 10")

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise SystemExit("terminated")

    signal.signal(signal.SIGTERM, on_sigterm)
    day = dt.date.today().isoformat()
    out = results_folder(args.out, day)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # what a failed run of this folder left
        if old.is_file() and old.suffix in (".md", ".json", ".png", ".svg", ".txt", ".log"):
            old.unlink()
    workdir = Path(tempfile.mkdtemp(prefix="zkregistry-bench-"))
    bench = Bench(workdir, out, args.profile, args.burst or max(counts))
    command = " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])])
    results: dict = {"date": day, "command": command, "pods_run": counts, "burst": args.burst, "machine": machine()}
    wall = time.monotonic()
    ok = False
    try:
        scaling_counts = sorted({int(p) for p in args.scaling_pods.split(",") if p.strip()})
        if scaling_counts:
            results["scaling"] = scale(workdir, scaling_counts, out, bench.profiling, args.scaling_budget)
        results["environment_s"] = bench.up(nodes_for(max(counts)))
        say("ZooKeeper ceiling: 10,000 EPHEMERAL creates in pipelined multis of 100")
        results["zk_ceiling"] = measure.ceiling(bench.env.ensemble.connection_string)
        say(f"  best {results['zk_ceiling']['best_creates_per_s']} creates/s (runs: {results['zk_ceiling']['runs']})")
        bench.start_replicas(3)
        leader = bench.leader()
        time.sleep(5)
        results["rss_idle_mib"] = bench.rss(leader)
        say(f"idle: leader {leader.name} RSS {results['rss_idle_mib'][leader.name]['rss']} MiB")
        results["runs"] = {}
        for pods in counts:
            last = pods == counts[-1]
            bench.scenario(pods, profiling=last, last=last, result=results["runs"].setdefault(str(pods), {}))
        ok = True
    except BaseException as error:
        results["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        say("tearing down")
        try:
            bench.teardown()
        finally:
            results["duration_s"] = round(time.monotonic() - wall, 1)
            results["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
            if ok:
                compile_results(results)
                (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
                report.write(out, results, bench.plots)
                say(f"wrote {out / 'report.md'} ({results['duration_s']:.0f} s in all)")
            else:  # what was measured before it failed, for the record
                (out / "failed.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
                say(f"FAILED: {results.get('error')}; partial figures in {out / 'failed.json'}")
            if ok and not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                say(f"kept {workdir} (replica logs in {workdir / 'replicas'})")
    return 0


def results_folder(top: Path, day: str) -> Path:
    """<top>/<day>, or <day>-2, -3...: a run never replaces one that completed (its results.json)."""
    for n in range(1, 100):
        folder = top / (day if n == 1 else f"{day}-{n}")
        if not (folder / "results.json").exists():
            return folder
    raise RuntimeError(f"no free results folder for {day} under {top}")


def scale(workdir: Path, counts: list[int], out: Path, profiling: bool, budget: float) -> dict:
    """The scaling phase (benchmarks/scaling.py), before the control plane starts, against an
    ensemble of its own (see scaling.start_ensemble for why not the bench's)."""
    say(f"scaling: one replica alone at N = {', '.join(map(str, counts))} (at most {budget:.0f} s)")
    ensemble = scaling.start_ensemble(workdir / "scaling")
    try:
        figures = scaling.run(
            ensemble.connection_string, counts, profile_dir=out if profiling else None, budget_s=budget
        )
    finally:
        ensemble.stop()
    figures["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    for row in figures["table"]:
        say(
            f"  {row['layout']} N={row['pods']}: {row['cpu_us_per_transition']} CPU us per transition, "
            f"registered in {row['register_s']} s, RSS {row['rss_registered_mib']} MiB"
            + (f" ({row['note']})" if row.get("note") else "")
        )
    say(f"  CPU per transition, largest N over smallest: {figures['cpu_ratio_by_layout']}")
    return figures


def compile_results(results: dict) -> None:
    """The keys that runs are compared by, at the top level, from the largest N."""
    largest = results["runs"][str(max(results["pods_run"]))]
    leader_idle = next(v for v in results["rss_idle_mib"].values() if v["role"] == "leader")
    loaded = largest["rss_loaded_mib"].values()
    after = (largest.get("rss_after_failover_mib") or {}).values()
    results.update(
        {
            "pods": largest["pods"],
            "burst_pods": largest["burst_pods"],
            "register_latency_ms": {
                k: largest["register"][k] for k in ("ours", "endpointslice", "ratio", "ours_ctime")
            },
            "deregister_latency_ms": largest["deregister"],
            "cold_resync_s": largest["handover"]["cold_resync_s"],
            "crash_failover_gap_s": largest["crash"]["gap_s"],
            "graceful_handover_removals": largest["handover"]["removals_seen"],
            "rss_mib": {
                "leader_idle": leader_idle["rss"],
                "leader_loaded": max(v["rss"] for v in loaded if v["role"] == "leader"),
                "standby_loaded": max((v["rss"] for v in loaded if v["role"] == "standby"), default=None),
                "peak_any_replica": max(v.get("peak", 0) for v in [*loaded, *after]),
                "after_failover": max((v["rss"] for v in after), default=None),
            },
            "cpu_s_per_1000_transitions": largest["cost"]["cpu_s_per_1000_transitions"],
            "standby_cpu_s_per_1000_transitions": largest["cost"]["standby_cpu_s_per_1000_transitions"],
            "kcm_cpu_s_per_1000_transitions": largest["cost"].get("kcm_cpu_s_per_1000_transitions"),
            "handover_old_leader_exit_s": largest["handover"]["old_leader_exit_s"],
            "register_split_ms": {
                k: largest["register"].get(k) for k in ("controller_ms", "intake_and_notification_mean_ms")
            },
            "scaling_cpu_ratio": (results.get("scaling") or {}).get("cpu_ratio_largest_over_smallest"),
            "zk_ops_per_transition": largest["cost"]["zk_ops_per_transition"],
            "zk_ceiling_creates_per_s": results["zk_ceiling"]["best_creates_per_s"],
        }
    )
    results["goals"] = report.goals(results)


def machine() -> dict:
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    git = subprocess.run(["git", "-C", str(TOP), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(TOP), "status", "--porcelain", "operator"], capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "load_avg_at_start": [round(x, 2) for x in load] if load else None,
        "python": platform.python_version(),
        "commit": git.stdout.strip() + (" (operator/ modified)" if dirty.stdout.strip() else ""),
    }


if __name__ == "__main__":
    sys.exit(main())
