"""High availability as clients see it: three replicas, one ZooKeeper-elected leader, faults of
every part, with churn.

The stable service `web` (4 pods, which stay Ready throughout) is watched by three observers
(tests/observers.py), each tracking every pod by uid on its own session: a children watch, a data
watch per child, and Apache Curator's ServiceCache. A second service, `churn`, is scaled up and
down during the faults. Beside the operator's registrations sits a foreign one (a Curator
instance of another owner), which must never be touched. After every scenario ZooKeeper holds
exactly one registration per Ready pod, in the registry's format, and each status agrees.

Every scenario prints its figures (times, and each observer's missing pods, total and longest
absence); run with `-s` to see them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import kubernetes
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from conftest import eventually
from interop.harness import CuratorProgram
from kit import apply_registry, create_deployment, get_registry, ready_pods, scale
from observers import ObserverSet, longest, total
from zkregistry import api
from zkregistry.devenv.processes import wait_for
from zkregistry.formats import read_any

SESSION_TIMEOUT = 2.0  # the replicas fixture's
# What this machine adds to the protocol's own bounds: 2 shared cores run the control plane, three
# ZooKeeper JVMs, Curator's JVM, the replicas and the churn, so a process may wait a second or two
# for a core.
SLACK = 2.0
HANDOVER_EXIT = 5.0  # seconds from SIGTERM until the old leader has exited
FOREIGN = "vm-foreign"


# -- what ZooKeeper and the status hold ----------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    name: str
    format: str
    uid: str | None
    address: str | None
    session: int


def ours(zk: KazooClient, path: str, owner: str) -> list[Registration]:
    """The znodes under `path` whose payload names `owner`, in any format."""
    try:
        names = zk.get_children(path)
    except NoNodeError:
        return []
    out = []
    for name in names:
        try:
            data, stat = zk.get(f"{path}/{name}")
            codec, member = read_any(name, data)
        except (NoNodeError, ValueError):
            continue
        if member.owner == owner:
            out.append(Registration(name, codec.name, member.uid, member.address, stat.ephemeralOwner))
    return out


def sessions(zk: KazooClient, path: str, owner: str) -> set[int]:
    return {r.session for r in ours(zk, path, owner)}


def disagreement(kube_api, zk, namespace: str, app: str, fmt: str, foreign: int) -> str | None:
    """Why ZooKeeper, the Ready pods and the status of `app` disagree; None when they agree."""
    pods = ready_pods(kube_api, namespace, app)
    registrations = ours(zk, f"/{namespace}/{app}", namespace)
    uids = sorted(r.uid or "" for r in registrations)
    if uids != sorted(pods):
        formats = {f: sum(r.format == f for r in registrations) for f in sorted({r.format for r in registrations})}
        return (
            f"{app}: ZooKeeper holds {len(registrations)} registrations {formats} of {len(set(uids))} pods, "
            f"for {len(pods)} Ready pods; pods registered more than once: "
            f"{sorted({u for u in uids if uids.count(u) > 1})}; not registered: {sorted(set(pods) - set(uids))}; "
            f"not Ready: {sorted(set(uids) - set(pods))}"
        )
    if old := sorted(r.name for r in registrations if r.format != fmt):
        return f"{app}: registrations left in a format other than {fmt}: {old}"
    if {r.uid: r.address for r in registrations} != pods:
        return f"{app}: addresses differ from the pods' IPs"
    status = get_registry(kube_api, namespace, app).get("status") or {}
    members = {m["id"] for m in status.get("members", ()) if m.get("source") == "kubernetes"}
    if members != set(pods) or status.get("readyPods") != len(pods) or status.get("memberCount") != len(pods) + foreign:
        return (
            f"{app}: status lists {sorted(members)}, readyPods {status.get('readyPods')}, memberCount "
            f"{status.get('memberCount')}, for {len(pods)} Ready pods and {foreign} foreign member(s)"
        )
    return None


def settle(check: Callable[[], str | None], timeout: float, what: str) -> float:
    """Waits until `check` returns None (agreement) and returns the time (time.time()) it did;
    fails with its last complaint after `timeout` seconds."""
    last: list[str | None] = [None]

    def agreed():
        last[0] = check()
        return last[0] is None and time.time()

    try:
        return wait_for(agreed, timeout, what, retry_errors=False)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}: {last[0]}")


def sole_leader(replicas, timeout: float = 60, exclude=None):
    """The one running replica (other than `exclude`) that says it leads, once exactly one does;
    fails naming those that say so."""

    def leaders():
        return [r for r in replicas.running() if r is not exclude and r.is_leader()]

    try:
        return wait_for(lambda: (found := leaders()) and len(found) == 1 and found[0], timeout, "one leader")
    except TimeoutError:
        pytest.fail(f"no sole leader after {timeout:g} s: {[r.name for r in leaders()] or 'none'} say they lead")


def metric(replica, name: str) -> float | None:
    for line in replica.get("/metrics")[1].splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


# -- the scene ----------------------------------------------------------------------------------


class Churn:
    """Scales the `churn` Deployment between 2 and 4 pods in the background."""

    def __init__(self, kube_api, namespace: str) -> None:
        self.kube_api, self.namespace = kube_api, namespace
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        size = 2
        while not self.stop.wait(0.7):
            size = 4 if size == 2 else 2
            scale(self.kube_api, self.namespace, "churn", size)

    def __enter__(self) -> Churn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class Scene:
    kube_api: object
    zk: KazooClient
    namespace: str
    ensemble: object
    program: CuratorProgram
    formats: dict[str, str] = field(default_factory=lambda: {"web": "curator", "churn": "curator"})
    pods: dict[str, str] = field(default_factory=dict)  # the stable service's Ready pods: uid -> IP
    observers: ObserverSet | None = None
    foreign_client: KazooClient | None = None
    foreign: object = None  # the foreign znode's stat when it was created

    @property
    def path(self) -> str:
        return f"/{self.namespace}/web"

    def begin(self, observer_hosts: str | None = None) -> None:
        """Once replicas run: wait for convergence, add the foreign znode, start the observers
        (on `observer_hosts`, default the whole ensemble: an observer whose server is paused sees
        nothing and does not know it until its connection times out, so a scenario that pauses
        one server keeps the observers off it)."""
        eventually(lambda: len(ready_pods(self.kube_api, self.namespace, "web")) == 4, 60, "4 Ready pods of web")
        self.converged()
        self.foreign_client = KazooClient(self.ensemble.connection_string, timeout=30)
        self.foreign_client.start(timeout=30)
        instance = {
            "name": "web", "id": FOREIGN, "address": "192.168.7.8", "port": 9090, "sslPort": None,
            "payload": {"@class": "java.util.LinkedHashMap", "owner": "someone-else"},
            "registrationTimeUTC": 0, "serviceType": "DYNAMIC", "uriSpec": None,
        }
        self.foreign_client.create(f"{self.path}/{FOREIGN}", json.dumps(instance).encode(), ephemeral=True)
        # Read back through the session that wrote it: another session's server may lag behind.
        self.foreign = self.foreign_client.exists(f"{self.path}/{FOREIGN}")
        assert self.foreign is not None
        self.converged()
        self.pods = ready_pods(self.kube_api, self.namespace, "web")
        assert len(self.pods) == 4
        hosts = observer_hosts or self.ensemble.connection_string
        self.observers = ObserverSet(hosts, f"/{self.namespace}", "web", self.program)
        self.observers.start()
        self.observers.wait_seen(self.pods)

    def converged(self, timeout: float = 60) -> float:
        """Waits until, for both services, ZooKeeper == Ready pods == status; returns when."""

        def check():
            for app in ("web", "churn"):
                foreign = 1 if app == "web" and self.foreign is not None else 0
                if why := disagreement(self.kube_api, self.zk, self.namespace, app, self.formats[app], foreign):
                    return why
            return None

        return settle(check, timeout, "ZooKeeper == Ready pods == status")

    def stayed(self) -> set[str]:
        """The stable service's pods that are still Ready (all of them, unless a test broke one)."""
        return set(self.pods) & set(ready_pods(self.kube_api, self.namespace, "web"))

    def caught_up(self, only=None) -> None:
        """Waits until the observers (or those named) see every stable pod again."""
        self.observers.wait_seen(self.stayed(), 30, only)

    def report(self, title: str, since: float, until: float, **figures: float | str) -> None:
        shown = ", ".join(f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
        print(f"\n[{title}] {shown}" if shown else "")
        for line in self.observers.summary(self.stayed(), since, until):
            print(f"[{title}] {line}")

    def none_missing(self, since: float, until: float, only=None) -> list[str]:
        """What the observers (or those named) saw missing between `since` and `until`, or blind
        periods that overlap it (zero missing proves nothing where an observer could not see)."""
        problems = []
        uids = self.stayed()
        for observer in self.observers.observers:
            if only is not None and observer.name not in only:
                continue
            missing = observer.missing(uids, since, until)
            if missing:
                problems.append(
                    f"{observer.name}: {len(missing)} pod(s) missing, total {total(missing):.3f} s, "
                    f"longest {longest(missing):.3f} s"
                )
            blind = [(s, e) for s, e in observer.presence().blind_periods(until) if s <= until and e >= since]
            if blind:
                problems.append(f"{observer.name}: blind for {sum(e - s for s, e in blind):.3f} s in the window")
        return problems

    def finish(self) -> None:
        """After a scenario: converged, and the foreign znode untouched."""
        self.converged()
        now = self.zk.exists(f"{self.path}/{FOREIGN}")
        assert now is not None, "the foreign znode was deleted"
        assert (now.czxid, now.mzxid, now.ephemeralOwner) == (
            self.foreign.czxid,
            self.foreign.mzxid,
            self.foreign.ephemeralOwner,
        ), "the foreign znode was rewritten"

    def close(self) -> None:
        if self.observers is not None:
            self.observers.stop()
        if self.foreign_client is not None:
            self.foreign_client.stop()
            self.foreign_client.close()


@pytest.fixture(scope="module")
def program() -> CuratorProgram:
    return CuratorProgram.build()


@pytest.fixture
def scene(kube_api, zk, namespace, replicas, ensemble, program) -> Iterator[Scene]:
    """The two services and their Deployments; the test starts the replicas, then `begin()`."""
    apply_registry(kube_api, namespace, "web")
    apply_registry(kube_api, namespace, "churn")
    create_deployment(kube_api, namespace, "web", replicas=4, registry="web")
    create_deployment(kube_api, namespace, "churn", replicas=2, registry="churn")
    stage = Scene(kube_api, zk, namespace, ensemble, program)
    yield stage
    stage.close()


@pytest.fixture
def ha(scene, replicas) -> Scene:
    """Three replicas on the whole ensemble, and the scene begun."""
    replicas.start(3)
    scene.begin()
    return scene


def handover(scene: Scene, replicas, leader) -> dict:
    """SIGTERM to `leader`; returns when the successor owns every registration of `web` and the
    observers see every pod: the times, and whether the old leader said it completed."""
    old = sessions(scene.zk, scene.path, scene.namespace)
    signalled = time.time()
    leader.terminate()  # returns once the process has exited
    exited = time.time()
    successor = sole_leader(replicas, exclude=leader)
    owned = settle(
        lambda: None
        if len(s := sessions(scene.zk, scene.path, scene.namespace)) == 1 and not s & old
        else f"sessions {s}, the old leader's {old}",
        30,
        "the successor to own every registration",
    )
    scene.caught_up()
    return {
        "signalled": signalled,
        "exit": exited - signalled,
        "owned": owned - signalled,
        "successor": successor,
        "complete": "handover complete" in leader.output(),
    }


def handover_problems(scene: Scene, h: dict, ended: float) -> list[str]:
    """What went wrong in the handover `h` (from `handover`): a pod missing for any observer, a
    slow exit, no 'handover complete' in the old leader's log."""
    problems = scene.none_missing(h["signalled"], ended)
    if h["exit"] > HANDOVER_EXIT:
        problems.append(f"the old leader exited {h['exit']:.2f} s after SIGTERM (at most {HANDOVER_EXIT:g})")
    if not h["complete"]:
        problems.append("the old leader did not log 'handover complete'")
    return problems


# -- scenarios -----------------------------------------------------------------------------------


def test_graceful_handover(ha, replicas):
    leader = sole_leader(replicas)
    with Churn(ha.kube_api, ha.namespace):
        h = handover(ha, replicas, leader)
    ended = time.time()
    ha.report(
        "graceful handover", h["signalled"], ended,
        exit_after_sigterm=h["exit"], successor_owns_all_after=h["owned"], successor=h["successor"].name,
    )
    problems = handover_problems(ha, h, ended)
    ha.finish()
    assert not problems, "\n".join(problems)


def test_rolling_restart_of_every_replica(ha, replicas):
    started = time.time()
    problems, steps = [], []
    with Churn(ha.kube_api, ha.namespace):
        for old in list(replicas.running()):
            replicas.start(1)  # the new one first, as a Deployment's rolling update would
            if old.is_leader():
                h = handover(ha, replicas, old)
                steps.append(f"{old.name} (leader) exited {h['exit']:.2f} s after SIGTERM")
                if not h["complete"]:
                    problems.append(f"{old.name} did not log 'handover complete'")
            else:
                signalled = time.time()
                old.terminate()
                steps.append(f"{old.name} exited {time.time() - signalled:.2f} s after SIGTERM")
            sole_leader(replicas)
        ha.caught_up()
    ended = time.time()
    ha.report("rolling restart", started, ended, steps="; ".join(steps), took=ended - started)
    problems += ha.none_missing(started, ended)
    ha.finish()
    assert not problems, "\n".join(problems)


def crash(scene: Scene, replicas, leader) -> dict:
    """kill -9 of `leader`; returns when every registration is back, owned by the successor."""
    before = {r.uid: r.address for r in ours(scene.zk, scene.path, scene.namespace)}
    old = sessions(scene.zk, scene.path, scene.namespace)
    killed = time.time()
    leader.kill()
    successor = sole_leader(replicas, timeout=30, exclude=leader)
    elected = time.time()

    def back():
        now = ours(scene.zk, scene.path, scene.namespace)
        s = {r.session for r in now}
        if {r.uid: r.address for r in now} == before and len(s) == 1 and not s & old:
            return None
        return f"{len(now)} of {len(before)} registrations, sessions {s}"

    restored = settle(back, 30, "every registration back")
    scene.caught_up()
    return {"killed": killed, "elected": elected - killed, "back": restored - killed, "successor": successor}


def test_crash_of_the_leader(ha, replicas):
    leader = sole_leader(replicas)
    with Churn(ha.kube_api, ha.namespace):
        c = crash(ha, replicas, leader)
    ended = time.time()
    ha.report(
        "crash", c["killed"], ended,
        new_leader_after=c["elected"], all_back_after=c["back"], successor=c["successor"].name,
    )
    ha.finish()
    bound = SESSION_TIMEOUT + 1 + SLACK
    assert c["back"] <= bound, f"registrations back {c['back']:.2f} s after kill -9 (at most {bound:g})"


def test_rolling_pause_of_zookeeper_then_crash_then_handover(ha, replicas, ensemble):
    paused_for = 1.5 * SESSION_TIMEOUT
    started = time.time()
    pauses = []
    # The ensemble's leader first: pausing it makes sessions expire and every replica start
    # afresh; the followers after it, so that the replicas end on connections that moved from a
    # paused server to another within their sessions (kazoo drops every watch when it moves).
    order = sorted(ensemble.servers, key=lambda s: ensemble.mode(s.myid) != "leader")
    with Churn(ha.kube_api, ha.namespace):
        for server in order:
            mode = ensemble.mode(server.myid)
            ensemble.pause_server(server.myid)
            try:
                time.sleep(paused_for)  # the fault: this server answers nobody for that long
            finally:
                ensemble.resume_server(server.myid)
            resumed = time.time()
            ensemble.wait_serving(server.myid)
            pauses.append(f"server {server.myid} ({mode}) serving {time.time() - resumed:.2f} s after resume")
    converged = ha.converged() - resumed
    ha.report("rolling pause", started, time.time(), pauses="; ".join(pauses), converged_after_last_resume=converged)

    leader = sole_leader(replicas)
    with Churn(ha.kube_api, ha.namespace):
        c = crash(ha, replicas, leader)
    ha.report(
        "rolling pause: crash", c["killed"], time.time(),
        new_leader_after=c["elected"], all_back_after=c["back"], successor=c["successor"].name,
    )
    ha.converged()
    problems = []
    bound = SESSION_TIMEOUT + 1 + SLACK
    if c["elected"] > bound:
        problems.append(f"a new leader {c['elected']:.2f} s after kill -9 (at most {bound:g})")

    with Churn(ha.kube_api, ha.namespace):
        h = handover(ha, replicas, c["successor"])
    ended = time.time()
    ha.report(
        "rolling pause: handover", h["signalled"], ended,
        exit_after_sigterm=h["exit"], successor_owns_all_after=h["owned"], successor=h["successor"].name,
    )
    problems += ha.none_missing(h["signalled"], ended)
    if h["exit"] > HANDOVER_EXIT:
        problems.append(f"the old leader exited {h['exit']:.2f} s after SIGTERM (at most {HANDOVER_EXIT:g})")
    ha.finish()
    assert not problems, "\n".join(problems)


class StatusLog:
    """Every version of the namespace's ServiceRegistry objects that a watch delivers:
    (time, registry, status.leader, the Ready condition's reason, how it came: LIST, or the watch
    event's type). Every ADDED or MODIFIED event is a write."""

    def __init__(self, kube_api, namespace: str) -> None:
        self.api = kubernetes.client.CustomObjectsApi(kube_api)
        self.namespace = namespace
        self.entries: list[tuple[float, str, str | None, str | None, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatusLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _record(self, item: dict, how: str) -> None:
        status = item.get("status") or {}
        ready = next((c for c in status.get("conditions", ()) if c.get("type") == "Ready"), {})
        self.entries.append((time.time(), item["metadata"]["name"], status.get("leader"), ready.get("reason"), how))

    def _run(self) -> None:
        args = (api.GROUP, api.VERSION, self.namespace, api.PLURAL)
        version = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listing = self.api.list_namespaced_custom_object(*args)
                    version = listing["metadata"]["resourceVersion"]
                    for item in listing["items"]:
                        self._record(item, "LIST")
                watch = kubernetes.watch.Watch()
                for event in watch.stream(
                    self.api.list_namespaced_custom_object, *args, resource_version=version, timeout_seconds=1
                ):
                    if event["type"] == "ERROR":  # 410 Gone: list again
                        version = None
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    self._record(event["object"], event["type"])
                    if self._stop.is_set():
                        watch.stop()
            except kubernetes.client.ApiException as error:
                if error.status == 410:
                    version = None
                self._stop.wait(0.2)

    def leaders(self, registry: str, since: float = 0) -> list[tuple[float, str | None, str | None, str]]:
        """(time, leader, Ready reason, how) of `registry`, from `since` on."""
        return [(t, leader, reason, how) for t, name, leader, reason, how in list(self.entries)
                if name == registry and t >= since]


@pytest.mark.parametrize("role", ["follower", "leader"])
def test_leader_cut_from_zookeeper_but_not_from_the_apiserver(scene, replicas, ensemble, role):
    """The first replica (the leader) reaches one ZooKeeper server only; that server is paused, the
    other two keep a quorum, and the API server stays reachable. `role` is the cut server's role in
    the ensemble: pausing the ensemble's leader also makes the other two elect a new one, which
    drops every client's connection."""
    cut_server = next(s.myid for s in ensemble.servers if ensemble.mode(s.myid) == role)
    others = [s.myid for s in ensemble.servers if s.myid != cut_server]
    one = f"127.0.0.1:{ensemble.server(cut_server).client_port}"
    (old,) = replicas.start(1, zk_hosts=one)  # it talks to that server alone
    eventually(old.is_leader, 60, f"{old.name} to lead")
    replicas.start(2)
    scene.begin(observer_hosts=",".join(f"127.0.0.1:{ensemble.server(i).client_port}" for i in others))
    problems = []
    with StatusLog(scene.kube_api, scene.namespace) as log:
        eventually(lambda: any(e[1] == old.name for e in log.leaders("web")), 30, "the status log")
        with Churn(scene.kube_api, scene.namespace):
            cut = time.time()
            ensemble.pause_server(cut_server)  # the other two keep a quorum
            try:
                new = sole_leader(replicas, timeout=60, exclude=old)
                elected = time.time()
                first = eventually(
                    lambda: next((e[0] for e in log.leaders("web", cut) if e[1] == new.name), None),
                    30,
                    f"status.leader to name {new.name}",
                )
                # Watch what the status says for 3 session timeouts after the new leader's first
                # word: a fixed window of observation, not a wait for something to happen.
                time.sleep(max(0.0, first + 3 * SESSION_TIMEOUT - time.time()))
            finally:
                ensemble.resume_server(cut_server)
            resumed = time.time()
            ensemble.wait_serving(cut_server)
            eventually(lambda: old.get("/readyz")[0] == 200, 60, f"{old.name} back on ZooKeeper")
            back = time.time()
            leader_metric = [metric(old, "zkregistry_leader")]
            time.sleep(2 * SESSION_TIMEOUT)  # and a while longer with the old replica reconnected
            leader_metric.append(metric(old, "zkregistry_leader"))
    after = log.leaders("web", cut)
    writes_by_old = [(round(t - cut, 2), reason) for t, leader, reason, how in after
                     if leader == old.name and how != "LIST"]
    flaps = [round(t - cut, 2) for t, leader, _, _ in after if t > first and leader == old.name]
    print(
        f"\n[leader cut] server {cut_server} (the ensemble's {role}) paused; new leader {new.name} "
        f"{elected - cut:.2f} s after the cut, first in status {first - cut:.2f} s after; resumed at "
        f"{resumed - cut:.2f} s, {old.name} back on "
        f"ZooKeeper {back - resumed:.2f} s later; status.leader after the cut: "
        f"{[(round(t - cut, 2), leader, reason, how) for t, leader, reason, how in after]}"
    )
    scene.report(f"leader cut ({role})", cut, time.time())
    if flaps:
        problems.append(f"status.leader went back to {old.name} after {new.name} had written it (at {flaps} s)")
    if writes_by_old:
        problems.append(f"{old.name} wrote the status after the cut (s after the cut, Ready reason): {writes_by_old}")
    if leader_metric != [0.0, 0.0]:
        problems.append(f"{old.name}'s zkregistry_leader after it reconnected: {leader_metric}")
    if sole_leader(replicas) is not new:
        problems.append("leadership moved again after the cut")
    scene.finish()
    assert not problems, "\n".join(problems)


def test_format_change_on_a_live_registry(ha, replicas):
    custom = kubernetes.client.CustomObjectsApi(ha.kube_api)
    problems = []
    for fmt in ("serverset", "curator"):
        started = time.time()
        figures = {}
        try:
            with Churn(ha.kube_api, ha.namespace):
                custom.patch_namespaced_custom_object(
                    api.GROUP, api.VERSION, ha.namespace, api.PLURAL, "web", {"spec": {"format": fmt}}
                )
                ha.formats["web"] = fmt
                figures["converged_after"] = ha.converged() - started
                # Curator reads only its own format: it cannot see serverset members.
                ha.caught_up(only=None if fmt == "curator" else ("children", "data"))
        finally:
            ended = time.time()
            ha.report(f"format -> {fmt}", started, ended, **figures)
        problems += [f"to {fmt}: {p}" for p in ha.none_missing(started, ended, only=("children", "data"))]
    ha.finish()
    assert not problems, "\n".join(problems)


# -- faults whose figures are printed, with the checks they had before ----------------------------


def test_paused_leader_cannot_write_after_it_resumes(ha, replicas):
    before = {r.uid: r.address for r in ours(ha.zk, ha.path, ha.namespace)}
    leader = sole_leader(replicas)
    writes_before = metric(leader, "zkregistry_applied_operations_total")
    paused = time.time()
    leader.pause()
    try:
        successor = sole_leader(replicas, timeout=SESSION_TIMEOUT * 10, exclude=leader)
        with Churn(ha.kube_api, ha.namespace):
            settle(
                lambda: None
                if {r.uid: r.address for r in ours(ha.zk, ha.path, ha.namespace)} == before
                and len(sessions(ha.zk, ha.path, ha.namespace)) == 1
                else "not yet",
                30,
                "the successor to restore every registration",
            )
            successor_session = sessions(ha.zk, ha.path, ha.namespace)
    finally:
        leader.resume()
    # The old leader finds its session expired: it must not have written anything since.
    eventually(lambda: "leadership ends" in leader.output(), 30, "the old leader to notice")
    ha.caught_up()
    ha.report("paused leader", paused, time.time())
    ha.finish()
    assert metric(leader, "zkregistry_applied_operations_total") == writes_before
    assert sessions(ha.zk, ha.path, ha.namespace) == successor_session
    assert sole_leader(replicas) is successor


def test_zookeeper_servers_down_and_back(ha, replicas, ensemble):
    started = time.time()
    with Churn(ha.kube_api, ha.namespace):
        ensemble.stop_server(1)
        time.sleep(1.0)  # churn goes on with one server down
    ha.converged()
    try:
        ensemble.stop_server(2)  # quorum lost: nobody can write, nothing may crash

        def disconnected():
            return all(metric(r, "zkregistry_zookeeper_connected") == 0 for r in replicas.running())

        # No replica can prove that it leads, so none writes status; the metric says why.
        eventually(disconnected, 30, "every replica to report ZooKeeper disconnected")
        scale(ha.kube_api, ha.namespace, "churn", 3)
    finally:
        ensemble.start_server(1)
        ensemble.start_server(2)
    ha.converged()
    ha.caught_up()
    ha.report("quorum lost and back", started, time.time())
    ha.finish()
    assert all(r.alive() for r in replicas.members)


def test_apiserver_restart(ha, replicas, cluster):
    before = {r.uid: r.address for r in ours(ha.zk, ha.path, ha.namespace)}
    started = time.time()
    cluster.restart_apiserver()
    scale(ha.kube_api, ha.namespace, "churn", 3)
    ha.converged()
    ended = time.time()
    ha.report("apiserver restart", started, ended)
    assert {r.uid: r.address for r in ours(ha.zk, ha.path, ha.namespace)} == before
    problems = ha.none_missing(started, ended)
    ha.finish()
    assert not problems, "a registration of a pod that stayed Ready went away:\n" + "\n".join(problems)


def test_registration_rewritten_by_hand_is_repaired(ha, replicas):
    """Found by `make soak` (seed 1, fault `znode-corrupt`): a registration of ours that
    someone rewrites in place, keeping our owner id but with a wrong address and port, must be
    written right again, at the latest by the next resync (every 5 s here). Clients read the wrong
    endpoint until then."""
    victim = next(r for r in ours(ha.zk, ha.path, ha.namespace) if r.uid in ha.pods)
    node = f"{ha.path}/{victim.name}"
    body = json.loads(ha.zk.get(node)[0])
    body["address"], body["port"] = "203.0.113.66", 6666
    ha.zk.set(node, json.dumps(body).encode())
    ha.converged(timeout=30)  # six resyncs
    repaired = json.loads(ha.zk.get(node)[0]) if ha.zk.exists(node) else None
    assert repaired is None or (repaired["address"], repaired["port"]) == (ha.pods[victim.uid], 8080)
    ha.finish()
