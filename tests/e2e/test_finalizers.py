"""Our finalizer on a ServiceRegistry comes and goes without touching another controller's."""

from __future__ import annotations

from collections.abc import Callable

import kubernetes

from conftest import eventually
from kit import (
    apply_registry,
    create_deployment,
    delete_registry,
    get_registry,
    in_sync,
    registered,
    registry_exists,
)
from zkregistry import api
from zkregistry.kube import Kube
from zkregistry.model import Registry

OTHER = "example.com/other"


def finalizers(kube_api, namespace: str, name: str) -> list[str] | None:
    """The object's finalizers; None once it is gone."""
    try:
        return get_registry(kube_api, namespace, name)["metadata"].get("finalizers") or []
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise


def edit_finalizers(kube_api, namespace: str, name: str, change: Callable[[list[str]], list[str]]) -> None:
    """What a well-behaved other controller does: read, change, write back with the
    resourceVersion it read, and start again on a conflict."""
    custom = kubernetes.client.CustomObjectsApi(kube_api)
    for _ in range(20):
        body = get_registry(kube_api, namespace, name)
        body["metadata"]["finalizers"] = change(body["metadata"].get("finalizers") or [])
        try:
            custom.replace_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, name, body)
            return
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
    raise AssertionError(f"could not change the finalizers of {namespace}/{name}: always a conflict")


def test_a_finalizer_patch_from_a_stale_copy_writes_nothing(kube_api, namespace):
    """The writer on its own, against the real API server: a list computed from a copy that is
    no longer current is refused (and that is not an error); from a current copy, it is written."""
    kube = Kube()
    kube.custom = kubernetes.client.CustomObjectsApi(kube_api)
    stale = Registry.from_body(apply_registry(kube_api, namespace, "web"))
    edit_finalizers(kube_api, namespace, "web", lambda f: [*f, OTHER])  # after our copy was read

    kube.set_finalizers(stale, [*stale.finalizers, api.FINALIZER])
    assert finalizers(kube_api, namespace, "web") == [OTHER], "a stale copy's list overwrote the other finalizer"
    fresh = Registry.from_body(get_registry(kube_api, namespace, "web"))
    kube.set_finalizers(fresh, [*fresh.finalizers, api.FINALIZER])
    assert finalizers(kube_api, namespace, "web") == [OTHER, api.FINALIZER]

    # Removing ours: the same, with a third finalizer added behind our back.
    stale = Registry.from_body(get_registry(kube_api, namespace, "web"))
    edit_finalizers(kube_api, namespace, "web", lambda f: [*f, "example.com/third"])
    kube.set_finalizers(stale, [f for f in stale.finalizers if f != api.FINALIZER])
    assert finalizers(kube_api, namespace, "web") == [OTHER, api.FINALIZER, "example.com/third"]
    fresh = Registry.from_body(get_registry(kube_api, namespace, "web"))
    kube.set_finalizers(fresh, [f for f in fresh.finalizers if f != api.FINALIZER])
    assert finalizers(kube_api, namespace, "web") == [OTHER, "example.com/third"]

    edit_finalizers(kube_api, namespace, "web", lambda f: [])  # so that the namespace can go


def test_another_controllers_finalizer_survives_ours(kube_api, zk, namespace, replicas):
    replicas.start(1)
    replicas.wait_leader()
    apply_registry(kube_api, namespace, "web")
    # Another controller adds its finalizer as soon as the object exists: in a race with ours.
    edit_finalizers(kube_api, namespace, "web", lambda f: [*f, OTHER])
    create_deployment(kube_api, namespace, "web", replicas=2, registry="web")
    path = f"/{namespace}/web"
    in_sync(kube_api, zk, namespace, path, count=2)
    eventually(
        lambda: (get_registry(kube_api, namespace, "web").get("status") or {}).get("memberCount") == 2,
        30,
        "status with 2 members",
    )
    eventually(
        lambda: sorted(finalizers(kube_api, namespace, "web") or ()) == sorted([OTHER, api.FINALIZER]),
        30,
        "both finalizers",
    )

    delete_registry(kube_api, namespace, "web")
    # Ours goes once the registrations are gone; the other one stays, and holds the object.
    eventually(lambda: finalizers(kube_api, namespace, "web") == [OTHER], 30, "only the other finalizer left")
    assert registered(zk, path, namespace) == {}
    assert get_registry(kube_api, namespace, "web")["metadata"].get("deletionTimestamp")

    edit_finalizers(kube_api, namespace, "web", lambda f: [x for x in f if x != OTHER])
    eventually(lambda: not registry_exists(kube_api, namespace, "web"), 30, "the registry to be deleted")
