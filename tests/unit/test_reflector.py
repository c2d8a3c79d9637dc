"""The reflector's contract against a scripted API: paginated list, watch from the list's
resourceVersion, bookmarks, 410 Gone then a relist that replaces the inventory, prompt stop; for
pods, and for the ReplicaSets and Deployments that lead from a pod to its registry.

The e2e tier (tests/e2e/test_relist.py) checks the same against a real kube-apiserver."""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from unit.test_inventory_replace import Told
from zkregistry import reflector as reflector_module
from zkregistry.inventory import SOURCES, Inventory
from zkregistry.model import Pod, Registry
from zkregistry.reflector import DEPLOYMENTS, KINDS, PODS, REPLICASETS, Kind, Reflector


def pod(name: str, namespace: str = "a", version: str = "1") -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "resourceVersion": version},
        "spec": {"containers": []},
        "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def page(items: list[dict], version: str, token: str | None = None) -> bytes:
    return json.dumps({"metadata": {"resourceVersion": version, "continue": token}, "items": items}).encode()


def event(type_: str, body: dict) -> bytes:
    return json.dumps({"type": type_, "object": body}).encode() + b"\n"


BOOKMARK = {"kind": "Pod", "metadata": {"resourceVersion": "12"}}
DELETED = event("DELETED", pod("p3", version="13"))
GONE = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}


class Response:
    """A urllib3 response as the reflector uses it; `block` keeps the stream open until shut down."""

    def __init__(self, data: bytes = b"", chunks: list[bytes] = (), block: bool = False) -> None:
        self.data, self.chunks, self.block = data, list(chunks), block
        self.closed = threading.Event()

    def stream(self, amt=None):
        yield from self.chunks
        if self.block:
            self.closed.wait()
            raise urllib3.exceptions.ProtocolError("connection shut down")

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        self.closed.set()

    def shutdown(self) -> None:
        self.closed.set()


class Api:
    """Answers each request in a namespace with that namespace's next scripted answer (once they
    are all used, a watch that stays open), and records the requests: (namespace, parameters),
    and in `methods` the list method called. It has the list methods of every kind."""

    def __init__(self, **scripts: list) -> None:
        self.scripts, self.calls, self.methods = scripts, [], set()
        for kind in KINDS:
            setattr(self, kind.list_namespaced, self._answerer(kind.list_namespaced))
            setattr(self, kind.list_all, self._answerer(kind.list_all, everywhere=True))

    def _answerer(self, method: str, everywhere: bool = False):
        """A list method; one of every namespace follows the script of namespace "*"."""

        def answer(*namespace: str, **params):
            self.methods.add(method)
            assert len(namespace) == (0 if everywhere else 1)
            return self._answer(namespace[0] if namespace else "*", params)

        return answer

    def _answer(self, namespace: str, params: dict):
        transport = ("_preload_content", "_request_timeout")
        self.calls.append((namespace, {k.lstrip("_"): v for k, v in params.items() if k not in transport}))
        script = self.scripts[namespace]
        answer = script.pop(0) if script else Response(block=True)
        if isinstance(answer, threading.Event):  # a gate: answer only once the test opens it
            answer.wait()
            answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def run(reflector: Reflector, until, timeout: float = 5.0) -> float:
    """Runs the reflector until `until()` holds; returns how long `run` took to return once stopped."""
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        time.sleep(0.01)
    stopped = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert until(), "the reflector did not get there in time"
    return time.monotonic() - stopped


