"""A graceful handover between two replicas, without a control plane: how long the old leader's
`Operator.shutdown()` takes, and what its mirror shows meanwhile.

    tools/env.sh python -m benchmarks.handover [--pods 10000]

Two processes, each app.py's Operator built as benchmarks/scaling.py builds it, with the same
inventory (the same seed: the same pods and uids), against an ensemble of their own: A leads and
registers N pods in 5 to 50 registries (the even layout); B joins and settles as a standby; then A
runs its graceful shutdown (stop writing, leave the election, wait until each of its registrations
is gone or superseded by B's, at most --handover-timeout, then close its session). Prints A's
shutdown time, B's takeover time, B's break (until B's mirror holds no registration of A's
session) and, every half second, how many registrations A's mirror still counts as its own, how
many of them await a successor's (`Controller.awaiting_successor`), and how many listings and
reads it has sent. With --crash, A is killed (SIGKILL) instead: B takes over once A's session
expires, and its takeover and the requests its mirror sent are
printed. Bounded: at most a few minutes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import measure, scaling


def replica(role: str, hosts: str, pods: int, tag: str, folder: Path, crash: bool = False) -> None:
    r = scaling.Replica(hosts, f"/zkregistry-scaling/handover-{tag}", identity=f"replica-{role}")
    scaling.Workload(pods, f"{scaling.PREFIX}/handover-{tag}", "even").fill(r.inventory, keep=False)
    r.lead()
    if role == "a":
        scaling.wait_until(lambda: r.controller.owned() >= pods, 300, "registered", event=r.reconciled)
        scaling.settle(r, 120)
        (folder / "a-ready").write_text("")
        scaling.wait_until(lambda: (folder / "b-ready").exists(), 300, "the standby")
        time.sleep(3)
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
        before, samples, done = dict(r.requests), [], threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not done.is_set():
                samples.append(
                    {
                        "t": round(time.monotonic() - started, 1),
                        "owned": r.controller.owned(),
                        "awaiting": r.controller.awaiting_successor(),
                        "listings": r.requests["get_children"] - before["get_children"],
                        "reads": r.requests["get"] - before["get"],
                    }
                )
                time.sleep(0.5)

        threading.Thread(target=sample, daemon=True).start()
        r.operator.shutdown()
        done.set()
        (folder / "a.json").write_text(
            json.dumps({"shutdown_s": round(time.monotonic() - started, 2), "mirror": samples})
        )
    else:
        time.sleep(5)
        scaling.settle(r, 120)  # a standby that has read every path, as a long-running one has
        (folder / "b-ready").write_text("")
        collections: list[float] = []  # seconds of each collection of the cyclic garbage collector
        began = [0.0]
        gc.callbacks.append(
            lambda phase, info: began.__setitem__(0, time.perf_counter())
            if phase == "start"
            else collections.append(time.perf_counter() - began[0])
        )
        rss_before = measure.rss_mib(os.getpid())
        scaling.wait_until(lambda: r.election.writable, 300, "leadership", poll=0.01)
        started, before = time.monotonic(), dict(r.requests)
        del collections[:]
        scaling.wait_until(lambda: r.controller.owned() >= pods, 300, "the takeover", event=r.reconciled, poll=0.1)
        took = round(time.monotonic() - started, 2)
        requests = {kind: r.requests[kind] - before.get(kind, 0) for kind in ("get_children", "get")}
        out = {"takeover_s": took, "requests": requests, "gc_s": round(sum(collections), 3)}
        if not crash:  # the break: the old session's registrations deleted, as this mirror knows
            scaling.wait_until(lambda: r.controller.owned() == sum_ours(r), 300, "the break", poll=0.05)
            out["break_s"] = round(time.monotonic() - started, 2)
        out["rss_mib"] = {"before": rss_before, "after": measure.rss_mib(os.getpid())}  # VmRSS and VmHWM
        (folder / "b.json").write_text(json.dumps(out))
        time.sleep(40)  # the old leader is still handing over: stay
        r.close()
    os._exit(0)


def sum_ours(r: scaling.Replica) -> int:
    """Registrations of ours in `r`'s mirror, of any session."""
    from zkregistry.plan import is_ours

    return sum(r.membership.count(path, lambda n: is_ours(n, scaling.OWNER)) for path in r.membership.paths())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--crash", action="store_true", help="kill the leader instead of stopping it")
    parser.add_argument("--role", choices=("a", "b"), help=argparse.SUPPRESS)
    parser.add_argument("--hosts", help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        replica(args.role, args.hosts, args.pods, args.tag, args.folder, args.crash)
    workdir = Path(tempfile.mkdtemp(prefix="zkregistry-handover-"))
    ensemble = scaling.start_ensemble(workdir)
    try:
        command = [sys.executable, "-m", "benchmarks.handover", "--pods", str(args.pods), "--tag", str(os.getpid())]
        command += ["--hosts", ensemble.connection_string, "--folder", str(workdir)] + ["--crash"] * args.crash
        top = Path(__file__).resolve().parents[1]
        a = subprocess.Popen([*command, "--role", "a"], cwd=top)
        scaling.wait_until(lambda: (workdir / "a-ready").exists() or a.poll() is not None, 400, "the leader")
        b = subprocess.Popen([*command, "--role", "b"], cwd=top)
        for process in (a, b):
            try:
                process.wait(400)
            except subprocess.TimeoutExpired:
                process.kill()
        out = {"pods": args.pods}
        for role in ("a", "b"):
            path = workdir / f"{role}.json"
            out[role] = json.loads(path.read_text()) if path.exists() else None
        print(json.dumps(out, indent=1))
    finally:
        ensemble.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
