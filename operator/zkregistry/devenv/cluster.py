"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) with kwok's fake nodes, run as local processes by `kwokctl --runtime binary`.

    cluster = Cluster(workdir, bin_dir)     # bin_dir: the folder tools/build.sh prints
    cluster.start(nodes=3)
    cluster.kubeconfig                      # a path
    cluster.restart_apiserver(); cluster.pause_apiserver(); cluster.resume_apiserver()
    cluster.compact_etcd()                  # every older resourceVersion is then 410 Gone
    cluster.stop()

Everything binds 127.0.0.1; kwok makes scheduled pods Ready as a kubelet would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from zkregistry.devenv.processes import alive, free_ports, spawn, terminate, wait_for

NAME = "zkregistry"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")

# kwokctl counts its default ports down from 32767, so two clusters on one machine (or a
# restarted kube-apiserver and another cluster) would collide: every port is chosen here instead.
PORTS = (
    "kubeApiserverPort",
    "etcdPort",
    "etcdPeerPort",
    "kubeControllerManagerPort",
    "kubeSchedulerPort",
    "kwokControllerPort",
)


def kwokctl_config(ports: list[int]) -> str:
    lines = [
        "kind: KwokctlConfiguration",
        "apiVersion: config.kwok.x-k8s.io/v1alpha1",
        "options:",
        "  bindAddress: 127.0.0.1",
        "  runtime: binary",
        "  disableQPSLimits: true",
    ]
    lines += [f"  {name}: {port}" for name, port in zip(PORTS, ports, strict=True)]
    # One controller-manager and one scheduler need no leader election; with it, they exit when
    # kube-apiserver is away longer than their lease (a restart in a fault test) and never return.
    lines += ["componentsPatches:"]
    for component in ("kube-controller-manager", "kube-scheduler"):
        lines += [
            f"  - name: {component}",
            "    extraArgs:",
            "      - {key: leader-elect, value: 'false'}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Cluster:
    workdir: Path
    bin_dir: Path

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.bin_dir = Path(self.bin_dir)

    @property
    def _cluster_dir(self) -> Path:
        return self.workdir / "kwok" / "clusters" / NAME

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KWOK_WORKDIR": str(self.workdir / "kwok"),
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}",
        }

    def kwokctl(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "kwokctl"), *args, "--name", NAME],
            env=self._env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kwokctl {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def running(self) -> bool:
        return self.pid("kube-apiserver") is not None

    def start(self, nodes: int = 3) -> None:
        """Creates the cluster (or starts it again) and waits until it has Ready nodes."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "kwok.yaml"
        if self.running():
            return
        if self._cluster_dir.exists():
            self.kwokctl("start", "cluster")
        else:
            b = self.bin_dir
            config.write_text(kwokctl_config(free_ports(len(PORTS))))
            self.kwokctl(
                "create",
                "cluster",
                "--config",
                str(config),
                "--kube-apiserver-binary",
                str(b / "kube-apiserver"),
                "--kube-controller-manager-binary",
                str(b / "kube-controller-manager"),
                "--kube-scheduler-binary",
                str(b / "kube-scheduler"),
                "--etcd-binary",
                str(b / "etcd"),
                "--kwok-controller-binary",
                str(b / "kwok"),
                "--wait",
                "2m",
            )
            self.kwokctl("scale", "node", "--replicas", str(nodes))
        self.kubeconfig.write_text(self.kwokctl("get", "kubeconfig"))
        wait_for(self._nodes_ready, 60, "Ready nodes")
        # The "default" ServiceAccount is made by the controller-manager; pods need it.
        wait_for(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            60,
            "the default ServiceAccount",
        )

    def _nodes_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "--no-headers", check=False).stdout
        return bool(out.strip()) and all(" Ready " in f" {line} " for line in out.splitlines())

    def pid(self, component: str) -> int | None:
        try:
            pid = int((self._cluster_dir / "pids" / f"{component}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def pause_apiserver(self) -> None:
        os.kill(self._require("kube-apiserver"), signal.SIGSTOP)

    def resume_apiserver(self) -> None:
        os.kill(self._require("kube-apiserver"), signal.SIGCONT)

    def restart_apiserver(self) -> None:
        """Stops kube-apiserver and starts it again with the same command line."""
        pid = self._require("kube-apiserver")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
        terminate(pid, timeout=5)  # past that, its graceful shutdown only waits for watches to end
        process = spawn([a.decode() for a in argv], self._cluster_dir / "logs" / "kube-apiserver.log", cwd=cwd)
        (self._cluster_dir / "pids" / "kube-apiserver.pid").write_text(str(process.pid))
        wait_for(lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0, 60, "kube-apiserver")

    def etcd_url(self) -> str:
        """etcd's client URL, from the component that kwokctl recorded in the cluster's kwok.yaml."""
        import yaml

        documents = yaml.safe_load_all((self._cluster_dir / "kwok.yaml").read_text())
        for component in (c for d in documents if d for c in d.get("components") or ()):
            if component.get("name") != "etcd":
                continue
            args = [str(a) for a in component.get("args") or ()]
            for flag in ("--advertise-client-urls", "--listen-client-urls"):
                for i, arg in enumerate(args):
                    if arg.startswith(f"{flag}="):
                        return arg.split("=", 1)[1].split(",")[0]
                    if arg == flag and i + 1 < len(args):
                        return args[i + 1].split(",")[0]
        raise RuntimeError(f"no client URL of etcd in {self._cluster_dir / 'kwok.yaml'}")

    def compact_etcd(self) -> int:
        """Compacts etcd up to its current revision, through its JSON gateway; returns the revision.

        A watch or a list continued from any older resourceVersion is then answered 410 Gone.
        """

        def post(path: str, body: dict) -> dict:
            request = urllib.request.Request(
                self.etcd_url() + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)

        revision = int(post("/v3/kv/range", {"key": "AA=="})["header"]["revision"])  # any key: the header has it
        post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def _require(self, component: str) -> int:
        pid = self.pid(component)
        if pid is None:
            raise RuntimeError(f"{component} is not running")
        return pid

    def stop(self) -> None:
        """Deletes the cluster and waits until none of its processes is left."""
        pids = [p for p in (self.pid(c) for c in COMPONENTS) if p]
        if self._cluster_dir.exists():
            with contextlib.suppress(RuntimeError):  # its processes are stopped below anyway
                self.kwokctl("delete", "cluster")
        for pid in pids:
            terminate(pid)