def test_list_watch_and_relist_after_gone_replace_the_pods():
    api = Api(
        a=[
            Response(page([pod("p1")], "10", token="next")),
            Response(page([pod("p2")], "10")),
            Response(chunks=[event("ADDED", pod("p3", version="11")), event("BOOKMARK", BOOKMARK)]),
            Response(chunks=[DELETED[:20], DELETED[20:]]),  # one event in two chunks
            Response(chunks=[event("ERROR", GONE)]),  # the history is gone: list again
            # p2 was deleted while the watch was away; no DELETED ever comes for it.
            Response(page([pod("p1"), pod("p4")], "20")),
        ]
    )
    inventory = Inventory(sources=("pods",))
    reflector = Reflector(inventory, PODS, namespaces=["a"], api=lambda: api)

    took = run(reflector, lambda: not api.scripts["a"] and set(inventory.serving_since) == {"uid-p1", "uid-p4"})

    assert inventory.synced.is_set()
    assert api.calls[0] == ("a", {"limit": 500})
    assert api.calls[1] == ("a", {"limit": 500, "continue": "next"})
    watches = [params for _, params in api.calls if params.get("watch")]
    assert [w["resource_version"] for w in watches] == ["10", "12", "13", "20"]
    assert all(w["allow_watch_bookmarks"] and w["timeout_seconds"] == 300 for w in watches)
    assert api.calls[5] == ("a", {"limit": 500})  # the relist
    assert took < 1.5, f"run returned {took:.2f} s after stop"


def test_http_gone_and_errors_are_retried_without_crashing(monkeypatch):
    monkeypatch.setattr(reflector_module, "BACKOFF_FIRST", 0.01)  # the backoff itself is not tested here
    api = Api(
        a=[
            ApiException(status=503, reason="Service Unavailable"),  # the list fails: list again
            Response(page([pod("p1")], "10")),
            ApiException(status=410, reason="Gone"),  # the watch is refused: list again
            Response(page([pod("p2")], "30")),
            urllib3.exceptions.ProtocolError("connection reset"),  # resume from 30
            Response(chunks=[b"not json\n"]),  # cannot resume: list again
            Response(page([pod("p3")], "40")),
        ]
    )
    inventory = Inventory(sources=("pods",))
    reflector = Reflector(inventory, PODS, namespaces=["a"], api=lambda: api)

    run(reflector, lambda: not api.scripts["a"] and set(inventory.serving_since) == {"uid-p3"}, timeout=10)

    watches = [params["resource_version"] for _, params in api.calls if params.get("watch")]
    assert watches[:3] == ["10", "30", "30"] and watches[-1] == "40"


def test_synced_once_every_namespace_has_listed():
    gate = threading.Event()  # holds namespace b's list back
    api = Api(a=[Response(page([], "1"))], b=[gate, Response(page([], "1"))])
    inventory = Inventory(sources=("pods",))
    reflector = Reflector(inventory, PODS, namespaces=["a", "b"], api=lambda: api)
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        watching = lambda: any(ns == "a" and params.get("watch") for ns, params in api.calls)  # noqa: E731
        deadline = time.monotonic() + 5
        while not watching() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watching() and not inventory.synced.is_set()
        gate.set()
        assert inventory.synced.wait(5)
    finally:
        stop.set()
        thread.join(5)


# -- ReplicaSets and Deployments ---------------------------------------------------------------


def replicaset(name: str, deployment: str | None, version: str, status: dict | None = None) -> dict:
    owner = {"kind": "Deployment", "name": deployment, "uid": f"d-{deployment}", "controller": True}
    owners = [owner] if deployment else []
    meta = {"name": name, "namespace": "a", "resourceVersion": version, "ownerReferences": owners}
    return {"metadata": meta, "spec": {"replicas": 1}, "status": status or {}}


