"""zkregistry.client and `zkregistry discover` against the real ensemble: listing every format,
watching (callbacks and iterator, across server restarts), choosing, filtering, and clear errors."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from conftest import eventually
from zkregistry.client import (
    RandomStrategy,
    ServiceDiscovery,
    ServiceNotFound,
    ZooKeeperUnavailable,
)
from zkregistry.devenv.processes import free_ports
from zkregistry.formats import curator, serverset
from zkregistry.model import Instance

OWNER = "test-owner"
# A document as Curator's own JsonInstanceSerializer writes it (default, compatible mode).
CURATOR_EXTERNAL = (
    b'{"name":"svc","id":"vm-1","address":"192.168.7.7","port":9000,"sslPort":null,'
    b'"payload":{"@class":"java.util.LinkedHashMap","team":"billing"},"registrationTimeUTC":1,'
    b'"serviceType":"DYNAMIC","uriSpec":null}'
)
AURORA_EXTERNAL = (
    b'{"serviceEndpoint":{"host":"10.9.9.9","port":31337},"additionalEndpoints":{},"status":"ALIVE","shard":3}'
)


def instance(n: int, **fields) -> Instance:
    values = dict(
        id=f"uid-{n}", service="svc", address=f"10.0.0.{n}", port=8000 + n, namespace="ns", pod=f"pod-{n}",
        deployment="web", registration_ms=1000 + n,
    )
    return Instance(**(values | fields))


def register(zk: KazooClient, path: str, item: Instance, codec=curator.CODEC) -> str:
    """Writes `item` as the operator would; returns the znode's name."""
    created = zk.retry(
        zk.create, f"{path}/{codec.node_name(item)}", codec.encode(item, OWNER),
        ephemeral=True, sequence=codec.sequential, makepath=True,
    )
    return created.rsplit("/", 1)[1]


@pytest.fixture
def base(zk) -> str:
    path = f"/t-{uuid.uuid4().hex[:8]}/services"
    zk.ensure_path(path)
    return path


@pytest.fixture
def discovery(ensemble, base):
    with ServiceDiscovery(ensemble.connection_string, base) as d:
        yield d


def ids(instances) -> list[str]:
    return [i.id for i in instances]


# -- listing -------------------------------------------------------------------------------------


def test_lists_every_format_ours_and_external(zk, base, discovery):
    path = f"{base}/svc"
    register(zk, path, instance(1, metadata=(("zone", "a"),), endpoints=(("admin", 9001),)))
    member = register(zk, path, instance(2, enabled=False), serverset.CODEC)
    zk.create(f"{path}/vm-1", CURATOR_EXTERNAL)
    zk.create(f"{path}/member_0000009999", AURORA_EXTERNAL)
    zk.create(f"{path}/garbage", b"\xff not json")

    found = {i.id: i for i in discovery.query_for_instances("svc")}
    assert sorted(found) == ["member_0000009999", "uid-1", "uid-2", "vm-1"]  # garbage is left out
    ours = found["uid-1"]
    assert (ours.format, ours.address, ours.port, ours.owner, ours.pod) == ("curator", "10.0.0.1", 8001, OWNER, "pod-1")
    assert ours.metadata == {"zone": "a"} and ours.endpoints == {"admin": ("10.0.0.1", 9001)} and ours.enabled
    assert found["uid-2"].format == "serverset" and found["uid-2"].znode == member and not found["uid-2"].enabled
    assert found["vm-1"].owner is None and found["vm-1"].format == "curator" and found["vm-1"].name == "svc"
    assert found["member_0000009999"].shard == 3
    assert discovery.query_for_instance("svc", "vm-1").address == "192.168.7.7"
    assert discovery.query_for_instance("svc", "nope") is None
    assert discovery.query_for_names() == ["svc"]


def test_missing_service_and_base_path(zk, base, discovery):
    with pytest.raises(ServiceNotFound, match=f"no znode {base}/nope"):
        discovery.query_for_instances("nope")
    with pytest.raises(ServiceNotFound):
        discovery.service_cache("nope").start()
    zk.ensure_path(f"{base}/empty")
    assert discovery.query_for_instances("empty") == []
    with ServiceDiscovery(discovery.client, "/does/not/exist") as elsewhere:
        assert elsewhere.query_for_names() == []
    with pytest.raises(ValueError):
        discovery.query_for_instances("a/b")


def test_unreachable_zookeeper_is_a_clear_error_within_the_timeout():
    port = free_ports(1)[0]
    started = time.monotonic()
    with pytest.raises(ZooKeeperUnavailable, match=f"cannot reach ZooKeeper at 127.0.0.1:{port} within 1 s"):
        ServiceDiscovery(f"127.0.0.1:{port}", connect_timeout=1).start()
    assert time.monotonic() - started < 5


# -- watching ------------------------------------------------------------------------------------


