"""Watchers that stamp what a client sees, on one clock (time.time(), the same clock as a znode's
ctime: every server runs on this machine).

Each watcher runs as a process of its own (`python -m benchmarks.observe pods|slices|zk ...`), so
that none waits for another's parsing, and appends one JSON array per event to a file:
`[t, kind, key, extra]`.

    pods    added, ready (first Ready=True seen, not terminating), unready (first deletionTimestamp,
            Ready!=True or deletion seen after it was ready; extra: why), deleted. key: pod uid
    slices  epready (the pod's endpoint first seen ready in any EndpointSlice), epgone (no longer
            ready in any: removed, not ready or terminating). key: the targetRef's pod uid
    zk      zadd, zdel (a pod's registration appears under a service path, or its last znode
            there disappears; extra: the path; key: the pod's uid, the znode's name without the
            `.1` of the pod's second name), zname (a znode name added or removed, key the name,
            extra "+" or "-": make-before-break shows as a second name, then the first one going),
            eladd, eldel (a contender of the operator's election; key: the child's name)

`Observers` starts them and `Feed` reads what they wrote so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

Emit = Callable[[float, str, str, object], None]
PRIORITY = -5  # the watchers' niceness (if allowed): above the servers and replicas that they watch


def _writer(path: str) -> Emit:
    out = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)
    lock = threading.Lock()

    def emit(t: float, kind: str, key: str, extra: object = None) -> None:
        with lock:
            out.write(json.dumps([t, kind, key, extra]) + "\n")

    return emit


# -- Kubernetes ------------------------------------------------------------------------------


def _lines(response) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line)


def _follow(list_call: Callable, on_object: Callable[[str, dict, float], None], emit: Emit, what: str) -> None:
    """List, then watch from the list's resourceVersion, forever; relists after 410 Gone."""
    version = None
    while True:
        try:
            if version is None:
                body = json.loads(list_call(_preload_content=False).data)
                t = time.time()
                version = body["metadata"]["resourceVersion"]
                for item in body.get("items") or ():
                    on_object("ADDED", item, t)
                emit(t, "sync", what, version)
            response = list_call(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=1800,
                _preload_content=False,
            )
            for line in _lines(response):
                t = time.time()
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        version = None
                    break
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind != "BOOKMARK":
                    on_object(kind, obj, t)
        except Exception as error:  # the apiserver went away for a moment: watch again
            emit(time.time(), "error", what, repr(error)[:300])
            time.sleep(0.5)


def _kube(kubeconfig: str):
    import kubernetes

    return kubernetes.config.new_client_from_config(kubeconfig)


def observe_pods(kubeconfig: str, namespace: str, emit: Emit) -> None:
    import kubernetes

    core = kubernetes.client.CoreV1Api(_kube(kubeconfig))
    seen: set[str] = set()
    ready: set[str] = set()
    done: set[str] = set()

    def on_pod(kind: str, pod: dict, t: float) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid") or ""
        if uid not in seen:
            seen.add(uid)
            emit(t, "added", uid, meta.get("name"))
        conditions = (pod.get("status") or {}).get("conditions") or ()
        is_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        if kind == "DELETED":
            why = "deleted"
        elif meta.get("deletionTimestamp"):
            why = "terminating"
        elif not is_ready:
            why = "notready"
        else:
            why = ""
        if not why and uid not in ready:
            ready.add(uid)
            emit(t, "ready", uid, meta.get("name"))
        elif why and uid in ready and uid not in done:
            done.add(uid)
            emit(t, "unready", uid, why)
        if kind == "DELETED":
            emit(t, "deleted", uid, None)

    _follow(lambda **kw: core.list_namespaced_pod(namespace, **kw), on_pod, emit, "pods")


def observe_slices(kubeconfig: str, namespace: str, emit: Emit) -> None:
    import kubernetes

    discovery = kubernetes.client.DiscoveryV1Api(_kube(kubeconfig))
    ready_in: dict[str, set[str]] = {}  # pod uid -> slices in which its endpoint is ready
    slices: dict[str, set[str]] = {}  # slice name -> uids ready in it

    def on_slice(kind: str, body: dict, t: float) -> None:
        name = (body.get("metadata") or {}).get("name") or ""
        now: set[str] = set()
        if kind != "DELETED":
            for endpoint in body.get("endpoints") or ():
                uid = (endpoint.get("targetRef") or {}).get("uid")
                conditions = endpoint.get("conditions") or {}
                if uid and conditions.get("ready") is not False and not conditions.get("terminating"):
                    now.add(uid)
        before = slices.get(name, set())
        slices[name] = now
        for uid in now - before:
            holders = ready_in.setdefault(uid, set())
            if not holders:
                emit(t, "epready", uid, name)
            holders.add(name)
        for uid in before - now:
            holders = ready_in.get(uid, set())
            holders.discard(name)
            if not holders:
                emit(t, "epgone", uid, name)

    _follow(lambda **kw: discovery.list_namespaced_endpoint_slice(namespace, **kw), on_slice, emit, "slices")


