"""Apache Curator's service discovery format (curator-x-discovery's ServiceInstance as JSON).

Layout: `<basePath>/<service>/<id>`, one znode per instance, whose data is what Curator's
`JsonInstanceSerializer` writes in its default (compatible) mode, field for field and in its order:

    {"name": "orders", "id": "<pod uid>", "address": "10.0.0.7", "port": 8080, "sslPort": null,
     "payload": {"@class": "java.util.LinkedHashMap", "owner": "prod", "namespace": "shop",
                 "pod": "orders-5d9c-x2x4q", "uid": "<pod uid>", "deployment": "orders",
                 "metadata": {"zone": "eu-1a"}, "ports": {"admin": 9090, "http": 8080}},
     "registrationTimeUTC": 1700000000000, "serviceType": "DYNAMIC", "uriSpec": null}

How Curator 5.x reads it (checked against curator-x-discovery 5.9.0 by tests/zk/test_curator_interop.py):

- `payload` is typed by Jackson's `@JsonTypeInfo(use = CLASS)`: the `@class` property names its
  Java class, and `JsonInstanceSerializer(payloadClass)` then casts it to the reader's payload
  class. A `java.util.LinkedHashMap` payload is read by readers whose payload class is `Map` or
  `Object`; a reader with a payload class of its own (or `Void`) cannot cast it and drops the
  instance. zkregistry's bookkeeping (owner id, pod identity) lives in that map, as do the pod's
  metadata (`metadata`) and its named endpoints (`ports`, at the instance's address).
- `enabled` was added by CURATOR-275; the default serializer does not write it (readers older than
  it fail on unknown fields), and a missing `enabled` reads as true. So it is written only as
  `false`, for a draining pod; Curator's ServiceProvider then skips the instance.
- Unknown fields are ignored (FAIL_ON_UNKNOWN_PROPERTIES is off); `name` and `id` must not be
  null; `port` may be a number or a numeric string; `enabled` null, 0 or "false" read as false.
"""

from __future__ import annotations

from zkregistry.formats import Member, as_int, as_str, dump, load_object, own_member, string_map
from zkregistry.model import Instance

PAYLOAD_CLASS = "java.util.LinkedHashMap"


class CuratorCodec:
    name = "curator"
    sequential = False

    def node_name(self, instance: Instance) -> str:
        return instance.id

    def encode(self, instance: Instance, owner: str) -> bytes:
        document: dict = {
            "name": instance.service,
            "id": instance.id,
            "address": instance.address,
            "port": instance.port,
            "sslPort": None,
            "payload": {
                "@class": PAYLOAD_CLASS,
                "owner": owner,
                "namespace": instance.namespace,
                "pod": instance.pod,
                "uid": instance.id,
                "deployment": instance.deployment,
                "metadata": dict(instance.metadata),
                "ports": dict(instance.endpoints),
            },
            "registrationTimeUTC": instance.registration_ms,
            "serviceType": "DYNAMIC",
            "uriSpec": None,
        }
        if not instance.enabled:
            document["enabled"] = False
        return dump(document)

    def member(self, instance: Instance, owner: str) -> Member:
        """What `decode` reads from `encode(instance, owner)`, without the JSON round trip."""
        return own_member(instance, owner, service=instance.service, registration_ms=instance.registration_ms)

    def decode(self, name: str, data: bytes) -> Member:
        """Any ServiceInstance JSON, Curator's own or ours. It must be a JSON object with a string
        `id` or `name` (Curator always writes both; a serverset member has neither)."""
        document = load_object(data, "Curator ServiceInstance JSON")
        id_, service = as_str(document.get("id")), as_str(document.get("name"))
        if id_ is None and service is None:
            raise ValueError("not Curator ServiceInstance JSON: no string 'id' or 'name'")
        payload = document.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        address = as_str(document.get("address"))
        ports = payload.get("ports") if isinstance(payload.get("ports"), dict) else {}
        endpoints = tuple(
            sorted(
                (key, address, number)
                for key, value in ports.items()
                if isinstance(key, str) and address is not None and (number := _port(value)) is not None
            )
        )
        return Member(
            id=id_ or name,
            address=address,
            port=_port(document.get("port")),
            owner=as_str(payload.get("owner")),
            uid=as_str(payload.get("uid")),
            namespace=as_str(payload.get("namespace")),
            pod=as_str(payload.get("pod")),
            deployment=as_str(payload.get("deployment")),
            enabled=_enabled(document.get("enabled", True)),
            service=service,
            ssl_port=_port(document.get("sslPort")),
            registration_ms=as_int(document.get("registrationTimeUTC")),
            metadata=string_map(payload.get("metadata")),
            endpoints=endpoints,
        )


def _port(value: object) -> int | None:
    """A port as Jackson reads an Integer: a number, or a string of digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return as_int(value)


def _enabled(value: object) -> bool:
    """`enabled` as Jackson reads a primitive boolean: null, 0 and "false" are false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return False


CODEC = CuratorCodec()
