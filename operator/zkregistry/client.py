"""A discovery client for services registered in ZooKeeper, by zkregistry or by anyone else.

The nouns are Apache Curator's:

- `ServiceInstance`: one registration, read from any known format (Curator JSON, serverset).
- `ServiceDiscovery`: a ZooKeeper connection and a base path; lists services and instances.
- `ServiceCache`: the instances of one service, kept current by ZooKeeper watches, with
  listeners (callbacks) and an iterator of updates.
- `ServiceProvider`: chooses one instance (round robin or random) among those that pass its
  filters (enabled, metadata).

    with ServiceDiscovery("zk1:2181,zk2:2181", base_path="/services") as discovery:
        discovery.query_for_instances("orders")              # a list, read once
        with discovery.service_provider("orders", strategy="random", metadata={"zone": "eu-1a"}) as provider:
            instance = provider.get_instance()                  # None when no instance qualifies
        with discovery.service_cache("orders") as cache:
            cache.add_listener(lambda instances: print(len(instances)))
            for instances in cache.updates(timeout=60):         # now, then after each change
                ...

Errors: `ServiceNotFound` (a LookupError) when the service's znode does not exist;
`ZooKeeperUnavailable` (a ConnectionError) when ZooKeeper cannot be reached within the connect or
request timeout. Both are `DiscoveryError`s.

A cache survives connection loss and server restarts: kazoo drops every watch when the connection
drops, so the cache reads the whole service afresh each time the connection is re-established,
and keeps serving the last known instances in between. If the service's znode is deleted while a
cache watches it, the cache holds no instances and waits for it to come back.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kazoo.client import KazooClient
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoAuthError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType, KazooState, WatchedEvent
from kazoo.retry import KazooRetry

from zkregistry import formats
from zkregistry.formats import Member

log = logging.getLogger(__name__)

DEFAULT_BASE_PATH = "/services"


# -- errors ----------------------------------------------------------------------------------------


class DiscoveryError(Exception):
    """Something kept the client from answering."""


class ServiceNotFound(DiscoveryError, LookupError):  # noqa: N818 (a noun, like Curator's)
    """The service's znode does not exist."""

    def __init__(self, service: str, path: str) -> None:
        super().__init__(f"service {service!r} not found: no znode {path}")
        self.service, self.path = service, path


class ZooKeeperUnavailable(DiscoveryError, ConnectionError):  # noqa: N818 (the condition's name)
    """ZooKeeper could not be reached, or did not answer, in time."""


_CONNECTION_ERRORS = (
    ConnectionLoss,
    SessionExpiredError,
    ConnectionClosedError,
    OperationTimeoutError,
    KazooTimeoutError,
)


# -- instances (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceInstance:
    """One registration of a service, whichever format and whoever wrote it.

    `id` is the instance's id (Curator's `id`; for serversets, the pod's uid if zkregistry wrote
    it, else the znode's name); `znode` is the child's name under the service path. `owner`,
    `namespace`, `pod` and `deployment` are set for registrations that zkregistry wrote.
    """

    name: str
    id: str
    znode: str
    format: str
    address: str | None
    port: int | None
    enabled: bool = True
    ssl_port: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    endpoints: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # name -> (host, port)
    registration_ms: int | None = None
    shard: int | None = None
    owner: str | None = None
    namespace: str | None = None
    pod: str | None = None
    deployment: str | None = None

    @classmethod
    def from_member(cls, service: str, znode: str, format_name: str, member: Member) -> ServiceInstance:
        return cls(
            name=member.service or service,
            id=member.id or znode,
            znode=znode,
            format=format_name,
            address=member.address,
            port=member.port,
            enabled=member.enabled,
            ssl_port=member.ssl_port,
            metadata=dict(member.metadata),
            endpoints={name: (host, port) for name, host, port in member.endpoints},
            registration_ms=member.registration_ms,
            shard=member.shard,
            owner=member.owner,
            namespace=member.namespace,
            pod=member.pod,
            deployment=member.deployment,
        )

    @classmethod
    def decode(cls, service: str, znode: str, data: bytes) -> ServiceInstance:
        """Reads a znode of any known format; raises ValueError if none reads it."""
        codec, member = formats.read_any(znode, data)
        return cls.from_member(service, znode, codec.name, member)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; fields that are not known are left out."""
        out: dict[str, Any] = {
            "name": self.name,
            "id": self.id,
            "znode": self.znode,
            "format": self.format,
            "address": self.address,
            "port": self.port,
            "enabled": self.enabled,
        }
        optional = {
            "sslPort": self.ssl_port,
            "registrationTimeUTC": self.registration_ms,
            "shard": self.shard,
            "owner": self.owner,
            "namespace": self.namespace,
            "pod": self.pod,
            "deployment": self.deployment,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        out["metadata"] = dict(self.metadata)
        out["endpoints"] = {n: {"host": h, "port": p} for n, (h, p) in self.endpoints.items()}
        return out


InstanceFilter = Callable[[ServiceInstance], bool]


def is_enabled(instance: ServiceInstance) -> bool:
    """Curator's ServiceProvider filter: a draining (not enabled / not ALIVE) instance is skipped."""
    return instance.enabled