def deployment(name: str, version: str, port: str | None = None, status: dict | None = None) -> dict:
    annotations = {"zkregistry.io/registry": "reg", **({"zkregistry.io/port": port} if port else {})}
    return {
        "metadata": {
            "name": name,
            "namespace": "a",
            "uid": f"d-{name}",
            "resourceVersion": version,
            "annotations": annotations,
        },
        "spec": {"template": {"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]}}},
        "status": status or {},
    }


def owned_pod(name: str, replicaset_name: str) -> Pod:
    body = pod(name)
    body["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": replicaset_name, "controller": True}]
    body["spec"]["containers"] = [{"ports": [{"name": "http", "containerPort": 8080}]}]
    return Pod.from_body(body)


REG = ("a", "reg")


def inventory_of(source: str, told: Told) -> Inventory:
    """An inventory fed by `source` alone, in which registry "reg" of namespace "a" exists; what
    it tells the controller is recorded in `told`."""
    inventory = told.inventory(sources=(source,))
    inventory.put_registry(Registry.from_body({"metadata": {"name": "reg", "namespace": "a"}, "spec": {}}))
    told.clear()
    return inventory


def test_each_kind_lists_through_its_api_class_and_is_a_source_of_the_inventory():
    for kind in KINDS:
        assert isinstance(kind, Kind)
        for method in (kind.list_all, kind.list_namespaced):
            assert callable(getattr(kind.api, method, None)), f"{kind.api.__name__} has no {method}"
    assert [k.name for k in KINDS] == ["pods", "replicasets", "deployments"]
    assert set(SOURCES) == {"kopf", *(k.name for k in KINDS)}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_run_raises_once_a_scope_thread_died():
    def broken():
        raise RuntimeError("no client")  # outside the scope's loop: its thread dies

    reflector = Reflector(Inventory(sources=("deployments",)), DEPLOYMENTS, namespaces=["a"], api=broken)
    with pytest.raises(RuntimeError, match="a watch thread of deployments died"):
        reflector.run(threading.Event())


def test_replicasets_list_watch_and_relist_after_gone_replace_them(monkeypatch):
    monkeypatch.setattr(reflector_module, "BACKOFF_FIRST", 0.01)
    told = Told()
    inventory = inventory_of("replicasets", told)
    inventory.put_deployment(DEPLOYMENTS.decode(deployment("web", "1")))
    inventory.put_pod(owned_pod("p1", "web-1"))
    inventory.put_pod(owned_pod("p2", "web-2"))
    told.clear()
    gate = threading.Event()  # holds the relist back until the state before it is checked
    api = Api(
        **{
            "*": [
                Response(page([replicaset("web-1", "web", "10")], "10")),
                Response(
                    chunks=[
                        event("ADDED", replicaset("web-2", "web", "11")),
                        # The ReplicaSet controller counts a pod Ready: nothing that matters changed.
                        event("MODIFIED", replicaset("web-1", "web", "12", status={"readyReplicas": 1})),
                        event("ERROR", GONE),
                    ]
                ),
                gate,
                # web-1 was deleted while the watch was away; no DELETED ever comes for it.
                Response(page([replicaset("web-2", "web", "20")], "20")),
            ]
        }
    )
    reflector = Reflector(inventory, REPLICASETS, api=lambda: api)  # cluster-wide
    registry = inventory.registry(REG)
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while len(api.scripts["*"]) > 1 and time.monotonic() < deadline:  # until the relist waits
            time.sleep(0.01)
        assert len(api.scripts["*"]) == 1, "the reflector did not list again after 410 Gone"
        assert inventory.synced.is_set()
        assert set(inventory.desired(registry)[0]) == {"uid-p1", "uid-p2"}
        assert told == [(REG, {"uid-p1"}), (REG, {"uid-p2"})], (
            "the list and the ADDED, each with its pod; the status-only MODIFIED changes nothing"
        )
        told.clear()

        gate.set()
        deadline = time.monotonic() + 5
        while set(inventory.desired(registry)[0]) != {"uid-p2"} and time.monotonic() < deadline:
            time.sleep(0.01)
        assert set(inventory.desired(registry)[0]) == {"uid-p2"}, "web-1's pod still leads to the registry"
        assert told == [(REG, {"uid-p1"})], "the relist tells the controller once, of web-1's pod"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert api.methods == {"list_replica_set_for_all_namespaces"}
    watches = [params["resource_version"] for _, params in api.calls if params.get("watch")]
    assert watches[:2] == ["10", "20"]


def test_a_status_only_update_of_a_deployment_tells_the_controller_nothing():
    told = Told()
    inventory = inventory_of("deployments", told)
    api = Api(
        a=[
            Response(page([deployment("web", "10"), deployment("api", "10")], "10")),
            Response(
                chunks=[
                    # What the Deployment controller writes as its pods turn Ready, one by one.
                    event("MODIFIED", deployment("web", "11", status={"replicas": 2, "readyReplicas": 1})),
                    event("MODIFIED", deployment("web", "12", status={"replicas": 2, "readyReplicas": 2})),
                    event("MODIFIED", deployment("web", "13", port="9090", status={"readyReplicas": 2})),
                    event("DELETED", deployment("api", "14")),
                ]
            ),
        ]
    )
    reflector = Reflector(inventory, DEPLOYMENTS, namespaces=["a"], api=lambda: api)

    def done() -> bool:
        web = inventory.deployment(("a", "web"))
        return web is not None and web.port == "9090" and inventory.deployment(("a", "api")) is None

    run(reflector, done)

    assert inventory.synced.is_set()
    # No pods: the registry is told of none, for its Deployments' problems.
    assert told == [(REG, set())] * 3, "the list, the port annotation, the deletion: no status update"
    assert api.methods == {"list_namespaced_deployment"}


def annotated_deployment(name: str, uid: str, registry: str, version: str) -> dict:
    body = deployment(name, version)
    body["metadata"]["uid"] = uid
    body["metadata"]["annotations"]["zkregistry.io/registry"] = registry
    return body


def test_a_deployment_recreated_under_its_name_does_not_take_the_old_replicasets_pods():
    """`kubectl delete deploy web` (background) then at once `kubectl apply` of a new web annotated
    for another registry: until the garbage collector deletes the old ReplicaSet (controlled by
    the old uid) and its pods, the old pods, still Ready, must not join the new registry."""
    changes: list[set] = []
    inventory = Inventory(on_change=lambda keys: changes.append(set(keys)), sources=("deployments",))
    for name in ("reg", "other"):
        inventory.put_registry(Registry.from_body({"metadata": {"name": name, "namespace": "a"}, "spec": {}}))
    old_rs = replicaset("web-1", "web", "5")
    old_rs["metadata"]["ownerReferences"][0]["uid"] = "d-old"
    inventory.put_replicaset(REPLICASETS.decode(old_rs))
    inventory.put_pod(owned_pod("p1", "web-1"))
    api = Api(
        a=[
            Response(page([annotated_deployment("web", "d-old", "reg", "10")], "10")),
            Response(
                chunks=[
                    event("DELETED", annotated_deployment("web", "d-old", "reg", "11")),
                    event("ADDED", annotated_deployment("web", "d-new", "other", "12")),
                ]
            ),
        ]
    )
    reflector = Reflector(inventory, DEPLOYMENTS, namespaces=["a"], api=lambda: api)

    def recreated() -> bool:
        web = inventory.deployment(("a", "web"))
        return web is not None and web.uid == "d-new"

    run(reflector, recreated)

    other = inventory.registry(("a", "other"))
    assert set(inventory.desired(other)[0]) == set(), "the old Deployment's pod registers in the new one's registry"
    assert inventory.instance(other, "uid-a-p1") is None and inventory.instance(other, "uid-p1") is None
    # Adopted by the new Deployment (the ReplicaSet controller's orphan adoption): registered again.
    adopted = replicaset("web-1", "web", "13")
    adopted["metadata"]["ownerReferences"][0]["uid"] = "d-new"
    inventory.put_replicaset(REPLICASETS.decode(adopted))
    assert len(inventory.desired(other)[0]) == 1


def test_the_indexes_forget_replicasets_and_deployments_that_are_gone():
    """Every rollout makes a ReplicaSet of a new name; once it and its pods are deleted (and once a
    Deployment is deleted), nothing of them may stay in the inventory, or a long-lived replica
    grows with every rollout it has ever seen."""
    inventory = inventory_of("replicasets", Told())
    inventory.put_deployment(DEPLOYMENTS.decode(deployment("web", "1")))
    rollouts = [f"web-{i}" for i in range(50)]
    for rs in rollouts:  # each rollout's pod comes and goes before its ReplicaSet does
        inventory.put_replicaset(REPLICASETS.decode(replicaset(rs, "web", "11")))
        inventory.put_pod(owned_pod(f"p-{rs}", rs))
        inventory.remove_pod(("a", f"p-{rs}"))
    inventory.replace_replicasets("a", [])  # deleted while the watch was broken
    inventory.remove_deployment(("a", "web"))
    assert inventory._replicasets == {}
    assert inventory._pods_by_rs == {}, f"{len(inventory._pods_by_rs)} ReplicaSets remembered"
    assert inventory._rs_by_deployment == {}, f"{len(inventory._rs_by_deployment)} Deployments remembered"
