"""End to end: Apache Curator's own ServiceDiscovery and ServiceCache (curator-x-discovery
5.9.0, run as a Java process) discover the pods that the operator registers, follow a scale-down,
and a service instance that Curator itself registers shows in the ServiceRegistry's status as an
external member."""

from __future__ import annotations

import time

import pytest

from conftest import eventually
from interop.harness import CuratorProgram
from kit import apply_registry, create_deployment, get_registry, in_sync, ready_pods, scale


@pytest.fixture(scope="module")
def program() -> CuratorProgram:
    return CuratorProgram.build()


def test_curator_discovers_the_operators_registrations(program, kube_api, zk, ensemble, namespace, replicas):
    base, path = f"/{namespace}", f"/{namespace}/web"
    apply_registry(kube_api, namespace, "web", port="http", metadata={"podLabels": ["app"]})
    create_deployment(kube_api, namespace, "web", replicas=3, registry="web", ports=(("http", 8080), ("admin", 9000)))
    replicas.start(1)
    pods = in_sync(kube_api, zk, namespace, path, count=3, timeout=90)

    with program.run("watch", ensemble.connection_string, base, "web") as watch:
        # Curator's ServiceCache sees the three pods, as Curator's own instances.
        seen = watch.wait_for(lambda line: sorted(line.get("ids", [])) == sorted(pods), 60)
        for found in seen["instances"]:
            assert (found["address"], found["port"], found["enabled"]) == (pods[found["id"]], 8080, True)
            assert found["name"] == "web" and found["payloadClass"] == "java.util.LinkedHashMap"
            assert found["payload"]["ports"] == {"admin": 9000, "http": 8080}
            assert found["payload"]["metadata"] == {"app": "web"}

        # Scale down: Curator's cache follows (measured from the scale request to Curator's
        # listener; the goal is about a second, the assertion only a generous deadline).
        started = time.time()
        scale(kube_api, namespace, "web", 2)
        down = watch.wait_for(lambda line: line["event"] == "changed" and len(line["ids"]) == 2, 60)
        took = down["t"] / 1000 - started
        print(f"Curator's ServiceCache saw the scale-down {took:.3f} s after the scale request")
        assert set(down["ids"]) < set(pods)
        remaining = eventually(
            lambda: (p := ready_pods(kube_api, namespace, "web")) and len(p) == 2 and p, 60, "2 Ready pods"
        )
        assert set(down["ids"]) == set(remaining)

        # A service registered by Curator itself, next to the operator's registrations.
        registrar = program.run("register", ensemble.connection_string, base, "web", "vm-1", "192.168.7.7", "9000")
        with registrar:
            registrar.wait_for(lambda line: line["event"] == "registered")
            owner = zk.exists(f"{path}/vm-1").ephemeralOwner
            watch.wait_for(lambda line: "vm-1" in line.get("ids", []), 30)

            def members():
                status = get_registry(kube_api, namespace, "web").get("status") or {}
                return {m["id"]: m for m in status.get("members") or ()}

            listed = eventually(lambda: (m := members()) and "vm-1" in m and m, 60, "vm-1 in the status")
            assert listed["vm-1"]["source"] == "external"
            assert (listed["vm-1"]["address"], listed["vm-1"]["port"]) == ("192.168.7.7", 9000)
            assert {i for i, m in listed.items() if m["source"] == "kubernetes"} == set(remaining)
            assert get_registry(kube_api, namespace, "web")["status"]["memberCount"] == 3
            # The operator left Curator's znode alone: same znode, same session.
            assert zk.exists(f"{path}/vm-1").ephemeralOwner == owner
        # Curator unregisters it when it stops; the status follows.
        eventually(lambda: "vm-1" not in members(), 60, "vm-1 gone from the status")
        assert registrar.process.returncode == 0
