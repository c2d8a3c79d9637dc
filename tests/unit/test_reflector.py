"""The pod reflector's contract against a scripted API: paginated list, watch from the list's
resourceVersion, bookmarks, 410 Gone then a relist that replaces the inventory, prompt stop.

The e2e tier (tests/e2e/test_relist.py) checks the same against a real kube-apiserver."""

from __future__ import annotations

import json
import threading
import time

import urllib3
from kubernetes.client.exceptions import ApiException

from zkregistry import reflector as reflector_module
from zkregistry.inventory import Inventory
from zkregistry.reflector import PodReflector


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
    are all used, a watch that stays open), and records the requests."""

    def __init__(self, **scripts: list) -> None:
        self.scripts, self.calls = scripts, []

    def list_namespaced_pod(self, namespace: str, **params):
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


def run(reflector: PodReflector, until, timeout: float = 5.0) -> float:
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
    reflector = PodReflector(inventory, namespaces=["a"], api=lambda: api)

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
    reflector = PodReflector(inventory, namespaces=["a"], api=lambda: api)

    run(reflector, lambda: not api.scripts["a"] and set(inventory.serving_since) == {"uid-p3"}, timeout=10)

    watches = [params["resource_version"] for _, params in api.calls if params.get("watch")]
    assert watches[:3] == ["10", "30", "30"] and watches[-1] == "40"


def test_synced_once_every_namespace_has_listed():
    gate = threading.Event()  # holds namespace b's list back
    api = Api(a=[Response(page([], "1"))], b=[gate, Response(page([], "1"))])
    inventory = Inventory(sources=("pods",))
    reflector = PodReflector(inventory, namespaces=["a", "b"], api=lambda: api)
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