def metadata_matches(wanted: Mapping[str, str]) -> InstanceFilter:
    """A filter that passes instances whose metadata holds every key of `wanted` with its value."""
    items = dict(wanted).items()
    return lambda instance: all(instance.metadata.get(k) == v for k, v in items)


def select(instances: Iterable[ServiceInstance], filters: Sequence[InstanceFilter]) -> list[ServiceInstance]:
    """The instances that pass every filter, in their order."""
    return [i for i in instances if all(f(i) for f in filters)]


class ProviderStrategy(Protocol):
    def choose(self, instances: Sequence[ServiceInstance]) -> ServiceInstance | None:
        """One of `instances`, or None if there are none."""
        ...


class RoundRobinStrategy:
    """Each call takes the next instance, in id order; thread-safe."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def choose(self, instances: Sequence[ServiceInstance]) -> ServiceInstance | None:
        if not instances:
            return None
        with self._lock:
            turn = next(self._counter)
        return instances[turn % len(instances)]


class RandomStrategy:
    """A uniformly random instance."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def choose(self, instances: Sequence[ServiceInstance]) -> ServiceInstance | None:
        return self._rng.choice(instances) if instances else None


STRATEGIES: dict[str, Callable[[], ProviderStrategy]] = {"round-robin": RoundRobinStrategy, "random": RandomStrategy}


def validate_service_name(service: str) -> str:
    """`service` if it is one ZooKeeper path component; ValueError otherwise."""
    if not service or "/" in service or service in (".", "..") or any(ord(c) < 32 for c in service):
        raise ValueError(f"{service!r} is not a service name (one ZooKeeper path component)")
    return service


def validate_base_path(base_path: str) -> str:
    """`base_path` without a trailing slash if it is an absolute ZooKeeper path; ValueError otherwise."""
    trimmed = base_path.rstrip("/") or "/"
    if not base_path.startswith("/") or "//" in trimmed or any(p in (".", "..") for p in trimmed.split("/")):
        raise ValueError(f"{base_path!r} is not an absolute ZooKeeper path such as /services")
    return trimmed


# -- ServiceDiscovery ----------------------------------------------------------------------------


class ServiceDiscovery:
    """A ZooKeeper connection (its own, or one the caller passes and keeps) and a base path."""

    def __init__(
        self,
        hosts: str | KazooClient,
        base_path: str = DEFAULT_BASE_PATH,
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
        session_timeout: float = 10.0,
        **kazoo_options: Any,
    ) -> None:
        """`hosts` is a connection string (host:port,...[/chroot]) or a KazooClient, which is then
        the caller's to start and stop. Raises ValueError for a malformed connection string or
        base path."""
        self.base_path = validate_base_path(base_path)
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        if isinstance(hosts, KazooClient):
            self.client, self._owns_client, self.hosts = hosts, False, hosts.hosts
        else:
            self.hosts = hosts
            self.client = KazooClient(
                hosts=hosts,
                timeout=session_timeout,
                connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=2.0),
                **kazoo_options,
            )
            self._owns_client = True

    def start(self) -> ServiceDiscovery:
        """Connects (if the client is ours); raises ZooKeeperUnavailable after `connect_timeout`."""
        if self._owns_client and not self.client.connected:
            try:
                self.client.start(timeout=self.connect_timeout)
            except KazooTimeoutError:
                raise ZooKeeperUnavailable(
                    f"cannot reach ZooKeeper at {self.hosts} within {self.connect_timeout:g} s"
                ) from None
        return self

    def close(self) -> None:
        if self._owns_client:
            self.client.stop()
            self.client.close()

    def __enter__(self) -> ServiceDiscovery:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path_for(self, service: str) -> str:
        return f"{self.base_path.rstrip('/')}/{validate_service_name(service)}"

    def query_for_names(self) -> list[str]:
        """The services under the base path, sorted; none if the base path does not exist."""
        try:
            return sorted(self._wait(self.client.get_children_async(self.base_path), self.base_path))
        except NoNodeError:
            return []

    def query_for_instances(self, service: str, sync: bool = True) -> list[ServiceInstance]:
        """The readable instances of `service`, sorted by id. Raises ServiceNotFound.

        With `sync` (one more round trip), the server this client talks to first catches up with
        the leader, so that what other clients wrote before the call is seen."""
        path = self.path_for(service)
        if sync:
            self._wait(self.client.sync_async(path), path)
        try:
            names = self._wait(self.client.get_children_async(path), path)
        except NoNodeError:
            raise ServiceNotFound(service, path) from None
        return read_instances(self, service, path, names)

    def query_for_instance(self, service: str, instance_id: str) -> ServiceInstance | None:
        """The instance of `service` with id `instance_id`, or None."""
        return next((i for i in self.query_for_instances(service) if i.id == instance_id), None)

    def service_cache(self, service: str) -> ServiceCache:
        """A cache of `service`'s instances; start it (or use it as a context manager)."""
        return ServiceCache(self, service)

    def service_provider(
        self,
        service: str,
        strategy: str | ProviderStrategy = "round-robin",
        *,
        metadata: Mapping[str, str] | None = None,
        filters: Sequence[InstanceFilter] = (),
        enabled_only: bool = True,
    ) -> ServiceProvider:
        """A provider over a cache of its own. Like Curator's, it skips instances that are not
        enabled, unless `enabled_only` is False; `metadata` keeps instances with those values."""
        chosen = STRATEGIES[strategy]() if isinstance(strategy, str) else strategy
        all_filters = ([is_enabled] if enabled_only else []) + ([metadata_matches(metadata)] if metadata else [])
        return ServiceProvider(self.service_cache(service), chosen, [*all_filters, *filters], owns_cache=True)

    def _wait(self, result, path: str):
        """The value of a kazoo async result, within `request_timeout`; connection trouble becomes
        ZooKeeperUnavailable, a refused read DiscoveryError."""
        try:
            return result.get(timeout=self.request_timeout)
        except _CONNECTION_ERRORS as error:
            raise ZooKeeperUnavailable(
                f"ZooKeeper at {self.hosts} did not answer for {path}: {type(error).__name__}"
            ) from None
        except NoAuthError:
            raise DiscoveryError(f"not allowed to read {path}") from None