def test_cache_follows_changes_with_listeners_and_iterator(zk, base, discovery):
    path = f"{base}/svc"
    register(zk, path, instance(1))
    seen: list[list[str]] = []
    with discovery.service_cache("svc") as cache:
        cache.add_listener(lambda instances: seen.append(ids(instances)))
        updates = cache.updates(timeout=30)
        assert ids(next(updates)) == ["uid-1"]

        register(zk, path, instance(2))
        assert ids(next(updates)) == ["uid-1", "uid-2"]
        zk.set(f"{path}/uid-1", curator.CODEC.encode(instance(1, enabled=False), OWNER))
        changed = next(updates)
        assert [i.enabled for i in changed] == [False, True]
        zk.delete(f"{path}/uid-2")
        assert ids(next(updates)) == ["uid-1"]
        # A takeover: delete and create anew in one transaction; the new data is seen.
        transaction = zk.transaction()
        transaction.delete(f"{path}/uid-1")
        transaction.create(f"{path}/uid-1", curator.CODEC.encode(instance(1, port=7777), OWNER), ephemeral=True)
        assert all(r is True or isinstance(r, str) for r in transaction.commit())
        assert [i.port for i in next(updates)] == [7777]
        assert eventually(lambda: seen[-1] == ["uid-1"] and len(seen) == 4, 10, "listener saw every change")
    assert next(updates, "ended") == "ended"  # the iterator ends when the cache closes


def test_cache_follows_the_service_znode_deleted_and_created(zk, base, discovery):
    path = f"{base}/svc"
    zk.create(f"{path}/vm-1", CURATOR_EXTERNAL, makepath=True)
    with discovery.service_cache("svc") as cache:
        assert ids(cache.instances()) == ["vm-1"]
        zk.delete(path, recursive=True)
        eventually(lambda: cache.instances() == [], 10, "no instances once the service is gone")
        register(zk, path, instance(1))
        eventually(lambda: ids(cache.instances()) == ["uid-1"], 10, "the service back")


def test_updates_timeout_ends_the_iterator(zk, base, discovery):
    register(zk, f"{base}/svc", instance(1))
    with discovery.service_cache("svc") as cache:
        started = time.monotonic()
        assert [ids(i) for i in cache.updates(timeout=0.3)] == [["uid-1"]]
        assert time.monotonic() - started < 5


def _restart_and_change(ensemble, zk, myid: int, path: str, change) -> None:
    ensemble.stop_server(myid)
    try:
        change()  # while that server is down: the cache must catch up afterwards
    finally:
        ensemble.start_server(myid)


def test_cache_catches_up_after_its_only_server_restarts(ensemble, zk, base):
    """The client knows one server only: it is cut off while the server is down, and changes
    made meanwhile are seen once it reconnects (kazoo drops watches on disconnection)."""
    path = f"{base}/svc"
    for n in (1, 2):
        register(zk, path, instance(n))
    server = ensemble.servers[0]
    states: list = []
    with ServiceDiscovery(f"127.0.0.1:{server.client_port}", base, session_timeout=30) as discovery:
        discovery.client.add_listener(states.append)
        with discovery.service_cache("svc") as cache:
            seen: list[list[str]] = []
            cache.add_listener(lambda instances: seen.append(ids(instances)))
            assert ids(cache.instances()) == ["uid-1", "uid-2"]

            def change():
                zk.retry(zk.delete, f"{path}/uid-1")
                register(zk, path, instance(3))
                zk.retry(zk.set, f"{path}/uid-2", curator.CODEC.encode(instance(2, port=9999), OWNER))

            _restart_and_change(ensemble, zk, server.myid, path, change)
            eventually(lambda: ids(cache.instances()) == ["uid-2", "uid-3"], 60, "the cache caught up")
            assert [i.port for i in cache.instances()] == [9999, 8003]
            assert "SUSPENDED" in [str(s) for s in states]  # it really was cut off
            # Watches are set again: a change after the restart is seen too.
            zk.retry(zk.delete, f"{path}/uid-3")
            eventually(lambda: seen[-1] == ["uid-2"], 10, "a change after the restart")


def test_cache_follows_a_rolling_restart_of_the_ensemble(ensemble, zk, base, discovery):
    path = f"{base}/svc"
    register(zk, path, instance(0))
    expected = {"uid-0"}
    with discovery.service_cache("svc") as cache:
        for server in list(ensemble.servers):
            n = server.myid

            def change(n=n):
                register(zk, path, instance(n))
                expected.add(f"uid-{n}")

            _restart_and_change(ensemble, zk, server.myid, path, change)
            eventually(lambda: set(ids(cache.instances())) == expected, 60, f"the cache after restarting server {n}")
        zk.retry(zk.delete, f"{path}/uid-0")
        eventually(lambda: set(ids(cache.instances())) == expected - {"uid-0"}, 30, "a change after the restarts")


# -- choosing and filtering ----------------------------------------------------------------------


