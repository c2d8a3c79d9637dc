"""The Curator format against Apache Curator itself (curator-x-discovery 5.9.0 from Maven Central,
tests/interop/curator): its JsonInstanceSerializer reads what the codec writes, field for field;
its ServiceCache follows registrations made the operator's way; our client reads what Curator's own
registerService writes."""

from __future__ import annotations

import json
import uuid

import pytest

from conftest import eventually
from interop.harness import CuratorProgram
from zkregistry.client import ServiceDiscovery
from zkregistry.formats import curator
from zkregistry.model import Instance

OWNER = "interop"


@pytest.fixture(scope="module")
def program() -> CuratorProgram:
    return CuratorProgram.build()


def instance(n: int, **fields) -> Instance:
    values = dict(
        id=f"uid-{n}", service="svc", address=f"10.0.0.{n}", port=8000 + n, namespace="ns", pod=f"pod-{n}",
        deployment="web", registration_ms=1700000000000 + n,
    )
    return Instance(**(values | fields))


def test_curator_deserializes_the_codecs_documents_as_written(program):
    plain = instance(1)
    rich = instance(2, endpoints=(("admin", 9002), ("http", 8002)), metadata=(("team", "équipe"), ("zone", "a")))
    draining = instance(3, enabled=False)
    documents = [curator.CODEC.encode(i, OWNER) for i in (plain, rich, draining)]
    results = program.decode(documents)
    assert all(r["ok"] for r in results), results
    for item, result in zip((plain, rich, draining), results, strict=True):
        seen = result["instance"]
        assert (seen["name"], seen["id"], seen["address"], seen["port"]) == ("svc", item.id, item.address, item.port)
        assert seen["registrationTimeUTC"] == item.registration_ms and seen["serviceType"] == "DYNAMIC"
        assert seen["enabled"] is item.enabled
        assert seen["payloadClass"] == "java.util.LinkedHashMap"
        assert seen["payload"]["owner"] == OWNER and seen["payload"]["uid"] == item.id
        assert seen["payload"]["metadata"] == dict(item.metadata)
        assert seen["payload"]["ports"] == dict(item.endpoints)
    # Curator writes back exactly our bytes: the codec writes what its default serializer writes
    # (which never writes `enabled`, so the draining document differs by that field alone).
    assert results[0]["serialized"].encode() == documents[0]
    assert results[1]["serialized"].encode() == documents[1]
    written_back = json.loads(results[2]["serialized"])
    assert written_back == {k: v for k, v in json.loads(documents[2]).items() if k != "enabled"}


def test_curator_and_the_codec_agree_on_edge_cases(program):
    """Documents other writers may produce: both readers accept or reject them alike."""
    documents = [
        b'{"name":"s","id":"a","enabled":null}',
        b'{"name":"s","id":"a","enabled":0}',
        b'{"name":"s","id":"a","enabled":"false"}',
        b'{"name":"s","id":"a","port":"8080"}',
        b'{"name":"s","id":"a","payload":{"owner":"x"}}',  # no @class: still a Map
        b'{"name":"s","id":"a","unknown":{"field":1}}',
        b'{"name":"s","id":"a","port":NaN}',
        b"[1]",
    ]
    results = program.decode(documents)
    for data, result in zip(documents, results, strict=True):
        try:
            member = curator.CODEC.decode("a", data)
        except ValueError:
            assert not result["ok"], data
            continue
        assert result["ok"], (data, result)
        assert member.enabled is result["instance"]["enabled"], data
        assert member.port == result["instance"]["port"], data
        payload = result["instance"]["payload"] or {}
        assert member.owner == payload.get("owner"), data


def test_curators_service_cache_follows_registrations_made_our_way(program, ensemble, zk):
    base = f"/t-{uuid.uuid4().hex[:8]}/services"
    path = f"{base}/svc"
    zk.create(f"{path}/uid-1", curator.CODEC.encode(instance(1), OWNER), ephemeral=True, makepath=True)
    with program.run("watch", ensemble.connection_string, base, "svc") as watch:
        assert watch.wait_for(lambda line: line["event"] == "initial")["ids"] == ["uid-1"]
        zk.create(f"{path}/uid-2", curator.CODEC.encode(instance(2), OWNER), ephemeral=True)
        watch.wait_for(lambda line: line.get("ids") == ["uid-1", "uid-2"], 30)
        zk.set(f"{path}/uid-1", curator.CODEC.encode(instance(1, enabled=False), OWNER))
        line = watch.wait_for(lambda line: [i["enabled"] for i in line.get("instances", [])] == [False, True], 30)
        assert line["instances"][0]["payload"]["pod"] == "pod-1"
        zk.delete(f"{path}/uid-1")
        watch.wait_for(lambda line: line.get("ids") == ["uid-2"], 30)


def test_our_client_reads_what_curator_registers(program, ensemble, zk):
    base = f"/t-{uuid.uuid4().hex[:8]}/services"
    with ServiceDiscovery(zk, base) as discovery:
        registrar = program.run("register", ensemble.connection_string, base, "svc", "vm-1", "192.168.7.7", "9000")
        with registrar:
            registrar.wait_for(lambda line: line["event"] == "registered")
            [found] = discovery.query_for_instances("svc")
            assert (found.id, found.address, found.port, found.format) == ("vm-1", "192.168.7.7", 9000, "curator")
            assert found.owner is None and found.enabled and found.name == "svc"
            cache = discovery.service_cache("svc").start()
        # Closing stdin makes the program unregister and exit; the cache sees the instance go.
        assert registrar.process.returncode == 0, registrar.stderr
        eventually(lambda: cache.instances() == [], 10, "the Curator instance gone")
        cache.close()
