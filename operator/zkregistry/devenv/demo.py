"""`make demo`: the whole product on this machine, left running for you to explore.

A local control plane and ZooKeeper ensemble, the CRD, three operator replicas, and the sample
annotated Deployment of deploy/examples/web.yaml; then it prints `kubectl get serviceregistries`
and the ZooKeeper tree of the service. Running it again reuses whatever is still up.
`make demo-down` stops everything.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from zkregistry.devenv.environment import Environment
from zkregistry.devenv.processes import alive, terminate, wait_for
from zkregistry.devenv.replicas import Replicas

TOP = Path(__file__).resolve().parents[3]
SAMPLE = TOP / "deploy" / "examples" / "web.yaml"
REPLICAS = 3
CREDENTIALS = "zkregistry-zookeeper"  # the Secret with the operator's ZooKeeper identity


def up(environment: Environment) -> None:
    took = environment.up()
    print(
        f"ZooKeeper ensemble up ({took['ensemble_s']:.1f} s), Kubernetes control plane up ({took['cluster_s']:.1f} s)"
    )
    cluster = environment.cluster
    cluster.kubectl("apply", "-f", str(TOP / "crds"))
    cluster.kubectl(
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/serviceregistries.zkregistry.io",
        "crd/registrypolicies.zkregistry.io",
    )

    state = environment.workdir / "replicas.json"
    running = [p for p in json.loads(state.read_text()) if alive(p)] if state.exists() else []
    if len(running) < REPLICAS:
        replicas = Replicas(
            environment.ensemble.connection_string,
            cluster.kubeconfig,
            environment.workdir / "replicas",
            owner="demo",
            env={"ZKREGISTRY_ZK_DIGEST": credentials(cluster)},
        )
        started = replicas.start(REPLICAS - len(running))
        running += [r.pid for r in started]
        state.write_text(json.dumps(running))
    print(f"{len(running)} operator replicas running (logs in {environment.workdir / 'replicas'})")

    cluster.kubectl("apply", "-f", str(SAMPLE))
    wait_for(lambda: _members(cluster) == "3", 120, "3 members in the ServiceRegistry's status")
    print("\n$ kubectl get serviceregistries")
    print(cluster.kubectl("get", "serviceregistries").stdout)
    print("$ ZooKeeper tree of /services/web")
    print(tree(environment.ensemble.connection_string, "/services/web"))
    print(f"an anonymous client creating under /services/web gets: {anonymous_create(environment)}")
    print(environment.describe())
    print("\nStop everything with: make demo-down")


def credentials(cluster) -> str:
    """The operator's ZooKeeper digest identity (user:password), from the Secret
    default/zkregistry-zookeeper, created with a random password when absent: as the chart does,
    so that the service paths deny CREATE to everyone else."""
    read = ["get", "secret", CREDENTIALS, "-n", "default", "-o", "jsonpath={.data.digest}"]
    found = cluster.kubectl(*read, check=False)
    if found.returncode != 0 or not found.stdout.strip():
        digest = f"zkregistry:{secrets.token_urlsafe(24)}"
        cluster.kubectl("create", "secret", "generic", CREDENTIALS, "-n", "default", f"--from-literal=digest={digest}")
        return digest
    return base64.b64decode(found.stdout.strip()).decode()


def _members(cluster) -> str:
    return cluster.kubectl("get", "sreg", "web", "-o", "jsonpath={.status.memberCount}", check=False).stdout.strip()


def tree(hosts: str, path: str) -> str:
    client = KazooClient(hosts)
    client.start(timeout=30)
    try:
        lines = [path]
        names = sorted(client.get_children(path))
        for name in names:
            data, stat = client.get(f"{path}/{name}")
            instance = json.loads(data)
            payload = instance.get("payload") or {}
            branch = "└──" if name == names[-1] else "├──"
            lines.append(
                f"{branch} {name}  {instance['address']}:{instance['port']}  pod={payload.get('pod')} "
                f"ephemeralOwner=0x{stat.ephemeralOwner:x}"
            )
        return "\n".join(lines)
    finally:
        client.stop()
        client.close()


def anonymous_create(environment: Environment) -> str:
    """What ZooKeeper answers a client without credentials that tries to add a member."""
    client = KazooClient(environment.ensemble.connection_string)
    client.start(timeout=30)
    try:
        client.create("/services/web/intruder", b"{}", ephemeral=True)
        return "created (the service path is open!)"
    except NoAuthError:
        return "NoAuth"
    finally:
        client.stop()
        client.close()


def down(environment: Environment) -> None:
    state = environment.workdir / "replicas.json"
    if state.exists():
        for pid in json.loads(state.read_text()):
            if alive(pid):
                terminate(pid, timeout=40)
        state.unlink()
    environment.down()
    print("demo stopped")


if __name__ == "__main__":
    env = Environment()
    down(env) if sys.argv[1:] == ["down"] else up(env)
