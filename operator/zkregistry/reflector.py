"""The reflectors: lean list-and-watch feeds of the inventory, as client-go's Reflector is.

One `Reflector` follows one kind, described by a `Kind`: how to list it cluster-wide and per
namespace, how to decode a body into the record that the inventory keeps, and the inventory's
put, remove and replace for it. There are three kinds, each with a reflector of its own:

- `PODS` (`model.Pod`): readiness, address and ports, the registrations themselves;
- `REPLICASETS` (`model.ReplicaSet`): the link from a pod's ReplicaSet to its Deployment;
- `DEPLOYMENTS` (`model.Deployment`): the opt-in annotation and the template's ports.

    reflector = Reflector(inventory, PODS, namespaces=("team-a", "team-b"))  # (): cluster-wide
    threading.Thread(target=reflector.run, args=(stop,), name="pods").start()

They are not kopf's because kopf's per-object machinery was the main CPU cost of a replica at
many thousands of pods (every readiness change of a pod also updates the status of its
ReplicaSet and its Deployment), and because kopf never reports the deletions that a relist after
`410 Gone` reveals. A status-only update costs here the parsing of one event (`json.loads`, then
a few fields into a record) and one comparison: no record keeps a status, and the inventory
returns at once when the record is unchanged.

The contract, for each scope (every namespace of a namespaced operator, else the whole cluster),
each on a thread of its own:

1. LIST the scope's objects in pages (`limit=500`, following `continue` tokens: one consistent
   snapshot). The kind's replace (`inventory.replace_pods(namespace_or_None, records)`, and so
   on) then makes the inventory hold exactly that list for the scope: an object it knew that the
   list lacks is removed, as client-go's DeltaFIFO.Replace does, although no DELETED event ever
   came for it. Once every scope has listed, `inventory.mark_synced(kind.name)`.
2. WATCH from the list's resourceVersion, with bookmarks and a server timeout of 300 s. ADDED and
   MODIFIED put the record, DELETED removes it; every event and bookmark advances the
   resourceVersion.
3. When the server ends the watch, it is resumed at once from the last resourceVersion seen (after
   the backoff if it ended within a second without an event). When the connection breaks or cannot
   be made, or the server answers 429 or 5xx, it is resumed the same way after the backoff.
4. `410 Gone` (an HTTP 410, or an ERROR event with code 410) means the server no longer has that
   resourceVersion's history: LIST again (step 1), after the backoff. So does any other error the
   watch cannot resume from: another ERROR event, another HTTP status, an event that is not JSON.
5. The backoff doubles from 0.2 s to 5 s, and starts again at 0.2 s once a watch delivers an event
   or runs to the server's timeout. A failure is logged at WARNING the first time its kind occurs
   in an outage, then at DEBUG; the recovery is logged at INFO.
6. Nothing escapes a scope's loop. `run` returns within 1.5 s of `stop` being set: it shuts down
   the socket of each open response, which wakes the thread blocked reading it, and leaves behind
   (a daemon thread) only a request whose answer has not come yet. `run` raises only if a scope's
   thread died anyway, so that the operator's health check notices.

The `kubernetes` package serves only as the HTTP transport: the kind's API class (`CoreV1Api`,
`AppsV1Api`) with `_preload_content=False` returns urllib3's raw response, whose JSON is parsed
here with `json.loads` straight into the kind's `model` records. No object body is kept, and none
is deserialized into the package's model classes, which is far slower than `json.loads`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from zkregistry.inventory import Inventory
from zkregistry.model import Deployment, Key, Pod, ReplicaSet, key_of

log = logging.getLogger(__name__)

PAGE_SIZE = 500
SERVER_TIMEOUT = 300  # seconds after which the server ends a watch (it also sends a bookmark)
CONNECT_TIMEOUT = 10.0
LIST_READ_TIMEOUT = 60.0  # seconds that a list page may be silent
WATCH_READ_TIMEOUT = SERVER_TIMEOUT + 30.0  # a watch silent for longer than the server's timeout is dead
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0
BRIEF = 1.0  # a watch that the server ends sooner than this, with no event, counts as a failure
JOIN_TIMEOUT = 1.0  # seconds that `run` waits for the scopes' threads once stopped

R = TypeVar("R")  # the record that the inventory keeps of one object of a kind


@dataclass(frozen=True, slots=True)
class Kind(Generic[R]):
    """What a `Reflector` needs to know of one kind."""

    name: str  # the plural: its threads' names, its logs, and its source among the inventory's
    api: Callable[[kubernetes.client.ApiClient], Any]  # the API class that lists it
    list_all: str  # the name of that class's method listing every namespace
    list_namespaced: str  # the name of its method listing one namespace
    decode: Callable[[Mapping], R]  # an object's body -> the record the inventory keeps
    put: Callable[[Inventory, R], None]  # ADDED, MODIFIED
    remove: Callable[[Inventory, Key], None]  # DELETED
    replace: Callable[[Inventory, str | None, list[R]], None]  # a fresh list of a scope


PODS = Kind(
    "pods",
    kubernetes.client.CoreV1Api,
    "list_pod_for_all_namespaces",
    "list_namespaced_pod",
    Pod.from_body,
    Inventory.put_pod,
    Inventory.remove_pod,
    Inventory.replace_pods,
)
REPLICASETS = Kind(
    "replicasets",
    kubernetes.client.AppsV1Api,
    "list_replica_set_for_all_namespaces",
    "list_namespaced_replica_set",
    ReplicaSet.from_body,
    Inventory.put_replicaset,
    Inventory.remove_replicaset,
    Inventory.replace_replicasets,
)
DEPLOYMENTS = Kind(
    "deployments",
    kubernetes.client.AppsV1Api,
    "list_deployment_for_all_namespaces",
    "list_namespaced_deployment",
    Deployment.from_body,
    Inventory.put_deployment,
    Inventory.remove_deployment,
    Inventory.replace_deployments,
)
KINDS = (PODS, REPLICASETS, DEPLOYMENTS)


class ExpiredError(Exception):
    """410 Gone: the resourceVersion is older than the history that the server keeps."""


class UnresumableError(Exception):
    """A failure that a watch cannot resume from; the scope lists again."""

    def __init__(self, kind: str, detail: object) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class BriefWatchError(Exception):
    """The server ended a watch at once, without an event; resume it after the backoff."""


class _Scope:
    """One list-and-watch: a namespace, or the whole cluster (`namespace` None)."""

    def __init__(self, kind: str, namespace: str | None) -> None:
        self.namespace = namespace
        self.where = f"{kind} in namespace {namespace}" if namespace else f"{kind} cluster-wide"
        self.version: str | None = None  # None: list before watching
        self.delay = BACKOFF_FIRST
        self.failing: set[str] = set()  # the failure kinds logged at WARNING in this outage
        self.response: urllib3.BaseHTTPResponse | None = None  # open now, to interrupt at stop
        self.api: Any = None  # the kind's API object, made on the scope's thread

    def backoff(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, BACKOFF_MAX)
        return delay

    def failed(self, kind: str, detail: object, then: str, exc_info: bool = False) -> None:
        level = logging.DEBUG if kind in self.failing else logging.WARNING
        self.failing.add(kind)
        log.log(level, "watch of %s: %s (%s); %s", self.where, kind, detail, then, exc_info=exc_info)

    def healthy(self) -> None:
        self.delay = BACKOFF_FIRST
        if self.failing:
            self.failing.clear()
            log.info("watch of %s: watching again", self.where)

    def interrupt(self) -> None:
        """Wakes the thread blocked on this scope's open response, if any (from another thread)."""
        response = self.response
        if response is not None:
            with contextlib.suppress(Exception):  # already released or closed: nothing is blocked on it
                response.shutdown()