# -- ZooKeeper -------------------------------------------------------------------------------


def uid_of(name: str) -> str:
    """The pod a registration's znode name stands for: `<uid>` and `<uid>.1` are the same pod."""
    from zkregistry.plan import ALTERNATE

    return name.removesuffix(ALTERNATE)


def observe_zk(hosts: str, paths: list[str], election: str, emit: Emit) -> None:
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoNodeError

    client = KazooClient(hosts, timeout=10)
    client.start(timeout=30)

    def follow(path: str, added: str, removed: str, by_pod: bool) -> None:
        changed = threading.Event()
        changed.set()
        last: set[str] | None = None
        while True:
            changed.wait()
            changed.clear()
            try:
                try:
                    children = client.get_children(path, watch=lambda _e: changed.set())
                except NoNodeError:
                    children = []
                    if client.exists(path, watch=lambda _e: changed.set()) is not None:
                        changed.set()
                        continue
            except Exception as error:  # connection lost for a moment: list again
                emit(time.time(), "error", path, repr(error)[:300])
                time.sleep(0.2)
                changed.set()
                continue
            t = time.time()
            now = set(children)
            if last is None:
                emit(t, "sync", path, len(now))
                last = set()
            if not by_pod:
                for name in now - last:
                    emit(t, added, name, path)
                for name in last - now:
                    emit(t, removed, name, path)
            else:  # a pod is registered while any of its names is there
                before, after = {uid_of(n) for n in last}, {uid_of(n) for n in now}
                for name in now - last:
                    emit(t, "zname", name, "+")
                for name in last - now:
                    emit(t, "zname", name, "-")
                for uid in after - before:
                    emit(t, added, uid, path)
                for uid in before - after:
                    emit(t, removed, uid, path)
            last = now

    for path in paths:
        threading.Thread(target=follow, args=(path, "zadd", "zdel", True), daemon=True).start()
    threading.Thread(target=follow, args=(election, "eladd", "eldel", False), daemon=True).start()
    while True:
        time.sleep(3600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observe")
    parser.add_argument("what", choices=("pods", "slices", "zk"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--namespace")
    parser.add_argument("--hosts")
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--election")
    parser.add_argument("--priority", type=int, help="run at this niceness, if allowed (root may lower it)")
    args = parser.parse_args(argv)
    if args.priority is not None:
        # The watchers are the instrument, and use little CPU: the sooner they stamp, the truer the figure.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, args.priority)
    emit = _writer(args.out)
    if args.what == "pods":
        observe_pods(args.kubeconfig, args.namespace, emit)
    elif args.what == "slices":
        observe_slices(args.kubeconfig, args.namespace, emit)
    else:
        observe_zk(args.hosts, args.path, args.election, emit)


# -- the parent's side -----------------------------------------------------------------------


class Feed:
    """Reads the records that a watcher appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[list]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [json.loads(line) for line in lines if line]


class Observers:
    """The three watchers of one namespace's workload, as child processes."""

    def __init__(self, folder: Path, kubeconfig: Path, namespace: str, hosts: str, paths: list[str], election: str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.commands = {
            "pods": ["--kubeconfig", str(kubeconfig), "--namespace", namespace],
            "slices": ["--kubeconfig", str(kubeconfig), "--namespace", namespace],
            "zk": ["--hosts", hosts, *[a for p in paths for a in ("--path", p)], "--election", election],
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.feeds = {what: Feed(self.folder / f"{what}.jsonl") for what in self.commands}

    def start(self) -> None:
        top = Path(__file__).resolve().parents[1]
        for what, args in self.commands.items():
            log = open(self.folder / f"{what}.log", "ab")  # noqa: SIM115 (the child keeps it)
            self.processes[what] = subprocess.Popen(
                [
                    *(sys.executable, "-m", "benchmarks.observe", what, "--priority", str(PRIORITY)),
                    *("--out", str(self.folder / f"{what}.jsonl"), *args),
                ],
                cwd=top,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()

    def check(self) -> None:
        for what, process in self.processes.items():
            if process.poll() is not None:
                log = (self.folder / f"{what}.log").read_text(errors="replace")
                raise RuntimeError(f"the {what} watcher exited ({process.returncode}):\n{log[-2000:]}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


if __name__ == "__main__":
    main(sys.argv[1:])
