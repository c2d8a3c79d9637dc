"""`make soak`: three replicas, a 3-server ensemble and a control plane, a workload that churns all
the time, a seeded random nemesis, and a checker, for `--minutes` (default 30).

    tools/env.sh python -m soak.run [--seed N] [--minutes M] [--out DIR]

The seed is printed first; the same seed draws the same workload and the same schedule of faults.
Everything runs on loopback in a temporary folder that is removed at the end. Writes
soak/results/<YYYY-MM-DD>[-N]/ (or --out): results.json, report.md, timeline.png, and the replicas'
logs when an invariant broke. Exits 0 if every invariant held, 1 otherwise (each broken one is
printed with its time), 2 if the environment could not be set up.

After each round of faults heals, every invariant must hold again within BOUND seconds (see
soak/checker.py); absences that clients saw are attributed to the faults (soak/absences.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import kubernetes
from kazoo.client import KazooClient

from benchmarks.measure import percentile
from benchmarks.run import results_folder
from soak import absences, report
from soak.checker import Checker, Sampler, slope_per_hour
from soak.nemesis import KINDS, Foreign, Nemesis, Round, Slots
from soak.workload import BASE_PATH, REGISTRIES, Workload
from tests.interop.harness import CuratorProgram
from tests.observers import ObserverSet
from zkregistry.devenv.environment import Environment
from zkregistry.devenv.processes import wait_for
from zkregistry.devenv.replicas import Replicas

TOP = Path(__file__).resolve().parents[1]
OWNER = "soak"
NAMESPACE = "soak"
REPLICAS = 3
BOUND = 60.0  # seconds after a round heals within which every invariant must hold again
SESSION_TIMEOUT = 4.0
RESYNC_SECONDS = 15  # a znode corrupted in place is found at the next resync
WARMUP = 60.0  # seconds of a replica's start left out of its resource slopes
GAP = (3.0, 10.0)  # seconds of calm between two rounds

_started = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _started:7.1f}s] {message}", flush=True)


class StoppedError(BaseException):
    """SIGTERM or SIGINT: stop injecting, report what was seen, tear down. A BaseException, so
    that no `except Exception` of a retry loop swallows it."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="the nemesis's and workload's seed (default: random)")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long faults are injected (default 30)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default soak/results/<date>[-N])")
    parser.add_argument(
        "--kinds", default=",".join(KINDS),
        help=f"comma-separated fault kinds to draw from (default all: {','.join(KINDS)})",
    )
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if unknown := sorted(set(kinds) - set(KINDS)):
        parser.error(f"unknown fault kinds: {unknown}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    say(f"soak seed {seed} (repeat with --seed {seed}), {args.minutes:g} minutes")
    out = args.out or results_folder(TOP / "soak" / "results", dt.date.today().isoformat())

    def on_signal(_signum: int, _frame: object) -> None:
        raise StoppedError()

    # kazoo logs every dropped connection; the nemesis drops many on purpose.
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="zkregistry-soak-"))
    soak = Soak(workdir, seed, args.minutes * 60, kinds)
    try:
        soak.up()
    except StoppedError:
        soak.down(out if soak.violations else None)
        return 2
    except Exception as error:
        say(f"the environment could not be set up: {type(error).__name__}: {error}")
        soak.down(out)
        return 2
    try:
        soak.run()
    except StoppedError:
        say("stopped by a signal: reporting what was seen so far")
        soak.interrupted = True
    try:
        soak.finish()
        results = soak.results()
    finally:
        soak.down(out if soak.violations else None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report.write(out, results, soak.sampler.timeline if soak.sampler else [])
    say(f"results in {out}")
    if soak.violations:
        say(f"{len(soak.violations)} invariant(s) broken:")
        for v in soak.violations:
            print(f"  at +{v['t'] - soak.t0:.1f}s [{v['invariant']}] {v['problem']}", flush=True)
        return 1
    say("every invariant held")
    return 0


class Soak:
    def __init__(self, workdir: Path, seed: int, seconds: float, kinds: tuple[str, ...] = KINDS) -> None:
        self.workdir, self.seed, self.seconds, self.kinds = workdir, seed, seconds, kinds
        self.rng = random.Random(seed)
        self.env = Environment(workdir)
        self.replicas: Replicas | None = None
        self.zk: KazooClient | None = None
        self.foreign: Foreign | None = None
        self.observers: dict[str, ObserverSet] = {}
        self.sampler: Sampler | None = None
        self.rounds: list[Round] = []
        self.known: set[str] = set()  # problems reported already, left out of later rounds' checks
        self.violations: list[dict] = []
        self.stop_churn = threading.Event()
        self.churn_thread: threading.Thread | None = None
        self.interrupted = False
        self.t0 = time.time()
        self.t_end = self.t0
        self.final: dict = {}
        self.commit = commit()  # what runs: the tree may move on while it does

    # -- set-up and tear-down -------------------------------------------------------------------

    def up(self) -> None:
        say(f"starting ZooKeeper (3 servers) and the control plane in {self.workdir}")
        self.env.up(nodes=3)
        cluster = self.env.cluster
        cluster.kubectl("apply", "-f", str(TOP / "crds"))
        cluster.kubectl(
            "wait", "--for", "condition=established", "--timeout=60s",
            "crd/serviceregistries.zkregistry.io", "crd/registrypolicies.zkregistry.io",
        )
        self.kube_api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        hosts = self.env.ensemble.connection_string
        self.zk = KazooClient(hosts, timeout=15)
        self.zk.start(timeout=60)
        # The workload draws from a generator of its own: its pace does not shift the nemesis's draws.
        self.workload = Workload(self.kube_api, NAMESPACE, random.Random(self.rng.getrandbits(64)))
        self.workload.prepare()
        wait_for(self.workload.steady_ready, 120, "the steady pods Ready")
        self.replicas = Replicas(
            hosts, cluster.kubeconfig, self.workdir / "replicas", owner=OWNER, namespaces=[NAMESPACE],
            session_timeout=SESSION_TIMEOUT,
            extra_args=["--resync-seconds", str(RESYNC_SECONDS), "--handover-timeout", "30"],
            path_prefixes=[],  # only the workload's RegistryPolicy grants paths
        )
        self.slots = Slots(self.replicas, REPLICAS)
        say(f"replicas ready: {', '.join(f'{r.name} (pid {r.pid})' for r in self.slots.current.values())}")
        self.foreign = Foreign(hosts)
        self.checker = Checker(self.workload, self.zk, self.slots, OWNER, self.foreign)
        converged, problems = self.checker.converge(180)
        if converged is None:
            raise RuntimeError(f"the operator did not converge at the start: {problems}")
        say("converged; building Curator's observer and starting the observers")
        program = CuratorProgram.build()
        for registry in REGISTRIES:
            self.observers[registry] = ObserverSet(hosts, BASE_PATH, registry, program).start()
        self.steady = self.workload.steady_pods()
        for registry, observers in self.observers.items():
            observers.wait_seen(self.steady[registry])
        self.nemesis = Nemesis(
            random.Random(self.rng.getrandbits(64)), self.slots, self.env.ensemble, cluster, self.zk,
            list(self.workload.paths.values()), OWNER, self.foreign, log=say, kinds=self.kinds,
        )

    def down(self, logs_to: Path | None) -> None:
        """Stops everything started here; copies the replicas' logs to `logs_to` if given."""
        self.stop_churn.set()
        if self.churn_thread:
            self.churn_thread.join(30)
        if self.sampler:
            with contextlib.suppress(Exception):
                self.sampler.stop()
        for observers in self.observers.values():
            with contextlib.suppress(Exception):
                observers.stop()
        if self.replicas:
            with contextlib.suppress(Exception):
                self.replicas.stop_all()
        for client in (self.foreign, ):
            with contextlib.suppress(Exception):
                client and client.close()
        if self.zk:
            with contextlib.suppress(Exception):
                self.zk.stop()
                self.zk.close()
        for server in self.env.ensemble.servers:  # a fault may have left one paused
            with contextlib.suppress(Exception):
                if server.pid:
                    self.env.ensemble.resume_server(server.myid)
        with contextlib.suppress(Exception):
            self.env.cluster.resume_apiserver()
        self.env.down()
        if logs_to is not None and (self.workdir / "replicas").exists():
            shutil.copytree(self.workdir / "replicas", logs_to / "logs", dirs_exist_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> None:
        self.sampler = Sampler(self.checker, log=say)
        self.sampler.start()
        self.churn_thread = threading.Thread(
            target=self.workload.churn, args=(self.stop_churn,), name="churn", daemon=True
        )
        self.churn_thread.start()
        self.t0 = time.time()
        deadline = time.monotonic() + self.seconds
        say(f"churn and nemesis start; faults for {self.seconds / 60:g} min, bound {BOUND:g} s after each heals")
        number = 0
        while time.monotonic() < deadline:
            number += 1
            round_ = self.nemesis.round(number)
            self.rounds.append(round_)
            targets = ", ".join(f"{f.kind}({f.target})" for f in round_.faults)
            converged, problems = self.checker.converge(BOUND, known=self.known)
            round_.converged, round_.problems = converged, problems
            if converged is None:
                # Lasting breaks only: the transient kinds of problem say nothing of the operator.
                self.known.update(p for p in problems if not p.startswith(("could not check", "the pods changed")))
                say(f"round {number}: {targets}: NOT converged within {BOUND:g} s: {problems}")
                self.violations.append({
                    "t": round_.healed, "invariant": f"converged within {BOUND:g} s",
                    "problem": f"round {number} ({targets}): " + "; ".join(problems),
                })
            else:
                say(f"round {number}: {targets}: converged {converged - round_.healed:.1f} s after healing")
            time.sleep(self.nemesis.rng.uniform(*GAP))

    def finish(self) -> None:
        """Stops the churn, checks once more, reads what the observers saw."""
        self.stop_churn.set()
        if self.churn_thread:
            self.churn_thread.join(30)
        if self.t0 and self.sampler and not self.interrupted:
            converged, problems = self.checker.converge(BOUND, known=self.known)
            self.final = {"converged": converged is not None, "problems": problems}
            if converged is None:
                self.violations.append(
                    {"t": time.time(), "invariant": "final convergence", "problem": "; ".join(problems)}
                )
        self.t_end = time.time()
        if self.sampler:
            self.sampler.stop()
            self.violations += self.sampler.violations

    # -- results --------------------------------------------------------------------------------

    def results(self) -> dict:
        missing = {
            registry: observers.missing(self.steady[registry], since=self.t0, until=self.t_end)
            for registry, observers in self.observers.items()
        }
        blind = {
            registry: {o.name: round(sum(e - s for s, e in o.presence().blind_periods(self.t_end)), 3)
                       for o in observers.observers}
            for registry, observers in self.observers.items()
        }
        figures, absent, every = absences.attribute(missing, self.rounds, BOUND)
        self.violations += absent
        self.violations.sort(key=lambda v: v["t"])
        faults = Counter(f.kind for r in self.rounds for f in r.faults)
        converge: dict[str, list[float]] = {}
        for r in self.rounds:
            if r.converged is not None:
                for kind in r.kinds:
                    converge.setdefault(kind, []).append(r.converged - r.healed)
        passed = sum(1 for r in self.rounds if r.converged is not None) + int(bool(self.final.get("converged")))
        failed = sum(1 for r in self.rounds if r.converged is None) + int(self.final.get("converged") is False)
        return {
            "seed": self.seed,
            "commit": self.commit,
            "planned_minutes": self.seconds / 60,
            "duration_s": round(self.t_end - self.t0, 1),
            "interrupted": self.interrupted,
            "bound_s": BOUND,
            "settings": {"kinds": list(self.kinds),
                         "replicas": REPLICAS, "session_timeout_s": SESSION_TIMEOUT, "resync_s": RESYNC_SECONDS,
                         "registries": list(REGISTRIES), "steady_pods": {r: len(u) for r, u in self.steady.items()}},
            "rounds": len(self.rounds),
            "overlapping_rounds": sum(1 for r in self.rounds if len(r.faults) > 1),
            "faults": dict(sorted(faults.items())),
            "fault_errors": [f.as_dict() for r in self.rounds for f in r.faults if f.error],
            "checks": {"passed": passed, "failed": failed},
            "final": self.final,
            "converge_s": {k: stats(v) for k, v in sorted(converge.items())},
            "missing": figures,
            "absences": [{**a, "at_s": round(a["t"] - self.t0, 3)} for a in every],
            "observer_blind_s": blind,
            "resources": resources(self.sampler.processes if self.sampler else {}),
            "churn": {"actions": dict(self.workload.actions), "failed": dict(self.workload.failures)},
            "replica_exits": [{**e, "at_s": round(e["t"] - self.t0, 1)} for e in self.checker.exits],
            "tracebacks": tracebacks(self.workdir / "replicas"),
            "violations": [{**v, "at_s": round(v["t"] - self.t0, 1)} for v in self.violations],
            "round_log": [r.as_dict() for r in self.rounds],
            "t0": self.t0,
        }


def stats(values: list[float]) -> dict:
    return {
        "count": len(values),
        "p50": round(percentile(values, 50), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
    }


def resources(processes: dict[str, list[tuple[float, dict]]]) -> dict:
    """Per replica process ("name pid"): its span, first and last samples, and the least-squares
    slope per hour of RSS, threads and descriptors (a restarted replica is a new process). The
    slope leaves out a process's first WARMUP seconds: its start-up is growth, not a leak."""
    out = {}
    for key, samples in processes.items():
        span = samples[-1][0] - samples[0][0]
        steady = [(t, v) for t, v in samples if t >= samples[0][0] + WARMUP]
        out[key] = {
            "samples": len(samples),
            "span_s": round(span, 1),
            "first": samples[0][1],
            "last": samples[-1][1],
            **{
                f"{metric}_per_hour": (
                    None if (s := slope_per_hour([(t, v[metric]) for t, v in steady])) is None else round(s, 2)
                )
                for metric in ("rss_mib", "threads", "fds")
            },
        }
    return out


def tracebacks(folder: Path) -> dict[str, dict]:
    """Per replica log: how many tracebacks it holds, and the last lines of the first one."""
    out = {}
    for log in sorted(folder.glob("*.log")):
        text = log.read_text(errors="replace")
        count = text.count("Traceback (most recent call last)")
        if count:
            first = text[text.index("Traceback (most recent call last)") :]
            out[log.stem] = {"count": count, "first": "\n".join(first.splitlines()[:30])}
    return out


def commit() -> str | None:
    """HEAD, with "-dirty" if the tracked files differ from it."""
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=TOP, capture_output=True, text=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=TOP, capture_output=True).returncode != 0
    return (result.stdout.strip() + ("-dirty" if dirty else "")) or None


if __name__ == "__main__":
    sys.exit(main())
