"""Twitter serversets (Finagle, Aurora): ephemeral sequential `member_` znodes.

Each znode's data is a ServiceInstance as JSON:

    {"serviceEndpoint": {"host": "10.0.0.7", "port": 8080},
     "additionalEndpoints": {"http": {"host": "10.0.0.7", "port": 8080}},
     "status": "ALIVE", "shard": 0}

The znode's name is assigned by ZooKeeper, so the pod's identity and the owner id travel in an
extra `zkregistry` object, which serverset readers ignore.
"""

from __future__ import annotations

import json

from zkregistry.formats import Member
from zkregistry.model import Instance


class ServersetCodec:
    name = "serverset"
    sequential = True

    def node_name(self, instance: Instance) -> str:
        return "member_"

    def encode(self, instance: Instance, owner: str) -> bytes:
        endpoint = {"host": instance.address, "port": instance.port}
        document = {
            "serviceEndpoint": endpoint,
            "additionalEndpoints": {},
            "status": "ALIVE",
            "shard": 0,
            "zkregistry": {
                "owner": owner,
                "uid": instance.id,
                "namespace": instance.namespace,
                "pod": instance.pod,
                "deployment": instance.deployment,
            },
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def decode(self, name: str, data: bytes) -> Member:
        try:
            document = json.loads(data.decode("utf-8"))
            endpoint = document["serviceEndpoint"]
            host, port = endpoint["host"], endpoint["port"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a serverset member: {error!r}") from None
        ours = document.get("zkregistry") if isinstance(document.get("zkregistry"), dict) else {}
        return Member(
            id=ours.get("uid") or name,
            address=host if isinstance(host, str) else None,
            port=port if isinstance(port, int) else None,
            owner=ours.get("owner"),
            uid=ours.get("uid"),
            namespace=ours.get("namespace"),
            pod=ours.get("pod"),
            deployment=ours.get("deployment"),
            enabled=document.get("status", "ALIVE") == "ALIVE",
        )


CODEC = ServersetCodec()
