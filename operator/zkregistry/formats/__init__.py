"""Registration formats: small pure codecs between an `Instance` and a znode's bytes.

A codec says how a registration is named and encoded, and reads back any znode of its format,
ours or another process's, into a `Member`. Adding a format is adding one module and one entry
in `FORMATS`.

    codec("curator").encode(instance, owner="prod")   # bytes for the znode
    codec("serverset").decode("member_0000000007", data)  # Member, or ValueError
    read_any("member_0000000007", data)                # (codec, Member): whichever format fits

Decoders are strict about what makes a document of their format (so that `read_any` can tell the
formats apart) and lenient about everything else, as the formats' own readers are: unknown fields
are ignored, and a field of the wrong type reads as absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from zkregistry.model import Instance


@dataclass(frozen=True, slots=True)
class Member:
    """A registration as read from ZooKeeper, whoever wrote it. Hashable: tuples, not dicts."""

    id: str | None
    address: str | None
    port: int | None
    owner: str | None = None  # the owner id of the zkregistry deployment that wrote it
    uid: str | None = None  # the pod's uid, for registrations that zkregistry wrote
    namespace: str | None = None
    pod: str | None = None
    deployment: str | None = None
    enabled: bool = True  # Curator `enabled`; serverset `status == ALIVE`
    service: str | None = None  # Curator `name`; serversets do not say
    ssl_port: int | None = None  # Curator `sslPort`
    registration_ms: int | None = None  # Curator `registrationTimeUTC`
    shard: int | None = None  # serverset `shard`
    metadata: tuple[tuple[str, str], ...] = ()  # sorted (key, value)
    endpoints: tuple[tuple[str, str, int], ...] = ()  # sorted (name, host, port): the extra named endpoints


class Codec(Protocol):
    name: str
    #: Sequential formats (serversets) let ZooKeeper number the znode; the pod's identity is then
    #: only in the payload.
    sequential: bool

    def node_name(self, instance: Instance) -> str:
        """The znode name (or, for a sequential format, its prefix) for `instance`."""
        ...

    def encode(self, instance: Instance, owner: str) -> bytes:
        """The znode data for `instance`, marked as written by `owner`. Deterministic."""
        ...

    def decode(self, name: str, data: bytes) -> Member:
        """Reads a znode of this format; raises ValueError if it is not one."""
        ...

    def member(self, instance: Instance, owner: str) -> Member:
        """What `decode` reads from `encode(instance, owner)`, built without the JSON round trip:
        the mirror's record of a registration we just wrote."""
        ...


#: Every format's name, which is also its module's; `read_any` tries them in this order.
FORMATS: tuple[str, ...] = ("curator", "serverset")


def codec(name: str) -> Codec:
    """The codec of format `name`; raises KeyError for an unknown one."""
    if name not in FORMATS:
        raise KeyError(name)
    from importlib import import_module

    return import_module(f"zkregistry.formats.{name}").CODEC


def read_any(name: str, data: bytes, prefer: str | None = None) -> tuple[Codec, Member]:
    """Decodes a znode of any known format, trying `prefer` first, then each format in turn.

    Raises ValueError, naming every format's complaint, if no format reads it.
    """
    order = ([prefer] if prefer in FORMATS else []) + [n for n in FORMATS if n != prefer]
    complaints = []
    for format_name in order:
        candidate = codec(format_name)
        try:
            return candidate, candidate.decode(name, data)
        except ValueError as error:
            complaints.append(str(error))
    raise ValueError("; ".join(complaints))


# -- helpers shared by the codecs ---------------------------------------------------------------


def own_member(instance: Instance, owner: str, **format_fields: object) -> Member:
    """The Member that every format reads from its own encoding of `instance`; `format_fields`
    are those that only some formats carry (Curator's service name, for one). An Instance's
    metadata and endpoints are sorted by key and unique already (model.py), as a reader's are."""
    return Member(
        id=instance.id,
        address=instance.address,
        port=instance.port,
        owner=owner,
        uid=instance.id,
        namespace=instance.namespace,
        pod=instance.pod,
        deployment=instance.deployment,
        enabled=instance.enabled,
        metadata=instance.metadata,
        endpoints=tuple((name, instance.address, port) for name, port in instance.endpoints),
        **format_fields,
    )


def load_object(data: bytes, what: str) -> dict:
    """`data` as a JSON object: strict UTF-8 and strict JSON (no NaN or Infinity, which Java's
    JSON readers reject), or ValueError naming `what`. Anyone may create a child under a service
    path, so nothing in `data` may raise anything else (nesting too deep to parse included)."""
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"not {what}: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"not {what}: not a JSON object")
    return document


def _reject_constant(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")


def dump(document: dict) -> bytes:
    """Compact, deterministic JSON as UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_int(value: object) -> int | None:
    """An integer that JSON spelled as one (true and false are not ports)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def string_map(value: object) -> tuple[tuple[str, str], ...]:
    """The string-valued entries of a JSON object, sorted; anything else reads as empty."""
    if not isinstance(value, dict):
        return ()
    return tuple(sorted((k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str)))
