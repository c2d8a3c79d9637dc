"""Apache Curator's service discovery format (curator-x-discovery's ServiceInstance as JSON).

Layout: `<basePath>/<service>/<id>`, one znode per instance, whose data is the JSON that
Curator's JsonInstanceSerializer reads:

    {"name": "orders", "id": "<uid>", "address": "10.0.0.7", "port": 8080, "sslPort": null,
     "payload": {"@class": "java.util.LinkedHashMap", ...}, "registrationTimeUTC": 1700000000000,
     "serviceType": "DYNAMIC", "uriSpec": null, "enabled": true}

zkregistry puts the pod's identity and its owner id in `payload`; Curator clients that read the
payload as a Map see it, the others ignore it.
"""

from __future__ import annotations

import json

from zkregistry.formats import Member
from zkregistry.model import Instance


class CuratorCodec:
    name = "curator"
    sequential = False

    def node_name(self, instance: Instance) -> str:
        return instance.id

    def encode(self, instance: Instance, owner: str) -> bytes:
        document = {
            "name": instance.service,
            "id": instance.id,
            "address": instance.address,
            "port": instance.port,
            "sslPort": None,
            "payload": {
                "@class": "java.util.LinkedHashMap",
                "owner": owner,
                "namespace": instance.namespace,
                "pod": instance.pod,
                "uid": instance.id,
                "deployment": instance.deployment,
            },
            "registrationTimeUTC": instance.registration_ms,
            "serviceType": "DYNAMIC",
            "uriSpec": None,
            "enabled": True,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def decode(self, name: str, data: bytes) -> Member:
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"not Curator JSON: {error}") from None
        if not isinstance(document, dict):
            raise ValueError("not Curator JSON: not an object")
        payload = document.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        port = document.get("port")
        return Member(
            id=str(document.get("id") or name),
            address=document.get("address"),
            port=port if isinstance(port, int) else None,
            owner=_str(payload.get("owner")),
            uid=_str(payload.get("uid")),
            namespace=_str(payload.get("namespace")),
            pod=_str(payload.get("pod")),
            deployment=_str(payload.get("deployment")),
            enabled=document.get("enabled") is not False,
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


CODEC = CuratorCodec()
