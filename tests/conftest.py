"""Fixtures shared by the zk and e2e tiers: a real ZooKeeper ensemble, a real control plane,
fresh namespaces, operator replicas as processes or run from the operator's image, and waiting
with deadlines.

The ensemble and the cluster live for the whole session in a temporary folder; at the end the
session checks that none of their processes, nor any operator replica, is left behind.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


def observer_client(hosts: str, timeout: float = 10):
    """The tests' own ZooKeeper client, whose reads see every write that committed before them.

    It reads through whichever server it is connected to, which may not have applied yet what
    another client's server just committed: ZooKeeper orders each client's view, and promises
    recency across clients only after a `sync`. So each of its reads syncs first."""
    from kazoo.client import KazooClient

    class ObserverClient(KazooClient):
        def get_children(self, path, *args, **kwargs):
            self.sync(path)
            return super().get_children(path, *args, **kwargs)

        def get(self, path, *args, **kwargs):
            self.sync(path)
            return super().get(path, *args, **kwargs)

        def exists(self, path, *args, **kwargs):
            self.sync(path)
            return super().exists(path, *args, **kwargs)

    return ObserverClient(hosts, timeout=timeout)


@pytest.fixture
def zk(ensemble) -> Iterator:
    client = observer_client(ensemble.connection_string)
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


@dataclass(frozen=True)
class ServiceAccount:
    """The operator's ServiceAccount of deploy/, with a token, and what in-cluster configuration
    needs to use it: `folder` holds token, ca.crt and namespace, as the kubelet mounts them."""

    name: str
    namespace: str
    token: str
    server: str  # the API server's URL, https://host:port
    folder: Path

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@pytest.fixture(scope="session")
def service_account(cluster, tmp_path_factory) -> ServiceAccount:
    """deploy/'s Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, applied for real, and
    a token requested for the account (TokenRequest, as the kubelet would)."""
    import base64

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
    admin = yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--minify").stdout)["clusters"][0]["cluster"]
    mounted = folder / "mounted"
    mounted.mkdir()
    (mounted / "token").write_text(token)
    if "certificate-authority-data" in admin:
        (mounted / "ca.crt").write_bytes(base64.b64decode(admin["certificate-authority-data"]))
    else:
        (mounted / "ca.crt").write_bytes(Path(admin["certificate-authority"]).read_bytes())
    (mounted / "namespace").write_text(account["namespace"])
    for path in (mounted, *mounted.iterdir()):  # what the image's user (65532) may read
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ServiceAccount(account["name"], account["namespace"], token, admin["server"], mounted)


@pytest.fixture(scope="session")
def service_account_kubeconfig(cluster, service_account, tmp_path_factory) -> Path:
    """A kubeconfig that acts as the operator's own ServiceAccount, with deploy/'s RBAC.

    It names the local cluster's server and CA with the account's token and nothing else. Run the
    operator with it to prove that it needs no more than deploy/ grants.
    """
    import yaml

    admin = yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--minify").stdout)
    user = service_account.user
    path = tmp_path_factory.mktemp("service-account-kubeconfig") / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": user, "user": {"token": service_account.token}}],
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


@pytest.fixture(scope="session")
def monitoring_crds(cluster) -> list[str]:
    """The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs, installed in the session's
    cluster from the version that tools/prometheus-operator/go.mod pins (tools/prometheus-operator-crds.sh
    fetches it through the Go module proxy, checked against go.sum), so that the chart's
    operations kit is validated by a real API server. Returns the CRDs' names."""
    found = subprocess.run(
        [str(CRDS.parent / "tools" / "prometheus-operator-crds.sh")], capture_output=True, text=True, timeout=600
    )
    if found.returncode != 0:
        pytest.fail(f"the Prometheus Operator's CRDs could not be fetched:\n{found.stderr[-3000:]}")
    folder = Path(found.stdout.strip())
    names = []
    for kind in ("servicemonitors", "prometheusrules"):
        # Server-side: the CRDs are too large for the last-applied annotation of a client-side apply.
        crd = folder / f"monitoring.coreos.com_{kind}.yaml"
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        names.append(f"{kind}.monitoring.coreos.com")
    cluster.kubectl("wait", "--for", "condition=established", "--timeout=60s", *(f"crd/{n}" for n in names))
    return names