class Reflector(Generic[R]):
    """Keeps the inventory's records of `kind` equal to the API's, for `namespaces` (empty: every
    namespace)."""

    def __init__(
        self,
        inventory: Inventory,
        kind: Kind[R],
        namespaces: Iterable[str] = (),
        api: Callable[[], Any] | None = None,
    ) -> None:
        """`api` makes each scope's API object, which has the kind's list methods (default: the
        kind's API class, from the loaded kubeconfig or ServiceAccount, with urllib3's own retries
        off, as this backs off by itself)."""
        self.inventory = inventory
        self.kind = kind
        self._api = api or (lambda: kind.api(_api_client()))
        self.scopes = [_Scope(kind.name, n) for n in dict.fromkeys(namespaces)] or [_Scope(kind.name, None)]
        self._unlisted = {id(s) for s in self.scopes}
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Lists and watches every scope until `stop` is set."""
        threads = [
            threading.Thread(
                target=self._follow,
                args=(scope, stop),
                name=f"{self.kind.name} {scope.namespace or '*'}",
                daemon=True,
            )
            for scope in self.scopes
        ]
        for thread in threads:
            thread.start()
        while not stop.wait(0.5):
            if not all(t.is_alive() for t in threads):
                raise RuntimeError(f"a watch thread of {self.kind.name} died")
        # Again and again: a response that arrives after one interruption is shut by the next.
        deadline = time.monotonic() + JOIN_TIMEOUT
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            for scope in self.scopes:
                scope.interrupt()
            time.sleep(0.05)

    # -- one scope (its own thread) ---------------------------------------------------------

    def _follow(self, scope: _Scope, stop: threading.Event) -> None:
        scope.api = self._api()
        while not stop.is_set():
            try:
                if scope.version is None:
                    scope.version = self._list(scope)
                    self._listed(scope)
                self._watch(scope)
                continue
            except ExpiredError as error:
                scope.version = None
                kind, detail, then, exc_info = "410 Gone", error, "listing again", False
            except UnresumableError as error:
                scope.version = None
                kind, detail, then, exc_info = error.kind, error, "listing again", False
            except ApiException as error:
                status = error.status or 0  # 0: no answer (TLS, for one)
                if not (status == 0 or status == 429 or status >= 500):
                    scope.version = None
                kind, detail, exc_info = f"HTTP {status}", error.reason, False
                then = "listing again" if scope.version is None else "resuming the watch"
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, BriefWatchError) as error:
                kind, detail, exc_info = type(error).__name__, error, False
                then = "listing again" if scope.version is None else "resuming the watch"
            except Exception as error:  # unexpected: list again rather than let the thread die
                scope.version = None
                kind, detail, then, exc_info = type(error).__name__, error, "listing again", True
            finally:
                scope.response = None
            if stop.is_set():
                break
            delay = scope.backoff()
            scope.failed(kind, detail, f"{then} in {delay:.1f} s", exc_info=exc_info)
            stop.wait(delay)

    def _listed(self, scope: _Scope) -> None:
        with self._lock:
            first = id(scope) in self._unlisted
            self._unlisted.discard(id(scope))
            every = first and not self._unlisted
        if every:
            self.inventory.mark_synced(self.kind.name)

    def _request(self, scope: _Scope, read_timeout: float, **params: object) -> urllib3.BaseHTTPResponse:
        assert scope.api is not None
        options = {"_preload_content": False, "_request_timeout": (CONNECT_TIMEOUT, read_timeout)}
        if scope.namespace is None:
            return getattr(scope.api, self.kind.list_all)(**params, **options)
        return getattr(scope.api, self.kind.list_namespaced)(scope.namespace, **params, **options)

    def _list(self, scope: _Scope) -> str:
        """Lists every object of the scope into the inventory; returns the list's resourceVersion."""
        records: list[R] = []
        token: str | None = None
        while True:
            params: dict[str, object] = {"limit": PAGE_SIZE}
            if token:
                params["_continue"] = token
            try:
                scope.response = self._request(scope, LIST_READ_TIMEOUT, **params)
            except ApiException as error:
                if error.status == 410:  # the continue token expired: start over
                    raise ExpiredError(f"list continuation: {error.reason}") from None
                raise
            try:
                page = json.loads(scope.response.data)
            finally:
                scope.response.release_conn()
                scope.response = None
            records.extend(self.kind.decode(item) for item in page.get("items") or ())
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        self.kind.replace(self.inventory, scope.namespace, records)
        log.debug("listed %d %s at resourceVersion %s", len(records), scope.where, meta.get("resourceVersion"))
        return meta["resourceVersion"]

    def _watch(self, scope: _Scope) -> None:
        """Follows the scope's watch from `scope.version` until the server ends it."""
        assert scope.version is not None
        started = time.monotonic()
        try:
            scope.response = response = self._request(
                scope,
                WATCH_READ_TIMEOUT,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=scope.version,
                timeout_seconds=SERVER_TIMEOUT,
            )
        except ApiException as error:
            if error.status == 410:
                raise ExpiredError(error.reason) from None
            raise
        events = 0
        try:
            for line in _lines(response):
                try:
                    event = json.loads(line)
                    type_, body = event["type"], event["object"]
                except (ValueError, KeyError, TypeError) as error:
                    raise UnresumableError("undecodable watch event", error) from None
                if type_ == "ERROR":
                    if body.get("code") == 410:
                        raise ExpiredError(body.get("message"))
                    raise UnresumableError(f"watch error {body.get('code')}", body.get("message"))
                if type_ in ("ADDED", "MODIFIED"):
                    self.kind.put(self.inventory, self.kind.decode(body))
                elif type_ == "DELETED":
                    self.kind.remove(self.inventory, key_of(body))
                scope.version = (body.get("metadata") or {}).get("resourceVersion") or scope.version
                events += 1
                if events == 1:
                    scope.healthy()
        finally:
            # Closed, not just released: a watch left early still has data in flight, which must
            # never reach the next request on the same connection. The pool opens it anew.
            response.close()
            response.release_conn()
        if not events and time.monotonic() - started < BRIEF:
            raise BriefWatchError("the server ended the watch at once")
        scope.healthy()


def _api_client() -> kubernetes.client.ApiClient:
    """A client of its own (each scope has one: its connection pool is its own)."""
    config = kubernetes.client.Configuration.get_default_copy()
    config.retries = urllib3.Retry(total=False)  # no retry inside urllib3: ours has a backoff
    return kubernetes.client.ApiClient(config)


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The lines of a streamed response, each as soon as it is complete (one watch event each)."""
    pending = b""
    for chunk in response.stream(None):  # None: each chunk as it arrives
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending
