"""Helpers for e2e tests: create the objects a user would, and read what ZooKeeper holds."""

from __future__ import annotations

import json

import kubernetes
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from conftest import eventually
from soak.workload import set_ready
from zkregistry import api


def apply_registry(kube_api, namespace: str, name: str, **spec) -> dict:
    """Creates a ServiceRegistry; its basePath defaults to /<namespace> to keep tests apart."""
    spec.setdefault("basePath", f"/{namespace}")
    body = {
        "apiVersion": f"{api.GROUP}/{api.VERSION}",
        "kind": api.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return kubernetes.client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, body
    )


def get_registry(kube_api, namespace: str, name: str) -> dict:
    return kubernetes.client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, name
    )


def delete_registry(kube_api, namespace: str, name: str) -> None:
    kubernetes.client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, name
    )


def registry_exists(kube_api, namespace: str, name: str) -> bool:
    try:
        get_registry(kube_api, namespace, name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def create_deployment(
    kube_api,
    namespace: str,
    name: str,
    replicas: int = 3,
    registry: str | None = None,
    ports: tuple[tuple[str, int], ...] = (("http", 8080),),
    annotations: dict | None = None,
):
    annotations = dict(annotations or {})
    if registry:
        annotations[api.REGISTRY_ANNOTATION] = registry
    labels = {"app": name}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "example.invalid/app:1",
                            "ports": [{"name": n, "containerPort": p} for n, p in ports],
                        }
                    ],
                },
            },
        },
    }
    return kubernetes.client.AppsV1Api(kube_api).create_namespaced_deployment(namespace, body)


def patch_deployment(kube_api, namespace: str, name: str, patch: dict) -> None:
    kubernetes.client.AppsV1Api(kube_api).patch_namespaced_deployment(name, namespace, patch)


def scale(kube_api, namespace: str, name: str, replicas: int) -> None:
    patch_deployment(kube_api, namespace, name, {"spec": {"replicas": replicas}})


def annotate(kube_api, namespace: str, name: str, key: str, value: str | None) -> None:
    patch_deployment(kube_api, namespace, name, {"metadata": {"annotations": {key: value}}})


def ready_pods(kube_api, namespace: str, app: str) -> dict[str, str]:
    """uid -> pod IP of the pods of `app` that are Ready and not terminating."""
    pods = kubernetes.client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    out = {}
    for pod in pods.items:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())
        if ready and pod.metadata.deletion_timestamp is None and pod.status.pod_ip:
            out[pod.metadata.uid] = pod.status.pod_ip
    return out


def set_pod_ready(kube_api, namespace: str, pod: str, ready: bool) -> None:
    """Flips a pod's Ready condition as a kubelet would (kwok leaves it alone once set); the soak's
    workload does the same with the same function."""
    set_ready(kube_api, namespace, pod, ready)


def znodes(zk: KazooClient, path: str) -> dict[str, dict | bytes]:
    """name -> decoded JSON (or raw bytes) of every child of `path`; {} if it does not exist."""
    out = {}
    try:
        names = zk.get_children(path)
    except NoNodeError:
        return out
    for name in names:
        try:
            data = zk.get(f"{path}/{name}")[0]
        except NoNodeError:
            continue
        try:
            out[name] = json.loads(data)
        except ValueError:
            out[name] = data
    return out


def registered(zk: KazooClient, path: str, owner: str) -> dict[str, str]:
    """uid -> address of the registrations of `owner` under `path`."""
    return {
        v["payload"]["uid"]: v["address"]
        for v in znodes(zk, path).values()
        if isinstance(v, dict) and (v.get("payload") or {}).get("owner") == owner
    }


def events_for(kube_api, namespace: str, name: str, reason: str | None = None) -> list:
    events = kubernetes.client.CoreV1Api(kube_api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return [e for e in events.items if reason is None or e.reason == reason]


def in_sync(
    kube_api,
    zk: KazooClient,
    namespace: str,
    path: str,
    app: str = "web",
    count: int | None = None,
    timeout: float = 60,
) -> dict[str, str]:
    """Waits until `path` holds exactly the Ready pods of `app` (`count` of them, if given), as
    registrations of the operator whose owner id is the namespace; returns them (uid -> IP)."""

    def check():
        pods = ready_pods(kube_api, namespace, app)
        if count is not None and len(pods) != count:
            return None
        return pods if registered(zk, path, namespace) == pods else None

    return eventually(check, timeout, f"{path} to hold exactly the Ready pods of {app}")