def test_provider_round_robin_random_and_filters(zk, base, discovery):
    path = f"{base}/svc"
    register(zk, path, instance(1, metadata=(("zone", "a"), ("version", "1"))))
    register(zk, path, instance(2, metadata=(("zone", "b"), ("version", "1"))))
    register(zk, path, instance(3, metadata=(("zone", "a"), ("version", "2"))))
    register(zk, path, instance(4, metadata=(("zone", "a"),), enabled=False))

    with discovery.service_provider("svc") as provider:
        assert ids(provider.get_all_instances()) == ["uid-1", "uid-2", "uid-3"]  # not the draining one
        assert [provider.get_instance().id for _ in range(6)] == ["uid-1", "uid-2", "uid-3"] * 2
    with discovery.service_provider("svc", metadata={"zone": "a"}) as provider:
        assert ids(provider.get_all_instances()) == ["uid-1", "uid-3"]
    with discovery.service_provider("svc", metadata={"zone": "a"}, enabled_only=False) as provider:
        assert ids(provider.get_all_instances()) == ["uid-1", "uid-3", "uid-4"]
    with discovery.service_provider("svc", metadata={"zone": "c"}) as provider:
        assert provider.get_instance() is None
    import random

    with discovery.service_provider("svc", RandomStrategy(random.Random(7)), filters=[lambda i: i.port > 8001]) as p:
        counts = Counter(p.get_instance().id for _ in range(200))
        assert set(counts) == {"uid-2", "uid-3"} and min(counts.values()) > 50
        # The provider follows the cache: a new instance is chosen too.
        register(zk, path, instance(5))
        eventually(lambda: "uid-5" in ids(p.get_all_instances()), 10, "the new instance")


# -- the CLI -------------------------------------------------------------------------------------


def discover(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zkregistry", "discover", *args], capture_output=True, text=True, timeout=timeout,
    )


def test_cli_lists_a_service(ensemble, zk, base):
    path = f"{base}/svc"
    register(zk, path, instance(1, metadata=(("zone", "a"),), endpoints=(("admin", 9001),)))
    zk.create(f"{path}/vm-1", CURATOR_EXTERNAL)
    table = discover("svc", "--zk-hosts", ensemble.connection_string, "--base-path", base)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "ADDRESS", "PORT", "ENABLED", "FORMAT", "POD", "ENDPOINTS", "METADATA"]
    assert lines[1].split() == ["uid-1", "10.0.0.1", "8001", "true", "curator", "ns/pod-1", "admin=9001", "zone=a"]
    assert lines[2].split() == ["vm-1", "192.168.7.7", "9000", "true", "curator", "-", "-", "-"]
    as_json = discover("svc", "--zk-hosts", ensemble.connection_string, "--base-path", base, "--output", "json")
    document = json.loads(as_json.stdout)
    assert document["path"] == path and [i["id"] for i in document["instances"]] == ["uid-1", "vm-1"]
    assert document["instances"][0]["metadata"] == {"zone": "a"} and document["instances"][0]["owner"] == OWNER


def test_cli_missing_service_is_one_line_and_exit_1(ensemble, base):
    result = discover("nope", "--zk-hosts", ensemble.connection_string, "--base-path", base)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"zkregistry: service 'nope' not found: no znode {base}/nope"]


def test_cli_unreachable_zookeeper_is_one_line_and_exit_1_without_hanging():
    port = free_ports(1)[0]
    started = time.monotonic()
    result = discover("svc", "--zk-hosts", f"127.0.0.1:{port}")
    took = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"zkregistry: cannot reach ZooKeeper at 127.0.0.1:{port} within 5 s"]
    assert took < 15, f"took {took:.1f} s"


@pytest.mark.parametrize(
    ("args", "message"),
    [(["a/b"], "not a service name"), (["svc", "--base-path", "rel"], "not an absolute ZooKeeper path"),
     (["svc", "--zk-hosts", "h:port"], "--zk-hosts"), (["svc", "--output", "yaml"], "invalid choice"), ([], "SERVICE")],
)
def test_cli_usage_errors_exit_2(args, message):
    result = discover(*args)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_cli_watch_prints_each_change(ensemble, zk, base):
    path = f"{base}/svc"
    register(zk, path, instance(1))
    process = subprocess.Popen(
        [sys.executable, "-m", "zkregistry", "discover", "svc", "--watch", "-o", "json",
         "--zk-hosts", ensemble.connection_string, "--base-path", base],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=30))
        assert [i["id"] for i in first["instances"]] == ["uid-1"] and "time" in first
        register(zk, path, instance(2))
        assert [i["id"] for i in json.loads(lines.get(timeout=30))["instances"]] == ["uid-1", "uid-2"]
        zk.delete(path, recursive=True)  # one child at a time: intermediate states may be printed
        deadline = time.monotonic() + 30
        while (last := json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic()))))["instances"]:
            assert len(last["instances"]) == 1
        assert process.poll() is None  # still watching a service that is gone
    finally:
        process.terminate()
        process.wait(timeout=10)
    with pytest.raises(NoNodeError):
        zk.get(path)
