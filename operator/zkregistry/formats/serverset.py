"""Twitter serversets (Finagle, Aurora): ephemeral sequential `member_` znodes.

Each znode's data is a `com.twitter.thrift.ServiceInstance` as JSON, as Aurora's and Twitter
commons' `JsonCodec` write it and Finagle's serverset2 `Endpoint.parseJson` reads it:

    {"serviceEndpoint": {"host": "10.0.0.7", "port": 8080},
     "additionalEndpoints": {"admin": {"host": "10.0.0.7", "port": 9090},
                             "http": {"host": "10.0.0.7", "port": 8080}},
     "status": "ALIVE",
     "metadata": {"zone": "eu-1a"},
     "zkregistry": {"owner": "prod", "uid": "<pod uid>", "namespace": "shop",
                    "pod": "orders-5d9c-x2x4q", "deployment": "orders"}}

- `serviceEndpoint` (host and port) is required by every reader; `status` is required by
  JsonCodec (Finagle reads a missing one as UNKNOWN). Status is one of DEAD, STARTING, ALIVE,
  STOPPING, STOPPED, WARNING (and Finagle's UNKNOWN); Finagle routes to ALIVE members only, so a
  draining pod is written as STOPPING.
- `additionalEndpoints` maps endpoint names to host and port; JsonCodec always writes it.
- `shard` is an optional integer: JsonCodec writes it only when it is set, and Finagle uses it only
  when a client names a shard. A Deployment's pods have no shard of their own, so none is written;
  it is read when present.
- `metadata` (a map of strings) is read by Finagle since its serverset2 metadata support; it is
  written only when the registry copies metadata from the pod.
- Readers ignore unknown fields (Gson, Finagle's JsonDict), so the pod's identity and the owner
  id travel in `zkregistry`: the znode's name is chosen by ZooKeeper, not by us.
"""

from __future__ import annotations

from zkregistry.formats import Member, as_int, as_str, dump, load_object, own_member, string_map
from zkregistry.model import Instance

PREFIX = "member_"


class ServersetCodec:
    name = "serverset"
    sequential = True

    def node_name(self, instance: Instance) -> str:
        return PREFIX

    def encode(self, instance: Instance, owner: str) -> bytes:
        document: dict = {
            "serviceEndpoint": {"host": instance.address, "port": instance.port},
            "additionalEndpoints": {
                name: {"host": instance.address, "port": port} for name, port in instance.endpoints
            },
            "status": "ALIVE" if instance.enabled else "STOPPING",
        }
        if instance.metadata:
            document["metadata"] = dict(instance.metadata)
        document["zkregistry"] = {
            "owner": owner,
            "uid": instance.id,
            "namespace": instance.namespace,
            "pod": instance.pod,
            "deployment": instance.deployment,
        }
        return dump(document)

    def member(self, instance: Instance, owner: str) -> Member:
        """What `decode` reads from `encode(instance, owner)`, without the JSON round trip."""
        return own_member(instance, owner)

    def decode(self, name: str, data: bytes) -> Member:
        """Any serverset member, ours or not: a JSON object whose `serviceEndpoint` has a string
        `host` and an integer `port`."""
        document = load_object(data, "a serverset member")
        endpoint = _endpoint(document.get("serviceEndpoint"))
        if endpoint is None:
            raise ValueError("not a serverset member: no serviceEndpoint with a host and a port")
        extra = document.get("additionalEndpoints")
        endpoints = tuple(
            sorted(
                (key, *hostport)
                for key, value in (extra.items() if isinstance(extra, dict) else ())
                if isinstance(key, str) and (hostport := _endpoint(value)) is not None
            )
        )
        ours = document.get("zkregistry")
        ours = ours if isinstance(ours, dict) else {}
        uid = as_str(ours.get("uid"))
        return Member(
            id=uid or name,
            address=endpoint[0],
            port=endpoint[1],
            owner=as_str(ours.get("owner")),
            uid=uid,
            namespace=as_str(ours.get("namespace")),
            pod=as_str(ours.get("pod")),
            deployment=as_str(ours.get("deployment")),
            enabled=document.get("status") == "ALIVE",
            shard=as_int(document.get("shard")),
            metadata=string_map(document.get("metadata")),
            endpoints=endpoints,
        )


def _endpoint(value: object) -> tuple[str, int] | None:
    """(host, port) of an Endpoint object, or None if it lacks either (as Finagle skips it)."""
    if not isinstance(value, dict):
        return None
    host, port = as_str(value.get("host")), as_int(value.get("port"))
    return None if host is None or port is None else (host, port)


CODEC = ServersetCodec()
