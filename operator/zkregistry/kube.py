"""Writes to the Kubernetes API: ServiceRegistry status and finalizers, and Events.

These are the only writes zkregistry makes to Kubernetes. Pods, ReplicaSets and Deployments are
only ever the subject of an Event, never patched.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket

import kubernetes
from kubernetes.client.rest import ApiException

from zkregistry import api
from zkregistry.model import Key, Registry

log = logging.getLogger(__name__)


JSON_PATCH = "application/json-patch+json"


def finalizer_patch(registry: Registry, finalizers: list[str]) -> list[dict]:
    """A JSON patch (RFC 6902) that sets the finalizer list of the object `registry` was read from.

    The list is computed from a cached copy, so written as it is it would drop a finalizer that
    another controller added since. The patch therefore first tests that the object is still
    that copy (its uid: not a re-created namesake; its resourceVersion: not changed since), and
    the API server applies none of it if a test fails.
    """
    return [
        {"op": "test", "path": "/metadata/uid", "value": registry.uid},
        {"op": "test", "path": "/metadata/resourceVersion", "value": registry.resource_version},
        # "replace" fails on a member that does not exist: an object without finalizers needs "add".
        {"op": "replace" if registry.finalizers else "add", "path": "/metadata/finalizers", "value": list(finalizers)},
    ]


def load_config() -> None:
    """In a pod, the ServiceAccount's credentials; elsewhere, KUBECONFIG or ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


def default_owner_id(core: kubernetes.client.CoreV1Api | None = None) -> str:
    """An owner id unique to this cluster and installation: the namespace the operator runs in
    (POD_NAMESPACE, else "zkregistry"), cut to 26 characters, and the uid of the kube-system
    namespace, which the cluster gives once and never changes. Two installations on one ensemble
    therefore never share an election or each other's registrations. Raises on API errors."""
    uid = (core or kubernetes.client.CoreV1Api()).read_namespace("kube-system").metadata.uid
    namespace = (os.environ.get("POD_NAMESPACE") or "zkregistry")[:26].rstrip(".-_") or "zkregistry"
    return f"{namespace}-{uid}"


def _discard(response) -> None:
    """Reads an answer that nobody parses to its end, and gives its connection back to the pool."""
    response.drain_conn()
    response.release_conn()


class Kube:
    def __init__(self, component: str = "zkregistry") -> None:
        client = kubernetes.client.ApiClient()
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self.component = component
        self.host = os.environ.get("POD_NAME") or socket.gethostname()

    def patch_status(self, registry: Registry, status: dict) -> None:
        """Writes the status of `registry`. The answer, the whole object with the status just
        written, is not parsed: nothing reads it, and its JSON was a fifth of the leader's samples
        in a 10,000-pod burst. Raises ApiException for an answer other than 2xx."""
        _discard(
            self.custom.patch_namespaced_custom_object_status(
                api.GROUP,
                api.VERSION,
                registry.namespace,
                api.PLURAL,
                registry.name,
                {"status": status},
                _preload_content=False,
            )
        )

    def patch_policy_status(self, name: str, status: dict) -> None:
        """Writes the status of the (cluster-scoped) RegistryPolicy `name`."""
        self.custom.patch_cluster_custom_object_status(
            api.GROUP, api.VERSION, api.POLICY_PLURAL, name, {"status": status}
        )

    def set_finalizers(self, registry: Registry, finalizers: list[str]) -> None:
        """Replaces the finalizer list of `registry` with `finalizers`, computed from that very copy.

        The patch applies only to the version of the object that `registry` was read from (see
        `finalizer_patch`). If the object has changed since, the API server refuses it and nothing
        is written: the next report computes the list again from a fresher copy.
        """
        try:
            self.custom.patch_namespaced_custom_object(
                api.GROUP,
                api.VERSION,
                registry.namespace,
                api.PLURAL,
                registry.name,
                finalizer_patch(registry, finalizers),
                # The client sends a merge patch unless told otherwise, whatever the body.
                _content_type=JSON_PATCH,
            )
        except ApiException as error:
            # 404: gone; 422: a test op failed (changed since); 409: changed while being patched.
            if error.status not in (404, 409, 422):
                raise
            log.debug(
                "finalizers of %s/%s not set (HTTP %s); the next report tries again from a fresher copy",
                registry.namespace,
                registry.name,
                error.status,
            )

    def event(self, kind: str, key: Key, uid: str, type_: str, reason: str, message: str) -> None:
        """Posts a core/v1 Event about an object (`kind` is "Deployment" or "ServiceRegistry")."""
        namespace, name = key
        api_version = "apps/v1" if kind == "Deployment" else f"{api.GROUP}/{api.VERSION}"
        now = dt.datetime.now(dt.UTC)
        body = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(generate_name=f"{name}.", namespace=namespace),
            involved_object=kubernetes.client.V1ObjectReference(
                api_version=api_version, kind=kind, name=name, namespace=namespace, uid=uid
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=kubernetes.client.V1EventSource(component=self.component, host=self.host),
            reporting_component=self.component,
            reporting_instance=self.host,
        )
        try:
            self.core.create_namespaced_event(namespace, body)
        except ApiException as error:  # an Event is best effort; never let it stop the work
            log.warning("could not post event %s on %s %s/%s: %s", reason, kind, namespace, name, error.reason)
