"""The operator runs with nothing but its own ServiceAccount's rights, and talks to
ZooKeeper over TLS with digest credentials, so that other clients can read its registrations but
not change them, nor add to them."""

from __future__ import annotations

import json

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from conftest import eventually
from kit import apply_registry, create_deployment, get_registry, in_sync, registered
from zkregistry.devenv.replicas import Replicas


def test_operator_works_with_its_service_account(
    kube_api, zk, namespace, ensemble, service_account_kubeconfig, tmp_path
):
    group = Replicas(
        ensemble.connection_string,
        service_account_kubeconfig,
        tmp_path / "replicas",
        owner=namespace,
        namespaces=[namespace],
        session_timeout=2.0,
        path_prefixes=[f"/{namespace}"],
    )
    try:
        (replica,) = group.start(1)
        apply_registry(kube_api, namespace, "web")
        create_deployment(kube_api, namespace, "web", replicas=2, registry="web")
        path = f"/{namespace}/web"
        in_sync(kube_api, zk, namespace, path, count=2)
        eventually(
            lambda: (get_registry(kube_api, namespace, "web").get("status") or {}).get("memberCount") == 2,
            30,
            "status written under the ServiceAccount",
        )
        # kopf tries to list namespaces when it is given some; it then watches the ones named.
        refused = [
            line
            for line in replica.output().splitlines()
            if "Forbidden" in line and 'cannot list resource "namespaces"' not in line
        ]
        assert not refused, refused
    finally:
        group.stop_all()


def test_tls_and_digest_acls(kube_api, namespace, cluster, tls_ensemble, tmp_path):
    secure, ca = tls_ensemble
    group = Replicas(
        secure.secure_connection_string,
        cluster.kubeconfig,
        tmp_path / "replicas",
        owner=namespace,
        namespaces=[namespace],
        session_timeout=2.0,
        path_prefixes=[f"/{namespace}"],
        extra_args=["--zk-tls", "--zk-ca-file", ca, "--zk-digest", "zkregistry:s3cret"],
    )
    outsider = KazooClient(secure.connection_string, timeout=10)  # the plain port, no credentials
    outsider.start(timeout=30)
    try:
        group.start(1)
        apply_registry(kube_api, namespace, "web")
        create_deployment(kube_api, namespace, "web", replicas=2, registry="web")
        path = f"/{namespace}/web"
        pods = in_sync(kube_api, outsider, namespace, path, count=2)  # made over TLS, readable by anyone
        name = next(iter(pods))
        node = f"{path}/{name}"
        assert json.loads(outsider.get(node)[0])["payload"]["pod"]
        with pytest.raises(NoAuthError):
            outsider.delete(node)
        with pytest.raises(NoAuthError):
            outsider.set(node, b"{}")
        with pytest.raises(NoAuthError):
            outsider.delete(f"{path}")
        # Nor add a member: the service path denies CREATE by default (test_tenancy.py has a
        # RegistryPolicy that grants it to a principal).
        with pytest.raises(NoAuthError):
            outsider.create(f"{path}/vm-1", b'{"name":"web","id":"vm-1","address":"10.9.9.9","port":1}', ephemeral=True)
        assert registered(outsider, path, namespace) == pods
    finally:
        outsider.stop()
        outsider.close()
        group.stop_all()
