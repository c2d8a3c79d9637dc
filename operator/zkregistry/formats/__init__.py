"""Registration formats: small pure codecs between an `Instance` and a znode's bytes.

A codec says how a registration is named and encoded, and reads back any znode of its format,
ours or another process's, into a `Member`. Adding a format is adding one module and one line
in `CODECS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from zkregistry.model import Instance


@dataclass(frozen=True, slots=True)
class Member:
    """A registration as read from ZooKeeper, whoever wrote it."""

    id: str | None
    address: str | None
    port: int | None
    owner: str | None = None  # the owner id of the zkregistry deployment that wrote it
    uid: str | None = None  # the pod's uid, for registrations that zkregistry wrote
    namespace: str | None = None
    pod: str | None = None
    deployment: str | None = None
    enabled: bool = True


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


def codec(name: str) -> Codec:
    """The codec of format `name`; raises KeyError for an unknown one."""
    from zkregistry.formats import curator, serverset

    return {"curator": curator.CODEC, "serverset": serverset.CODEC}[name]
