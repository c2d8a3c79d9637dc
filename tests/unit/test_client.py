"""The pure parts of zkregistry.client and of `zkregistry discover`: instances from any format,
strategies, filters, names, and the table."""

from __future__ import annotations

import json
import random

import pytest

from zkregistry.cli import format_table
from zkregistry.client import (
    RandomStrategy,
    RoundRobinStrategy,
    ServiceInstance,
    is_enabled,
    metadata_matches,
    select,
    validate_base_path,
    validate_service_name,
)
from zkregistry.formats import curator, serverset
from zkregistry.model import Instance

ITEM = Instance("uid-1", "svc", "10.0.0.1", 8080, "ns", "pod-1", "web", 5,
                endpoints=(("admin", 9000),), metadata=(("zone", "a"),))


def test_instances_from_either_format():
    a = ServiceInstance.decode("svc", "uid-1", curator.CODEC.encode(ITEM, "o"))
    b = ServiceInstance.decode("svc", "member_0000000001", serverset.CODEC.encode(ITEM, "o"))
    for found in (a, b):
        assert (found.id, found.address, found.port) == ("uid-1", "10.0.0.1", 8080)
        assert (found.owner, found.pod) == ("o", "pod-1")
        assert found.metadata == {"zone": "a"} and found.endpoints == {"admin": ("10.0.0.1", 9000)}
    assert (a.format, a.znode, b.format, b.znode) == ("curator", "uid-1", "serverset", "member_0000000001")
    with pytest.raises(ValueError):
        ServiceInstance.decode("svc", "x", b"{}")


def test_to_dict_is_json_and_leaves_out_unknowns():
    external = ServiceInstance.decode("svc", "m", b'{"serviceEndpoint": {"host": "h", "port": 1}, "status": "ALIVE"}')
    out = external.to_dict()
    assert json.loads(json.dumps(out)) == out
    assert "owner" not in out and out["enabled"] and out["endpoints"] == {} and out["id"] == "m"


def _instances(n: int) -> list[ServiceInstance]:
    return [ServiceInstance("svc", f"i{k}", f"i{k}", "curator", "h", k, enabled=k % 2 == 0,
                            metadata={"zone": "a" if k < 2 else "b"}) for k in range(n)]


def test_round_robin_cycles_in_order_and_random_stays_within():
    items = _instances(3)
    strategy = RoundRobinStrategy()
    assert [strategy.choose(items).id for _ in range(7)] == ["i0", "i1", "i2", "i0", "i1", "i2", "i0"]
    assert strategy.choose([]) is None and RandomStrategy().choose([]) is None
    picks = {RandomStrategy(random.Random(1)).choose(items).id for _ in range(50)}
    assert picks <= {"i0", "i1", "i2"}


def test_filters():
    items = _instances(4)
    assert [i.id for i in select(items, [is_enabled])] == ["i0", "i2"]
    assert [i.id for i in select(items, [metadata_matches({"zone": "b"})])] == ["i2", "i3"]
    assert [i.id for i in select(items, [is_enabled, metadata_matches({"zone": "b"})])] == ["i2"]
    assert select(items, [metadata_matches({"missing": "x"})]) == []
    assert select(items, []) == items


@pytest.mark.parametrize("bad", ["", "a/b", ".", "..", "a\nb"])
def test_service_names(bad):
    assert validate_service_name("orders.v2_x-1") == "orders.v2_x-1"
    with pytest.raises(ValueError):
        validate_service_name(bad)


@pytest.mark.parametrize(("given", "expected"), [("/services", "/services"), ("/a/b/", "/a/b"), ("/", "/")])
def test_base_paths(given, expected):
    assert validate_base_path(given) == expected


@pytest.mark.parametrize("bad", ["services", "/a//b", "/a/../b", ""])
def test_bad_base_paths(bad):
    with pytest.raises(ValueError):
        validate_base_path(bad)


def test_table():
    ours = ServiceInstance.decode("svc", "uid-1", curator.CODEC.encode(ITEM, "o"))
    ssl_only = ServiceInstance("svc", "vm-1", "vm-1", "curator", "192.168.0.9", None, enabled=False, ssl_port=8443)
    lines = format_table([ours, ssl_only]).splitlines()
    assert [line.split() for line in lines] == [
        ["ID", "ADDRESS", "PORT", "ENABLED", "FORMAT", "POD", "ENDPOINTS", "METADATA"],
        ["uid-1", "10.0.0.1", "8080", "true", "curator", "ns/pod-1", "admin=9000", "zone=a"],
        ["vm-1", "192.168.0.9", "ssl:8443", "false", "curator", "-", "-", "-"],
    ]
    assert lines[1].index("10.0.0.1") == lines[2].index("192.168.0.9")  # aligned columns
    assert format_table([]).split() == ["ID", "ADDRESS", "PORT", "ENABLED", "FORMAT", "POD", "ENDPOINTS", "METADATA"]
