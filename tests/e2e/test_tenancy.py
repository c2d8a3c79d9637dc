"""Tenancy: a namespace writes only the ZooKeeper paths that policy grants it and that no other
namespace holds; a path stays with its namespace; service paths deny CREATE to anyone else;
installations on one ensemble keep apart; TLS verifies the server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import kubernetes
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import make_digest_acl_credential

from conftest import eventually
from kit import apply_registry, create_deployment, delete_registry, events_for, get_registry, in_sync, registry_exists
from zkregistry import api, cli, zk
from zkregistry.config import Settings
from zkregistry.devenv.replicas import Replicas


@pytest.fixture
def second_namespace(kube_api) -> Iterator[str]:
    core = kubernetes.client.CoreV1Api(kube_api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def group(ensemble, cluster, tmp_path, owner: str, namespaces: list[str], prefixes: list[str], *extra: str):
    return Replicas(
        ensemble.connection_string,
        cluster.kubeconfig,
        tmp_path / f"replicas-{owner}",
        owner=owner,
        namespaces=namespaces,
        session_timeout=2.0,
        extra_args=["--resync-seconds", "3", "--handover-timeout", "15", *extra],
        path_prefixes=prefixes,
    )


def condition(kube_api, namespace: str, name: str, kind: str) -> dict:
    status = get_registry(kube_api, namespace, name).get("status") or {}
    return next((c for c in status.get("conditions") or () if c["type"] == kind), {})


def refused(kube_api, namespace: str, name: str, reason: str) -> dict:
    """Waits for `Admitted=False` with `reason` and its Warning Event; returns the status."""
    eventually(
        lambda: condition(kube_api, namespace, name, "Admitted").get("reason") == reason
        and condition(kube_api, namespace, name, "Admitted").get("status") == "False",
        60,
        f"{namespace}/{name} refused with {reason}",
    )
    eventually(lambda: events_for(kube_api, namespace, name, reason), 30, f"a {reason} Event on {name}")
    return get_registry(kube_api, namespace, name)["status"]


def versions(client: KazooClient, path: str) -> dict[str, tuple[int, int]]:
    """child -> (czxid, mzxid)."""
    out = {}
    for name in client.get_children(path):
        stat = client.exists(f"{path}/{name}")
        if stat is not None:
            out[name] = (stat.czxid, stat.mzxid)
    return out


def policy(kube_api, name: str, **spec) -> None:
    body = {
        "apiVersion": f"{api.GROUP}/{api.VERSION}",
        "kind": api.POLICY_KIND,
        "metadata": {"name": name},
        "spec": spec,
    }
    kubernetes.client.CustomObjectsApi(kube_api).create_cluster_custom_object(
        api.GROUP, api.VERSION, api.POLICY_PLURAL, body
    )


def delete_policy(kube_api, name: str) -> None:
    kubernetes.client.CustomObjectsApi(kube_api).delete_cluster_custom_object(
        api.GROUP, api.VERSION, api.POLICY_PLURAL, name
    )


def test_other_namespaces_cannot_take_nest_in_or_reclaim_a_path(
    kube_api, zk, ensemble, cluster, namespace, second_namespace, tmp_path
):
    a, b = namespace, second_namespace
    replicas = group(ensemble, cluster, tmp_path, a, [a, b], [f"/{a}"])
    try:
        replicas.start(2)
        base = f"/{a}/svc"
        path = f"{base}/web"
        apply_registry(kube_api, a, "web", basePath=base)
        create_deployment(kube_api, a, "web", replicas=2, registry="web")
        in_sync(kube_api, zk, a, path, count=2)
        before = versions(zk, path)

        # The second namespace: the same path, a parent, a child, and a path outside policy.
        apply_registry(kube_api, b, "same", basePath=base, serviceName="web")
        apply_registry(kube_api, b, "parent", basePath=f"/{a}", serviceName="svc")
        apply_registry(kube_api, b, "child", basePath=path, serviceName="child")
        apply_registry(kube_api, b, "outside", basePath=f"/{b}", serviceName="web")
        for name in ("same", "parent", "child", "outside"):
            create_deployment(kube_api, b, f"d-{name}", replicas=1, registry=name)
        same = refused(kube_api, b, "same", "PathConflict")
        assert same["pathOwner"] == f"{a}/web"
        assert condition(kube_api, b, "same", "Ready")["status"] == "False"
        refused(kube_api, b, "parent", "PathConflict")
        refused(kube_api, b, "child", "PathConflict")
        refused(kube_api, b, "outside", "PathNotAllowed")
        assert condition(kube_api, a, "web", "Admitted")["status"] == "True"
        assert get_registry(kube_api, a, "web")["status"]["pathOwner"] == f"{a}/web"

        # Two resyncs on top (every 3 s): the first namespace's members never changed.
        time.sleep(7)
        assert versions(zk, path) == before
        assert zk.get_children(base) == ["web"]
        assert not zk.exists(f"/{b}/web")
        assert not zk.exists(f"{path}/child")

        # The first namespace deletes and re-creates its registry; the second's refused claim is
        # older now, but the path stays with the first.
        delete_registry(kube_api, a, "web")
        eventually(lambda: not registry_exists(kube_api, a, "web"), 60, "the registry deleted")
        eventually(lambda: not versions(zk, path), 30, "its members removed")
        assert not versions(zk, path)
        apply_registry(kube_api, a, "web", basePath=base)
        in_sync(kube_api, zk, a, path, count=2)
        assert condition(kube_api, b, "same", "Admitted")["reason"] == "PathConflict"
        claims = zk.get_children(f"/zkregistry/{a}/claims")
        data = {json.loads(zk.get(f"/zkregistry/{a}/claims/{c}")[0])["path"]: c for c in claims}
        claim = json.loads(zk.get(f"/zkregistry/{a}/claims/{data[path]}")[0])
        assert claim["namespace"] == a
        eventually(
            lambda: (get_registry(kube_api, a, "web").get("status") or {}).get("pathOwner") == f"{a}/web",
            30,
            "the re-created registry to own the path in status",
        )
    finally:
        replicas.stop_all()


def test_a_policy_admits_a_prefix(kube_api, zk, ensemble, cluster, namespace, tmp_path):
    prefix = f"/{namespace}-granted"
    name = f"p-{namespace}"
    replicas = group(ensemble, cluster, tmp_path, namespace, [namespace], ["/services"])
    try:
        replicas.start(1)
        apply_registry(kube_api, namespace, "early", basePath=prefix, serviceName="early")
        create_deployment(kube_api, namespace, "early", replicas=1, registry="early")
        refused(kube_api, namespace, "early", "PathNotAllowed")
        assert not zk.exists(f"{prefix}/early")

        policy(kube_api, name, namespaces=[namespace], pathPrefixes=[prefix])
        in_sync(kube_api, zk, namespace, f"{prefix}/early", app="early", count=1)
        eventually(
            lambda: condition(kube_api, namespace, "early", "Admitted").get("status") == "True", 30, "Admitted=True"
        )
        eventually(
            lambda: (kubernetes.client.CustomObjectsApi(kube_api).get_cluster_custom_object(
                api.GROUP, api.VERSION, api.POLICY_PLURAL, name).get("status") or {}).get("admitted")
            == [f"{namespace}/early"],
            30,
            "the policy's status to list the registry",
        )
        # Outside the prefix, nothing is written.
        apply_registry(kube_api, namespace, "beside", basePath=f"{prefix}x", serviceName="beside")
        refused(kube_api, namespace, "beside", "PathNotAllowed")
        assert not zk.exists(f"{prefix}x")
    finally:
        replicas.stop_all()
        delete_policy(kube_api, name)


def digest(user: str, password: str) -> str:
    return make_digest_acl_credential(user, password)


def test_service_paths_deny_create_unless_a_policy_names_the_principal(
    kube_api, zk, ensemble, cluster, namespace, tmp_path
):
    closed, shared = f"/{namespace}/closed", f"/{namespace}-shared"
    name = f"p-{namespace}"
    replicas = group(
        ensemble, cluster, tmp_path, namespace, [namespace], [f"/{namespace}"], "--zk-digest", "zkregistry:s3cret"
    )
    vm = KazooClient(ensemble.connection_string, timeout=10, auth_data=[("digest", "vm:vmpass")])
    vm.start(timeout=30)
    try:
        policy(
            kube_api,
            name,
            namespaces=[namespace],
            pathPrefixes=[shared],
            allowExternalMembers=True,
            externalPrincipals=[f"digest:{digest('vm', 'vmpass')}"],
        )
        replicas.start(1)
        apply_registry(kube_api, namespace, "web", basePath=closed)
        apply_registry(kube_api, namespace, "mixed", basePath=shared, serviceName="web")
        create_deployment(kube_api, namespace, "web", replicas=1, registry="web")
        create_deployment(kube_api, namespace, "mixed", replicas=1, registry="mixed")
        in_sync(kube_api, zk, namespace, f"{closed}/web", count=1)
        in_sync(kube_api, zk, namespace, f"{shared}/web", app="mixed", count=1)

        member = b'{"name":"web","id":"vm-1","address":"10.9.9.9","port":1}'
        with pytest.raises(NoAuthError):  # anonymous
            zk.create(f"{closed}/web/intruder", member, ephemeral=True)
        with pytest.raises(NoAuthError):  # a principal, but not granted this path
            vm.create(f"{closed}/web/vm-1", member, ephemeral=True)
        with pytest.raises(NoAuthError):
            zk.create(f"{shared}/web/intruder", member, ephemeral=True)
        vm.create(f"{shared}/web/vm-1", member, ephemeral=True)
        eventually(
            lambda: any(
                m["id"] == "vm-1" and m["source"] == "external"
                for m in (get_registry(kube_api, namespace, "mixed").get("status") or {}).get("members", ())
            ),
            30,
            "the external member in status",
        )
        in_sync(kube_api, zk, namespace, f"{shared}/web", app="mixed", count=1)  # ours untouched
    finally:
        vm.stop()
        vm.close()
        replicas.stop_all()
        delete_policy(kube_api, name)


def test_two_installations_on_one_ensemble_keep_apart(
    kube_api, zk, ensemble, cluster, namespace, second_namespace, tmp_path
):
    a, b = namespace, second_namespace
    one = group(ensemble, cluster, tmp_path, f"{a}-one", [a], [f"/{a}"])
    two = group(ensemble, cluster, tmp_path, f"{b}-two", [b], [f"/{b}"])
    try:
        one.start(2)
        two.start(2)
        apply_registry(kube_api, a, "web")
        apply_registry(kube_api, b, "web")
        create_deployment(kube_api, a, "web", replicas=2, registry="web")
        create_deployment(kube_api, b, "web", replicas=2, registry="web")

        def synced(namespace: str, owner: str) -> dict:
            def check():
                nodes = {k: v for k, v in versions(zk, f"/{namespace}/web").items()}
                owners = {
                    json.loads(zk.get(f"/{namespace}/web/{n}")[0])["payload"]["owner"] for n in nodes
                }
                return nodes if len(nodes) == 2 and owners == {owner} else None

            return eventually(check, 60, f"/{namespace}/web registered by {owner}")

        first_one, first_two = synced(a, f"{a}-one"), synced(b, f"{b}-two")
        assert zk.get_children(f"/zkregistry/{a}-one/election") and zk.get_children(f"/zkregistry/{b}-two/election")
        one.wait_leader().kill()  # a leader change of the first: the second's znodes stay as they are
        one.wait_leader()
        synced(a, f"{a}-one")
        assert versions(zk, f"/{b}/web") == first_two
        now_one = synced(a, f"{a}-one")
        two.wait_leader().kill()  # and of the second
        two.wait_leader()
        synced(b, f"{b}-two")
        assert versions(zk, f"/{a}/web") == now_one
        assert first_one  # (the first's own leader change re-created its members: its own business)
    finally:
        one.stop_all()
        two.stop_all()


def test_tls_verifies_the_server_certificate_and_host_name(tls_ensemble, capsys):
    secure, ca = tls_ensemble
    port = secure.secure_connection_string.rsplit(":", 1)[1]

    def connects(hosts: str, **settings) -> bool:
        client = zk.client(Settings(zk_hosts=hosts, zk_tls=True, **settings))
        try:
            client.start(timeout=5)
            return True
        except KazooTimeoutError:
            return False
        finally:
            client.stop()
            client.close()

    assert connects(f"127.0.0.1:{port}", zk_ca_file=ca)  # the CA, and the name in the certificate
    assert not connects(f"localhost:{port}", zk_ca_file=ca)  # the CA, but another name
    assert not connects(f"127.0.0.1:{port}")  # the system's CAs do not know this one
    assert connects(f"localhost:{port}", zk_tls_insecure=True)  # the explicit opt-out

    # `zkregistry discover` takes the same flags, and verifies the same way.
    def discover(hosts: str, *flags: str) -> str:
        code = cli.main(["discover", "web", "--zk-hosts", hosts, "--connect-timeout", "4", "--zk-tls", *flags])
        assert code == 1
        return capsys.readouterr().err

    assert "cannot reach ZooKeeper" in discover(f"localhost:{port}", "--zk-ca-file", ca)
    assert "cannot reach ZooKeeper" not in discover(f"127.0.0.1:{port}", "--zk-ca-file", ca)  # reached: no service
    assert "cannot reach ZooKeeper" not in discover(f"localhost:{port}", "--zk-tls-insecure")



def test_the_default_owner_id_is_the_clusters(kube_api, zk, ensemble, cluster, namespace, tmp_path):
    uid = kubernetes.client.CoreV1Api(kube_api).read_namespace("kube-system").metadata.uid
    owner = f"zkregistry-{uid}"  # POD_NAMESPACE is not set outside a pod
    replicas = group(ensemble, cluster, tmp_path, "", [namespace], [f"/{namespace}"])
    try:
        replicas.start(1)
        apply_registry(kube_api, namespace, "web")
        create_deployment(kube_api, namespace, "web", replicas=1, registry="web")
        eventually(
            lambda: [
                n for n in zk.get_children(f"/{namespace}/web")
                if json.loads(zk.get(f"/{namespace}/web/{n}")[0])["payload"]["owner"] == owner
            ] if zk.exists(f"/{namespace}/web") else None,
            60,
            "a registration carrying the cluster's owner id",
        )
        assert zk.get_children(f"/zkregistry/{owner}/election")
    finally:
        replicas.stop_all()
