"""Fixtures shared by the zk and e2e tiers: a real ZooKeeper ensemble, a real control plane,
fresh namespaces, operator replicas as processes, and waiting with deadlines.

The ensemble and the cluster live for the whole session in a temporary folder; at the end the
session checks that none of their processes, nor any operator replica, is left behind.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zkregistry.devenv.processes import alive, wait_for

CRDS = Path(__file__).resolve().parents[1] / "crds"


def eventually(condition: Callable[[], object], timeout: float = 30, what: str = "condition"):
    """Waits for `condition` to be truthy and returns its value; fails the test on timeout."""
    try:
        return wait_for(condition, timeout, what)
    except TimeoutError as error:
        pytest.fail(str(error))


def _required(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        pytest.exit(f"{variable} is not set: run the tests through `make test` (tools/env.sh)", 2)
    return Path(value)


@pytest.fixture(scope="session")
def ensemble(tmp_path_factory) -> Iterator:
    from zkregistry.devenv.ensemble import Ensemble

    zk = Ensemble(tmp_path_factory.mktemp("zookeeper"), _required("ZKREGISTRY_ZOOKEEPER"))
    zk.start()
    pids = [s.pid for s in zk.servers]
    yield zk
    for server in zk.servers:  # a test may have left one paused
        if server.pid and alive(server.pid):
            zk.resume_server(server.myid)
    zk.stop()
    left = [p for p in pids + [s.pid for s in zk.servers] if p and alive(p)]
    assert not left, f"ZooKeeper processes left behind: {left}"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator:
    from zkregistry.devenv.cluster import COMPONENTS, Cluster

    kube = Cluster(tmp_path_factory.mktemp("cluster"), _required("ZKREGISTRY_BIN"))
    kube.start(nodes=3)
    kube.kubectl("apply", "-f", str(CRDS))
    kube.kubectl(
        "wait", "--for", "condition=established", "--timeout=60s",
        "crd/serviceregistries.zkregistry.io", "crd/registrypolicies.zkregistry.io",
    )
    pids = [kube.pid(c) for c in COMPONENTS]
    yield kube
    if kube.pid("kube-apiserver"):
        kube.resume_apiserver()
    pids += [kube.pid(c) for c in COMPONENTS]
    kube.stop()
    left = [p for p in pids if p and alive(p)]
    assert not left, f"control-plane processes left behind: {left}"


@pytest.fixture
def zk(ensemble) -> Iterator:
    from kazoo.client import KazooClient

    client = KazooClient(ensemble.connection_string, timeout=10)
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def kube_api(cluster):
    """A kubernetes ApiClient for the local cluster."""
    import kubernetes

    return kubernetes.config.new_client_from_config(str(cluster.kubeconfig))


@pytest.fixture
def namespace(cluster, kube_api) -> Iterator[str]:
    import kubernetes

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def replicas(ensemble, cluster, namespace, tmp_path) -> Iterator:
    """Operator replicas for this test's namespace; stopped (and checked gone) afterwards."""
    from zkregistry.devenv.replicas import Replicas

    group = Replicas(
        ensemble.connection_string, cluster.kubeconfig, tmp_path / "replicas",
        owner=namespace, namespaces=[namespace], session_timeout=2.0,
        extra_args=["--resync-seconds", "5", "--handover-timeout", "15"],
        path_prefixes=[f"/{namespace}"],  # kit.apply_registry's default basePath
    )
    yield group
    group.stop_all()
    left = [r.name for r in group.members if r.alive()]
    assert not left, f"operator replicas left behind: {left}"
    for replica in group.members:
        text = replica.output()
        assert "Traceback" not in text, f"{replica.name} logged an exception:\n{text[-4000:]}"


@pytest.fixture(scope="session")
def service_account_kubeconfig(cluster, tmp_path_factory) -> Path:
    """A kubeconfig that acts as the operator's own ServiceAccount, with deploy/'s RBAC.

    deploy/'s Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding are applied for real,
    a token is requested for the account (TokenRequest, as the kubelet would), and the kubeconfig
    names the local cluster's server and CA with that token and nothing else. Run the operator with
    it to prove that it needs no more than deploy/ grants.
    """
    import yaml

    rendered = cluster.kubectl("kustomize", str(CRDS.parent / "deploy")).stdout
    rbac = [d for d in yaml.safe_load_all(rendered)
            if d and d["kind"] in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
    folder = tmp_path_factory.mktemp("service-account")
    (folder / "rbac.yaml").write_text(yaml.safe_dump_all(rbac))
    cluster.kubectl("apply", "-f", str(folder / "rbac.yaml"))
    account = next(d["metadata"] for d in rbac if d["kind"] == "ServiceAccount")
    token = cluster.kubectl(
        "create", "token", account["name"], "--namespace", account["namespace"], "--duration", "6h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--minify").stdout)
    user = f"system:serviceaccount:{account['namespace']}:{account['name']}"
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": user}}],
        "current-context": "operator",
    }))
    path.chmod(0o600)
    return path


PASSWORD = "keystore-secret"


@pytest.fixture
def tls_ensemble(tmp_path) -> Iterator[tuple]:
    """A one-server ensemble with a TLS client port; yields it and the CA file (PEM). The server's
    certificate is self-signed and names 127.0.0.1 only."""
    from zkregistry.devenv.ensemble import Ensemble

    keystore, ca = tmp_path / "server.jks", tmp_path / "ca.pem"
    subprocess.run(
        [
            "keytool",
            "-genkeypair",
            "-alias",
            "zk",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-validity",
            "2",
            "-dname",
            "CN=127.0.0.1",
            "-ext",
            "SAN=ip:127.0.0.1",
            "-keystore",
            str(keystore),
            "-storetype",
            "JKS",
            "-storepass",
            PASSWORD,
            "-keypass",
            PASSWORD,
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "keytool",
            "-exportcert",
            "-rfc",
            "-alias",
            "zk",
            "-keystore",
            str(keystore),
            "-storepass",
            PASSWORD,
            "-file",
            str(ca),
        ],
        check=True,
        capture_output=True,
    )
    truststore = tmp_path / "trust.jks"
    subprocess.run(
        [
            "keytool",
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            str(ca),
            "-keystore",
            str(truststore),
            "-storetype",
            "JKS",
            "-storepass",
            PASSWORD,
        ],
        check=True,
        capture_output=True,
    )
    tls = {"keystore": str(keystore), "truststore": str(truststore), "password": PASSWORD}
    secure = Ensemble(tmp_path / "zk", _required("ZKREGISTRY_ZOOKEEPER"), size=1, tls=tls)
    secure.start()
    yield secure, str(ca)
    secure.stop()
