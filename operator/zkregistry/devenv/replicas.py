"""Operator replicas as separate local processes, for tests, the demo and benchmarks.

replicas = Replicas(zk_hosts, kubeconfig, workdir, owner="demo", namespaces=["default"])
a, b, c = replicas.start(3)
d, = replicas.start(1, zk_hosts="127.0.0.1:2181")   # this one talks to one server only
leader = replicas.wait_leader()
leader.terminate()          # SIGTERM: graceful handover
b.kill(); c.pause(); c.resume()
replicas.stop_all()

`ImageReplicas` runs the same replicas from the operator's image instead, each in a container
(devenv/container.py) that authenticates as a ServiceAccount through in-cluster configuration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from zkregistry.devenv.container import SERVICE_ACCOUNT_DIR, Container, ImageConfig, Mount, runtime_spec
from zkregistry.devenv.processes import alive, free_ports, spawn, terminate, wait_for


@dataclass
class Replica:
    name: str
    process: subprocess.Popen
    http_port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None and alive(self.pid)

    def get(self, path: str) -> tuple[int, str]:
        """GET on the replica's HTTP port: (status code, body)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def is_leader(self) -> bool:
        try:
            return "zkregistry_leader 1.0" in self.get("/metrics")[1]
        except OSError:
            return False

    def terminate(self, timeout: float = 60) -> None:
        terminate(self.pid, timeout)
        self.process.wait()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Replicas:
    zk_hosts: str
    kubeconfig: Path
    workdir: Path
    owner: str = "default"
    namespaces: list[str] = field(default_factory=list)
    session_timeout: float = 10.0
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: --path-prefixes: where every namespace may register without a RegistryPolicy (None: the default)
    path_prefixes: list[str] | None = None
    members: list[Replica] = field(default_factory=list)

    def start(self, count: int = 1, zk_hosts: str | None = None) -> list[Replica]:
        """Starts `count` replicas and waits until each is ready; `zk_hosts` (default: the group's)
        is the ZooKeeper connection string of these replicas alone."""
        first = len(self.members)
        started = [self.start_one(f"{self.owner}-{first + i}", zk_hosts) for i in range(count)]
        for replica in started:
            wait_for(lambda r=replica: r.get("/readyz")[0] == 200 or not r.alive(), 120, f"{replica.name} ready")
            if not replica.alive():
                raise RuntimeError(f"replica {replica.name} exited:\n{replica.output()[-3000:]}")
        return started

    def start_one(self, name: str, zk_hosts: str | None = None) -> Replica:
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        port = free_ports(1)[0]
        log = Path(self.workdir) / f"{name}.log"
        source_root = Path(__file__).resolve().parents[2]
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONPATH": f"{source_root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            **self.env,
        }
        command = [sys.executable, "-m", "zkregistry", "run", *self.flags(name, zk_hosts, port)]
        process = spawn(command, log, env=env)
        replica = Replica(name, process, port, log)
        self.members.append(replica)
        return replica

    def flags(self, name: str, zk_hosts: str | None, port: int) -> list[str]:
        """The flags of `zkregistry run` for replica `name`: the group's settings."""
        return [
            "--zk-hosts",
            zk_hosts or self.zk_hosts,
            "--identity",
            name,
            "--owner-id",
            self.owner,
            "--session-timeout",
            str(self.session_timeout),
            "--http-port",
            str(port),
            *(["--namespaces", ",".join(self.namespaces)] if self.namespaces else []),
            *(["--path-prefixes", ",".join(self.path_prefixes)] if self.path_prefixes is not None else []),
            *self.extra_args,
        ]

    def running(self) -> list[Replica]:
        return [r for r in self.members if r.alive()]

    def wait_leader(self, timeout: float = 60, exclude: Replica | None = None) -> Replica:
        return wait_for(
            lambda: next((r for r in self.running() if r is not exclude and r.is_leader()), None),
            timeout,
            "an elected leader",
        )

    def stop_all(self) -> None:
        for replica in self.members:
            if replica.alive():
                replica.resume()
                replica.terminate()


@dataclass
class ContainerReplica(Replica):
    """A replica in a container: signals go to the container's first process, the image's
    entrypoint (`runc kill`), as a container runtime sends them; `pid` is runc's."""

    container: Container | None = None

    def _signal(self, sig: signal.Signals) -> None:
        assert self.container is not None
        self.container.signal(sig)

    def terminate(self, timeout: float = 60) -> None:
        """SIGTERM (and SIGCONT, in case it is paused), then SIGKILL after `timeout`, as the kubelet
        does at the end of the grace period; returns once the container is gone."""
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)


@dataclass
class ImageReplicas(Replicas):
    """Replicas run from the operator's image, as deploy/deployment.yaml runs them.

    Each is a container of the image at `root` (an unpacked root, `container.Image.root()`), with
    the image's entrypoint followed by the group's flags as its arguments, and POD_NAME and
    POD_NAMESPACE set. It authenticates through in-cluster configuration: `service_account` (a
    folder with token, ca.crt and namespace) is mounted read-only at
    /var/run/secrets/kubernetes.io/serviceaccount, and KUBERNETES_SERVICE_HOST and _PORT name
    `apiserver`, whose serving certificate must accept that host. `kubeconfig` is not used.
    """

    root: Path | None = None
    image: ImageConfig | None = None
    service_account: Path | None = None
    apiserver: tuple[str, int] = ("127.0.0.1", 443)
    masked: list[str] = field(default_factory=list)  # paths hidden in every container
    memory_limit: int | None = 256 * 2**20  # deploy/'s limit

    def start_one(self, name: str, zk_hosts: str | None = None) -> ContainerReplica:
        if self.root is None or self.image is None or self.service_account is None:
            raise ValueError("ImageReplicas needs root, image and service_account")
        workdir = Path(self.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_ports(1)[0]
        log = workdir / f"{name}.log"
        host, api_port = self.apiserver
        env = {
            "POD_NAME": name,
            "POD_NAMESPACE": (self.service_account / "namespace").read_text().strip(),
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(api_port),
            **self.env,
        }
        spec = runtime_spec(
            self.root,
            self.image,
            args=self.flags(name, zk_hosts, port),
            env=env,
            mounts=[Mount(SERVICE_ACCOUNT_DIR, str(self.service_account))],
            masked=self.masked,
            hostname=name,
            memory_limit=self.memory_limit,
        )
        container = Container(f"{name}-{uuid.uuid4().hex[:6]}", workdir / "bundles" / name, workdir / "runc", spec)
        process = container.start(log)
        replica = ContainerReplica(name, process, port, log, container)
        self.members.append(replica)
        return replica

    def remove_all(self) -> None:
        """Deletes every container still there, whatever state it is in (after a failed test)."""
        for replica in self.members:
            if isinstance(replica, ContainerReplica) and replica.container is not None:
                replica.container.remove()
