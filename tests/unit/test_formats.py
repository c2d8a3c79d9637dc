"""Codecs against example documents written from the formats' public definitions.

Curator: curator-x-discovery 5.9.0's ServiceInstance and JsonInstanceSerializer (the default,
compatible serialization mode writes no `enabled`; the other mode does; payloads carry Jackson's
`@class`). Serversets: the thrift ServiceInstance as Aurora's / Twitter commons' JsonCodec writes
it, and the fields Finagle's serverset2 `Endpoint.parseJson` reads (status, shard, metadata).
tests/zk/test_curator_interop.py checks the Curator side against Curator itself.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zkregistry.formats import FORMATS, Member, codec, curator, read_any, serverset
from zkregistry.model import Instance

INSTANCE = Instance(
    id="6f1c0b9e-1111-4a4a-9c9c-000000000001",
    service="orders",
    address="10.0.0.7",
    port=8080,
    namespace="shop",
    pod="orders-5d9c-x2x4q",
    deployment="orders",
    registration_ms=1700000000000,
    endpoints=(("admin", 9090), ("http", 8080)),
    metadata=(("version", "1.4.2"), ("zone", "eu-1a")),
)

# -- Curator -------------------------------------------------------------------------------------

# What Curator's JsonInstanceSerializer(Map.class) writes by default for a Map payload: every field of
# OldServiceInstance in declaration order, nulls included, no `enabled`.
CURATOR_WRITTEN = (
    b'{"name":"payments","id":"b8c5d2a4-0f3e-4c1e-9b55-3e1f8e0c2a11","address":"192.168.1.20",'
    b'"port":9000,"sslPort":null,"payload":{"@class":"java.util.LinkedHashMap","team":"billing"},'
    b'"registrationTimeUTC":1699999999123,"serviceType":"DYNAMIC","uriSpec":{"parts":['
    b'{"value":"scheme","variable":true},{"value":"://foo.com:","variable":false},'
    b'{"value":"port","variable":true}]}}'
)
# JsonInstanceSerializer(payloadClass, false) writes `enabled`; ServiceDiscovery.updateService
# after setting it false is how a Curator user takes an instance out of rotation.
CURATOR_DISABLED = (
    b'{"name":"payments","id":"i-2","address":"192.168.1.21","port":9000,"sslPort":null,'
    b'"payload":null,"registrationTimeUTC":1699999999124,"serviceType":"DYNAMIC","uriSpec":null,"enabled":false}'
)
# A payload class of the application's own (Curator's own example uses InstanceDetails).
CURATOR_CUSTOM_PAYLOAD = (
    b'{"name":"test","id":"i-3","address":"10.1.1.1","port":null,"sslPort":8443,'
    b'"payload":{"@class":"discovery.InstanceDetails","description":"hello"},'
    b'"registrationTimeUTC":1,"serviceType":"STATIC","uriSpec":null}'
)


def test_curator_encodes_what_curators_default_serializer_writes():
    document = json.loads(curator.CODEC.encode(INSTANCE, "prod"))
    assert list(document) == [
        "name", "id", "address", "port", "sslPort", "payload", "registrationTimeUTC", "serviceType", "uriSpec",
    ]
    assert document["name"] == "orders" and document["id"] == INSTANCE.id
    assert (document["address"], document["port"], document["sslPort"]) == ("10.0.0.7", 8080, None)
    assert document["serviceType"] == "DYNAMIC" and document["uriSpec"] is None
    assert document["registrationTimeUTC"] == 1700000000000
    assert document["payload"] == {
        "@class": "java.util.LinkedHashMap", "owner": "prod", "namespace": "shop", "pod": "orders-5d9c-x2x4q",
        "uid": INSTANCE.id, "deployment": "orders",
        "metadata": {"version": "1.4.2", "zone": "eu-1a"}, "ports": {"admin": 9090, "http": 8080},
    }
    assert curator.CODEC.node_name(INSTANCE) == INSTANCE.id and not curator.CODEC.sequential


def test_curator_writes_enabled_only_when_false():
    assert b'"enabled"' not in curator.CODEC.encode(INSTANCE, "prod")
    draining = Instance(**{**_fields(INSTANCE), "enabled": False})
    assert json.loads(curator.CODEC.encode(draining, "prod"))["enabled"] is False


def test_curator_reads_curators_own_document_as_external():
    member = curator.CODEC.decode("b8c5d2a4-0f3e-4c1e-9b55-3e1f8e0c2a11", CURATOR_WRITTEN)
    assert member.id == "b8c5d2a4-0f3e-4c1e-9b55-3e1f8e0c2a11"
    assert (member.service, member.address, member.port, member.ssl_port) == ("payments", "192.168.1.20", 9000, None)
    assert member.enabled and member.registration_ms == 1699999999123
    assert member.owner is None and member.uid is None and member.metadata == () and member.endpoints == ()


def test_curator_reads_enabled_false_and_other_payloads():
    assert not curator.CODEC.decode("i-2", CURATOR_DISABLED).enabled
    member = curator.CODEC.decode("i-3", CURATOR_CUSTOM_PAYLOAD)
    assert (member.port, member.ssl_port, member.owner, member.enabled) == (None, 8443, None, True)


@pytest.mark.parametrize(
    ("enabled", "expected"),
    # As Jackson reads ServiceInstance's primitive boolean (checked against Curator 5.9.0).
    [(True, True), (False, False), (None, False), (0, False), (1, True), ("false", False), ("true", True)],
)
def test_curator_enabled_as_jackson_reads_it(enabled, expected):
    data = json.dumps({"name": "s", "id": "a", "enabled": enabled}).encode()
    assert curator.CODEC.decode("a", data).enabled is expected


def test_curator_lenient_fields():
    member = curator.CODEC.decode("zn", json.dumps({"name": "s", "port": "8080", "extra": [1]}).encode())
    assert member.id == "zn" and member.port == 8080  # no id: the znode's name; a numeric string port
    assert curator.CODEC.decode("a", b'{"id":"a","port":true,"address":7}').port is None
    payload = {"@class": "java.util.LinkedHashMap", "owner": 5, "metadata": {"zone": "a", "n": 1}, "ports": "x"}
    member = curator.CODEC.decode("a", json.dumps({"id": "a", "address": "h", "payload": payload}).encode())
    assert member.owner is None and member.metadata == (("zone", "a"),) and member.endpoints == ()


def test_curator_rejects_documents_of_no_curator_shape():
    with pytest.raises(ValueError, match="no string 'id' or 'name'"):
        curator.CODEC.decode("member_0000000001", SERVERSET_AURORA)
    with pytest.raises(ValueError):
        curator.CODEC.decode("a", b'{"id":null,"name":null}')


# -- serversets ----------------------------------------------------------------------------------

# As Aurora's executor announces a task: every named port in additionalEndpoints, shard = the
# task's instance number.
SERVERSET_AURORA = (
    b'{"serviceEndpoint": {"host": "10.0.0.3", "port": 31337}, '
    b'"additionalEndpoints": {"aurora": {"host": "10.0.0.1", "port": 31338}, '
    b'"http": {"host": "10.0.0.3", "port": 31337}}, '
    b'"status": "ALIVE", "shard": 2}'
)
# Finagle's serverset2 reads string metadata too.
SERVERSET_FINAGLE_METADATA = (
    b'{"serviceEndpoint": {"host": "10.0.0.4", "port": 8080}, "additionalEndpoints": {}, '
    b'"status": "STOPPING", "metadata": {"keyA": "valueA"}}'
)


def test_serverset_encodes_a_service_instance():
    document = json.loads(serverset.CODEC.encode(INSTANCE, "prod"))
    assert document["serviceEndpoint"] == {"host": "10.0.0.7", "port": 8080}
    assert document["additionalEndpoints"] == {
        "admin": {"host": "10.0.0.7", "port": 9090}, "http": {"host": "10.0.0.7", "port": 8080},
    }
    assert document["status"] == "ALIVE"
    assert "shard" not in document  # unset, as JsonCodec writes an instance without a shard
    assert document["metadata"] == {"version": "1.4.2", "zone": "eu-1a"}
    assert document["zkregistry"] == {
        "owner": "prod", "uid": INSTANCE.id, "namespace": "shop", "pod": "orders-5d9c-x2x4q", "deployment": "orders",
    }
    assert serverset.CODEC.node_name(INSTANCE) == "member_" and serverset.CODEC.sequential


def test_serverset_draining_is_stopping_and_no_metadata_means_none_written():
    plain = Instance(**{**_fields(INSTANCE), "enabled": False, "metadata": (), "endpoints": ()})
    document = json.loads(serverset.CODEC.encode(plain, "prod"))
    assert document["status"] == "STOPPING" and "metadata" not in document
    assert document["additionalEndpoints"] == {}  # JsonCodec always writes the map


def test_serverset_reads_aurora_and_finagle_documents():
    member = serverset.CODEC.decode("member_0000000003", SERVERSET_AURORA)
    assert member.id == "member_0000000003" and member.owner is None
    assert (member.address, member.port, member.shard, member.enabled) == ("10.0.0.3", 31337, 2, True)
    assert member.endpoints == (("aurora", "10.0.0.1", 31338), ("http", "10.0.0.3", 31337))
    stopping = serverset.CODEC.decode("member_0000000004", SERVERSET_FINAGLE_METADATA)
    assert not stopping.enabled and stopping.metadata == (("keyA", "valueA"),) and stopping.shard is None


@pytest.mark.parametrize("status", ["DEAD", "STARTING", "STOPPING", "STOPPED", "WARNING", "UNKNOWN", None, 2])
def test_serverset_only_alive_is_enabled(status):
    # Finagle routes to ALIVE members only; a missing status reads as UNKNOWN.
    document = {"serviceEndpoint": {"host": "h", "port": 1}}
    if status is not None:
        document["status"] = status
    assert not serverset.CODEC.decode("member_1", json.dumps(document).encode()).enabled


@pytest.mark.parametrize(
    "document",
    [
        {"status": "ALIVE"},
        {"serviceEndpoint": {"host": "h"}, "status": "ALIVE"},
        {"serviceEndpoint": {"host": "h", "port": "80"}, "status": "ALIVE"},
        {"serviceEndpoint": {"host": "h", "port": True}, "status": "ALIVE"},
        {"serviceEndpoint": "h:80", "status": "ALIVE"},
        {"name": "s", "id": "a", "address": "h", "port": 1},
    ],
)
def test_serverset_requires_a_service_endpoint(document):
    with pytest.raises(ValueError, match="serviceEndpoint"):
        serverset.CODEC.decode("member_1", json.dumps(document).encode())


def test_serverset_skips_malformed_additional_endpoints():
    data = json.dumps({
        "serviceEndpoint": {"host": "h", "port": 1}, "status": "ALIVE",
        "additionalEndpoints": {"ok": {"host": "h", "port": 2}, "bad": {"host": "h"}, "worse": 3},
    }).encode()
    assert serverset.CODEC.decode("member_1", data).endpoints == (("ok", "h", 2),)


# -- both ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"\xff\xfe{}", b'{"id": "\xc3"}', b"[1, 2]", b'"text"', b"null", b"42",
     b'{"name": "s", "id": "a", "port": NaN}', b'{"serviceEndpoint": {"host": "h", "port": Infinity}}'],
)
def test_rejects_non_json_and_non_utf8(name, data):
    with pytest.raises(ValueError):
        codec(name).decode("x", data)
    with pytest.raises(ValueError):
        read_any("x", data)


def test_unknown_format():
    with pytest.raises(KeyError):
        codec("eureka")


@pytest.mark.parametrize("prefer", [None, "curator", "serverset"])
def test_read_any_tells_the_formats_apart(prefer):
    assert read_any("i", CURATOR_WRITTEN, prefer)[0].name == "curator"
    assert read_any("member_1", SERVERSET_AURORA, prefer)[0].name == "serverset"
    with pytest.raises(ValueError) as raised:
        read_any("x", b'{"hello": "world"}', prefer)
    assert "Curator" in str(raised.value) and "serverset" in str(raised.value)


def test_encoding_is_deterministic_and_utf8():
    unicode = Instance(**{**_fields(INSTANCE), "metadata": (("team", "équipe"),)})
    for name in FORMATS:
        data = codec(name).encode(unicode, "prod")
        assert data == codec(name).encode(unicode, "prod")
        assert "équipe".encode() in data


# -- round trips ---------------------------------------------------------------------------------

def _sorted_items(mapping: dict) -> tuple:
    return tuple(sorted(mapping.items()))


names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=15)
instances = st.builds(
    Instance,
    id=st.uuids().map(str),
    service=names,
    address=st.ip_addresses(v=4).map(str),
    port=st.integers(1, 65535),
    namespace=names,
    pod=names,
    deployment=names,
    registration_ms=st.integers(0, 2**53),
    enabled=st.booleans(),
    endpoints=st.dictionaries(names, st.integers(1, 65535), max_size=4).map(_sorted_items),
    metadata=st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=4).map(_sorted_items),
)


@pytest.mark.parametrize("name", FORMATS)
@given(instance=instances, owner=names)
def test_round_trip(name, instance, owner):
    format_ = codec(name)
    member = format_.decode(format_.node_name(instance) + "0000000001", format_.encode(instance, owner))
    assert member == Member(
        id=instance.id,
        address=instance.address,
        port=instance.port,
        owner=owner,
        uid=instance.id,
        namespace=instance.namespace,
        pod=instance.pod,
        deployment=instance.deployment,
        enabled=instance.enabled,
        service=instance.service if name == "curator" else None,
        registration_ms=instance.registration_ms if name == "curator" else None,
        metadata=instance.metadata,
        endpoints=tuple((n, instance.address, p) for n, p in instance.endpoints),
    )
    assert read_any("x", format_.encode(instance, owner))[0] is format_


@pytest.mark.parametrize("name", FORMATS)
@given(instance=instances, owner=names)
def test_member_is_what_any_reader_reads_from_the_encoding(name, instance, owner):
    """The mirror records our own writes by `member`, and reads everyone's by `read_any`: the two
    must agree, or a registration of ours would look changed the next time it is read."""
    format_ = codec(name)
    data = format_.encode(instance, owner)
    assert format_.member(instance, owner) == read_any(format_.node_name(instance) + "0000000001", data)[1]


def _fields(instance: Instance) -> dict:
    return {f: getattr(instance, f) for f in Instance.__dataclass_fields__}