def read_instances(
    discovery: ServiceDiscovery,
    service: str,
    path: str,
    names: Iterable[str],
    watch: Callable[[WatchedEvent], None] | None = None,
) -> list[ServiceInstance]:
    """Reads the children `names` of `path` in parallel (setting `watch` on each), sorted by id.
    A child that is gone meanwhile, or not of any known format, is left out."""
    reads = [(name, discovery.client.get_async(f"{path}/{name}", watch=watch)) for name in names]
    instances = []
    for name, result in reads:
        try:
            data, _ = discovery._wait(result, f"{path}/{name}")
        except NoNodeError:
            continue
        try:
            instances.append(ServiceInstance.decode(service, name, data or b""))
        except ValueError as error:
            log.debug("%s/%s is not a registration: %s", path, name, error)
    return sorted(instances, key=lambda i: (i.id, i.znode))


# -- ServiceCache --------------------------------------------------------------------------------

Listener = Callable[[list[ServiceInstance]], None]
_CLOSED = object()


class ServiceCache:
    """The instances of one service, kept current by a children watch on the service's znode and a
    data watch on each child. Watch events only mark what to read again; one worker thread reads,
    so reads are never interleaved and listeners see each distinct state in order."""

    def __init__(self, discovery: ServiceDiscovery, service: str) -> None:
        self.discovery = discovery
        self.service = service
        self.path = discovery.path_for(service)
        self._lock = threading.Condition()
        self._instances: dict[str, ServiceInstance] = {}  # by znode name
        self._listeners: list[Listener] = []
        self._full = True  # read everything (start, and every reconnection)
        self._children = False  # the list of children changed
        self._changed: set[str] = set()  # children whose data changed
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0  # counts distinct states, for updates()

    # -- what callers use ------------------------------------------------------------------------

    def start(self) -> ServiceCache:
        """Reads the service once, then follows it. Raises ServiceNotFound if its znode does not
        exist now, ZooKeeperUnavailable if ZooKeeper does not answer."""
        self.discovery.start()
        self._wait(self.discovery.client.sync_async(self.path))  # start from the leader's view
        if self._wait(self.discovery.client.exists_async(self.path)) is None:
            raise ServiceNotFound(self.service, self.path)
        self._refresh()
        self.discovery.client.add_listener(self._on_state)
        self._thread = threading.Thread(target=self._run, name=f"service-cache-{self.service}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops following the service; iterators from `updates()` end."""
        self._closed.set()
        self.discovery.client.remove_listener(self._on_state)
        with self._lock:
            self._lock.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            if isinstance(listener, _Feed):
                listener.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> ServiceCache:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def instances(self) -> list[ServiceInstance]:
        """The instances as last read, sorted by id."""
        with self._lock:
            return sorted(self._instances.values(), key=lambda i: (i.id, i.znode))

    def add_listener(self, listener: Listener) -> None:
        """`listener(instances)` is called on the cache's thread after every change."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def updates(self, timeout: float | None = None) -> Iterator[list[ServiceInstance]]:
        """The instances now, then after each change. Ends when the cache closes, or when
        `timeout` seconds pass without a change (None: never)."""
        feed = _Feed()
        with self._lock:
            self._listeners.append(feed)
            current = sorted(self._instances.values(), key=lambda i: (i.id, i.znode))
        try:
            yield current
            while not self._closed.is_set():
                try:
                    item = feed.queue.get(timeout=timeout)
                except queue.Empty:
                    return
                if item is _CLOSED:
                    return
                yield item
        finally:
            self.remove_listener(feed)

    # -- ZooKeeper events (kazoo's threads): only mark what to read --------------------------------

    def _on_state(self, state: KazooState) -> None:
        # kazoo drops every watch when the connection drops; read everything when it is back.
        if state == KazooState.CONNECTED:
            self._mark(full=True)

    def _on_children(self, event: WatchedEvent) -> None:
        if event.type != EventType.NONE:  # NONE: the connection dropped; _on_state handles it
            self._mark(children=True)

    def _on_data(self, event: WatchedEvent) -> None:
        # DELETED too: a takeover deletes and re-creates a znode of the same name in one
        # transaction, which the children list does not show; reading it again does.
        if event.type in (EventType.CHANGED, EventType.DELETED):
            self._mark(name=event.path.rsplit("/", 1)[1])

    def _mark(self, full: bool = False, children: bool = False, name: str | None = None) -> None:
        with self._lock:
            self._full |= full
            self._children |= children
            if name is not None:
                self._changed.add(name)
            self._lock.notify_all()

    # -- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                while not (self._full or self._children or self._changed) and not self._closed.is_set():
                    self._lock.wait()
            if self._closed.is_set():
                return
            try:
                self._refresh()
            except DiscoveryError as error:  # not connected: CONNECTED will mark a full read
                log.debug("reading %s failed: %s", self.path, error)
                self._mark(full=True)
                self._closed.wait(0.5)
            except Exception:
                log.exception("reading %s failed", self.path)
                self._mark(full=True)
                self._closed.wait(1.0)

    def _refresh(self) -> None:
        with self._lock:
            full, children, changed = self._full, self._children, self._changed
            self._full, self._children, self._changed = False, False, set()
        client = self.discovery.client
        try:
            if full or children:
                names = set(self._wait(client.get_children_async(self.path, watch=self._on_children)))
            else:
                names = set(self._instances)
        except NoNodeError:
            # Deleted: no instances until it exists again (the exists watch says when).
            if self._wait(client.exists_async(self.path, watch=self._on_children)) is not None:
                self._mark(children=True)
            self._publish({})
            return
        with self._lock:
            known = dict(self._instances)
        stale = names if full else (names - set(known)) | (changed & names)
        read = read_instances(self.discovery, self.service, self.path, sorted(stale), watch=self._on_data)
        fresh = {name: known[name] for name in names - stale if name in known}
        fresh.update({i.znode: i for i in read})
        self._publish(fresh)

    def _publish(self, instances: dict[str, ServiceInstance]) -> None:
        with self._lock:
            if instances == self._instances:
                return
            self._instances = instances
            self._generation += 1
            snapshot = sorted(instances.values(), key=lambda i: (i.id, i.znode))
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("a listener of %s failed", self.path)

    def _wait(self, result):
        return self.discovery._wait(result, self.path)


class _Feed:
    """A listener that queues each state for an `updates()` iterator."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()

    def __call__(self, instances: list[ServiceInstance]) -> None:
        self.queue.put(instances)

    def close(self) -> None:
        self.queue.put(_CLOSED)


# -- ServiceProvider -----------------------------------------------------------------------------


class ServiceProvider:
    """Chooses an instance of a service with a strategy, among those that pass every filter."""

    def __init__(
        self,
        cache: ServiceCache,
        strategy: ProviderStrategy,
        filters: Sequence[InstanceFilter] = (),
        owns_cache: bool = False,
    ) -> None:
        self.cache = cache
        self.strategy = strategy
        self.filters = list(filters)
        self._owns_cache = owns_cache

    def start(self) -> ServiceProvider:
        if self._owns_cache:
            self.cache.start()
        return self

    def close(self) -> None:
        if self._owns_cache:
            self.cache.close()

    def __enter__(self) -> ServiceProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_all_instances(self) -> list[ServiceInstance]:
        """Every instance that passes the filters, sorted by id."""
        return select(self.cache.instances(), self.filters)

    def get_instance(self) -> ServiceInstance | None:
        """One instance chosen by the strategy, or None if none passes the filters."""
        return self.strategy.choose(self.get_all_instances())