# -- the operator's image ------------------------------------------------------------------------

TOP = CRDS.parent


@pytest.fixture(scope="session")
def operator_image():
    """The operator's image, built from the Dockerfile by `tools/image.sh --base local` (a base
    from Debian's packages: no registry is reachable here) and loaded from its OCI archive into
    buildah's storage. The build is cached by its inputs, so only a changed tree rebuilds it.
    Fails, never skips, when it cannot be built or run here, saying why."""
    from zkregistry.devenv.container import Image, runc_available

    try:
        built = subprocess.run(
            [str(TOP / "tools" / "image.sh"), "--base", "local"], capture_output=True, text=True, timeout=1800
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"tools/image.sh could not build the image: {error}")
    if built.returncode != 0:
        pytest.fail(f"tools/image.sh could not build the image (exit {built.returncode}):\n{built.stderr[-4000:]}")
    if why := runc_available():
        pytest.fail(f"the image cannot be run here: {why}")
    archive = Path(built.stdout.strip().splitlines()[-1])
    cache = Path(os.environ.get("ZKREGISTRY_CACHE") or Path.home() / ".cache" / "zkregistry")
    try:
        image = Image.load(archive, cache)
    except RuntimeError as error:
        pytest.fail(f"buildah could not load {archive}: {error}")
    return archive, image


@pytest.fixture(scope="session")
def image_root(operator_image) -> Iterator[Path]:
    """The image unpacked once (buildah from + mount) for every container of the session; each
    container sees it read-only."""
    _, image = operator_image
    with image.root("e2e") as root:
        yield root


def apiserver_accepts(server: str, ca: Path) -> str | None:
    """Why a client that verifies the API server's certificate against `ca` for the host of
    `server` (as in-cluster configuration does) would refuse it; None if it accepts it."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    url = urlsplit(server)
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection((url.hostname, url.port or 443), timeout=10) as sock,
            context.wrap_socket(sock, server_hostname=url.hostname),
        ):
            return None
    except ssl.SSLCertVerificationError as error:
        return f"its serving certificate is not valid for {url.hostname}: {error.verify_message}"


@pytest.fixture
def image_replicas(ensemble, cluster, namespace, tmp_path, service_account, operator_image, image_root) -> Iterator:
    """Operator replicas run from the image, with the replicas fixture's settings, as the
    ServiceAccount of deploy/ through in-cluster configuration; with the image's shells hidden
    (nothing may need one). Stopped, checked gone and free of tracebacks afterwards."""
    from urllib.parse import urlsplit

    from zkregistry.devenv.container import shells
    from zkregistry.devenv.replicas import ImageReplicas

    # In a pod, KUBERNETES_SERVICE_HOST is the Service IP of kubernetes.default; here it is the
    # local API server's own address, which its certificate must accept (kwok's names 127.0.0.1).
    if why := apiserver_accepts(service_account.server, service_account.folder / "ca.crt"):
        pytest.fail(f"in-cluster configuration cannot reach {service_account.server}: {why}")
    url = urlsplit(service_account.server)
    _, image = operator_image
    group = ImageReplicas(
        ensemble.connection_string, cluster.kubeconfig, tmp_path / "image-replicas",
        owner=namespace, namespaces=[namespace], session_timeout=2.0,
        extra_args=["--resync-seconds", "5", "--handover-timeout", "15"],
        path_prefixes=[f"/{namespace}"],  # as the replicas fixture
        root=image_root, image=image.config, service_account=service_account.folder,
        apiserver=(url.hostname, url.port or 443), masked=shells(image_root),
    )
    try:
        yield group
        group.stop_all()
        left = [r.name for r in group.members if r.alive()]
        assert not left, f"image replicas left behind: {left}"
    finally:
        group.remove_all()
    for replica in group.members:
        text = replica.output()
        assert "Traceback" not in text, f"{replica.name} logged an exception:\n{text[-4000:]}"
