"""kopf handlers: how ServiceRegistries, RegistryPolicies, namespaces and nodes reach zkregistry.

Pods, ReplicaSets and Deployments do not come through kopf: a reflector per kind (reflector.py)
lists and watches them, because kopf never reports the deletions that a relist after `410 Gone`
reveals, and because kopf's per-object machinery was the main CPU cost at many thousands of pods
(each pod's readiness change also rewrites the status of its ReplicaSet and its Deployment).
What stays here changes rarely.

Read-only by construction: `@kopf.index` (fed during kopf's initial listing and on every change)
and `@kopf.on.event` (which sees deletions) store nothing on the objects, add no finalizers and
return None, so kopf patches nothing. kopf holds every other handler back until all indexes have
their initial listing; the event handler of our own CRD therefore marks kopf's part of the
inventory complete (the reflectors mark their own).
"""

from __future__ import annotations

import kopf

from zkregistry import api
from zkregistry.admission import Policy
from zkregistry.inventory import Inventory
from zkregistry.model import Registry, key_of, node_zone

CRD_NAME = f"{api.PLURAL}.{api.GROUP}"


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff-base for operators without change-detecting handlers: none. kopf builds the
    essence of every event's object (a deep copy of its whole body, status included) to detect
    on.create/update/field causes and to reset daemons' idling; this operator registers neither,
    so the copy was pure cost: 8.5 % of a standby's samples in a 10,000-pod burst, each status
    write of a registry with 200 members shown copied on every replica. Nothing is stored."""

    def build(self, *, body: kopf.Body, extra_fields: object = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def registry_for(inventory: Inventory) -> kopf.OperatorRegistry:
    """A kopf registry whose handlers feed `inventory`."""
    handlers = kopf.OperatorRegistry()

    @kopf.on.startup(registry=handlers)
    async def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.posting.enabled = False  # our Events are our own (kube.py); kopf's are noise
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 30
        settings.execution.max_workers = 4
        settings.persistence.diffbase_storage = NoDiffBase()  # no change-detecting handlers

    @kopf.on.login(registry=handlers)
    def login(**kwargs: object) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)  # in-cluster ServiceAccount, else KUBECONFIG

    @kopf.index("v1", "nodes", registry=handlers)
    async def node(body: kopf.Body, **_: object) -> None:
        inventory.put_node(body["metadata"]["name"], node_zone(body))

    @kopf.index(api.GROUP, api.VERSION, api.PLURAL, registry=handlers)
    async def service_registry(body: kopf.Body, **_: object) -> None:
        inventory.put_registry(Registry.from_body(body))

    @kopf.index(api.GROUP, api.VERSION, api.POLICY_PLURAL, registry=handlers)
    async def registry_policy(body: kopf.Body, **_: object) -> None:
        inventory.put_policy(Policy.from_body(body))

    @kopf.index("v1", "namespaces", registry=handlers)
    async def namespace(body: kopf.Body, **_: object) -> None:
        inventory.put_namespace(body["metadata"]["name"], dict(body["metadata"].get("labels") or {}))

    removals = {
        ("v1", "namespaces"): lambda key: inventory.put_namespace(key[1], None),
        (f"{api.GROUP}/{api.VERSION}", api.POLICY_PLURAL): lambda key: inventory.remove_policy(key[1]),
        ("v1", "nodes"): lambda key: inventory.remove_node(key[1]),
        (f"{api.GROUP}/{api.VERSION}", api.PLURAL): inventory.remove_registry,
    }
    for (group_version, plural), remove in removals.items():

        @kopf.on.event(group_version, plural, registry=handlers, id=f"removed-{plural}")
        async def removed(type: str, body: kopf.Body, remove=remove, **_: object) -> None:
            if type == "DELETED":
                remove(key_of(body))

    @kopf.on.event(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        field="metadata.name",
        value=CRD_NAME,
        registry=handlers,
    )
    async def synced(**_: object) -> None:
        inventory.mark_synced("kopf")

    return handlers
