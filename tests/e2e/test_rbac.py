"""deploy/'s RBAC against a real kube-apiserver: the operator's ServiceAccount, with a token of its
own, may do what zkregistry does (read the inventory, patch its registries and their status, post
Events) and is refused everything else that matters: writing Pods or Deployments, reading Secrets.

`auth can-i` asks the authorizer about each permission; the real requests then show the same
answers on the wire (Forbidden, not NotFound or some other failure).
"""

from __future__ import annotations

import json
import subprocess

import kubernetes
import pytest

from kit import apply_registry, create_deployment, events_for, get_registry
from zkregistry.kube import Kube, default_owner_id
from zkregistry.model import Registry

ACCOUNT = "system:serviceaccount:zkregistry:zkregistry"


@pytest.fixture
def as_operator(cluster, service_account_kubeconfig):
    """kubectl with the ServiceAccount's kubeconfig."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(service_account_kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
        )

    return run


def test_the_token_is_the_service_account(as_operator):
    result = as_operator("auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"]["userInfo"]["username"] == ACCOUNT


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("list", "pods", True),
        ("watch", "pods", True),
        ("watch", "replicasets.apps", True),
        ("list", "deployments.apps", True),
        ("watch", "serviceregistries.zkregistry.io", True),
        ("patch", "serviceregistries.zkregistry.io", True),
        ("patch", "serviceregistries.zkregistry.io/status", True),
        ("create", "events", True),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io", True),
        # The inventory is read-only.
        ("create", "pods", False),
        ("patch", "pods", False),
        ("delete", "pods", False),
        ("patch", "deployments.apps", False),
        ("update", "deployments.apps", False),
        ("patch", "replicasets.apps", False),
        # Nothing on Secrets, and nothing beyond its own objects.
        ("get", "secrets", False),
        ("list", "secrets", False),
        ("create", "serviceregistries.zkregistry.io", False),
        ("delete", "serviceregistries.zkregistry.io", False),
        ("update", "serviceregistries.zkregistry.io/status", False),
        ("delete", "events", False),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io", False),
        ("list", "configmaps", False),
        # The administrator's policies: read, and their status written; namespaces read-only.
        ("watch", "registrypolicies.zkregistry.io", True),
        ("patch", "registrypolicies.zkregistry.io/status", True),
        ("create", "registrypolicies.zkregistry.io", False),
        ("patch", "registrypolicies.zkregistry.io", False),
        ("delete", "registrypolicies.zkregistry.io", False),
        ("list", "namespaces", True),
        ("get", "namespaces", True),
        ("patch", "namespaces", False),
        ("delete", "namespaces", False),
    ],
)
def test_can_i(as_operator, verb, resource, allowed):
    name, _, subresource = resource.partition("/")
    args = ["auth", "can-i", verb, name, "--all-namespaces"]
    if subresource:
        args += [f"--subresource={subresource}"]
    result = as_operator(*args)
    # can-i prints yes or no, and exits 1 for no; anything else is an error of the check itself.
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


def test_real_requests(cluster, kube_api, namespace, as_operator, service_account_kubeconfig):
    body = apply_registry(kube_api, namespace, "web", serviceName="web")
    create_deployment(kube_api, namespace, "web", replicas=1)
    cluster.kubectl("create", "secret", "generic", "zk", "--from-literal=digest=u:p", "-n", namespace)

    # What the operator does, through its own Kubernetes writer (zkregistry.kube) given the
    # account's credentials: list the inventory, write a registry's status and finalizers, post an
    # Event about it.
    listed = as_operator("get", "pods,replicasets,deployments,serviceregistries", "-n", namespace, "-o", "name")
    assert listed.returncode == 0 and "deployment.apps/web" in listed.stdout, listed.stderr
    client = kubernetes.config.new_client_from_config(str(service_account_kubeconfig))
    kube = Kube()
    kube.custom, kube.core = kubernetes.client.CustomObjectsApi(client), kubernetes.client.CoreV1Api(client)
    registry = Registry.from_body(body)
    kube.patch_status(registry, {"leader": "rbac-test", "memberCount": 0})
    assert get_registry(kube_api, namespace, "web")["status"]["leader"] == "rbac-test"
    for finalizers in (["zkregistry.io/rbac-test"], []):  # added, then removed: the namespace can go
        # The patch applies only to the version it was computed from: read it afresh each time.
        kube.set_finalizers(Registry.from_body(get_registry(kube_api, namespace, "web")), finalizers)
        assert get_registry(kube_api, namespace, "web")["metadata"].get("finalizers", []) == finalizers
    kube.event("ServiceRegistry", registry.key, registry.uid, "Normal", "RbacTest", "posted with the account's token")
    # The default owner id, from the kube-system namespace's uid.
    uid = kubernetes.client.CoreV1Api(kube_api).read_namespace("kube-system").metadata.uid
    assert default_owner_id(kubernetes.client.CoreV1Api(client)) == f"zkregistry-{uid}"
    # A policy's status.
    policies = kubernetes.client.CustomObjectsApi(kube_api)
    name = f"rbac-{namespace}"
    policies.create_cluster_custom_object(
        "zkregistry.io", "v1alpha1", "registrypolicies",
        {"apiVersion": "zkregistry.io/v1alpha1", "kind": "RegistryPolicy", "metadata": {"name": name},
         "spec": {"namespaces": [namespace], "pathPrefixes": ["/rbac"]}},
    )
    try:
        kube.patch_policy_status(name, {"admitted": [], "admittedCount": 0})
        assert policies.get_cluster_custom_object("zkregistry.io", "v1alpha1", "registrypolicies", name)["status"] == {
            "admitted": [], "admittedCount": 0
        }
    finally:
        policies.delete_cluster_custom_object("zkregistry.io", "v1alpha1", "registrypolicies", name)
    assert events_for(kube_api, namespace, "web", "RbacTest")  # kube.event only logs a failure

    # What it must not do: each refused by the authorizer, not failed for another reason.
    refused = {
        "create a Pod": as_operator("run", "intruder", "--image=busybox", "-n", namespace),
        "patch a Deployment": as_operator(
            "patch",
            "deployment",
            "web",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"metadata": {"annotations": {"x": "y"}}}',
        ),
        "scale a Deployment": as_operator("scale", "deployment", "web", "--replicas=5", "-n", namespace),
        "read a Secret": as_operator("get", "secret", "zk", "-n", namespace),
        "list Secrets": as_operator("get", "secrets", "--all-namespaces"),
    }
    for what, result in refused.items():
        assert result.returncode != 0 and "Forbidden" in result.stderr, f"{what}: {result.stderr}"
        assert ACCOUNT in result.stderr, f"{what}: {result.stderr}"
