"""Three replicas run from the operator's image (the `image_replicas` fixture: containers of the
built image, each with its own entrypoint and user, a read-only root, no shell, and the
ServiceAccount of deploy/ through in-cluster configuration), judged as test_ha.py judges the
process replicas: ZooKeeper holds exactly one registration per Ready pod, the status agrees, and
a SIGTERM to the leader hands over with no pod missing for a children watch, a watch per child or
Curator's ServiceCache, while another service churns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.test_ha import Churn, Scene, handover, handover_problems, ours, sole_leader
from interop.harness import CuratorProgram
from kit import apply_registry, create_deployment, get_registry
from zkregistry import api


@pytest.fixture(scope="module")
def program() -> CuratorProgram:
    return CuratorProgram.build()


@pytest.fixture
def scene(kube_api, zk, namespace, ensemble, program) -> Iterator[Scene]:
    """test_ha.py's scene: `web` (4 pods, stable, observed) and `churn`, each with its registry."""
    apply_registry(kube_api, namespace, "web")
    apply_registry(kube_api, namespace, "churn")
    create_deployment(kube_api, namespace, "web", replicas=4, registry="web")
    create_deployment(kube_api, namespace, "churn", replicas=2, registry="churn")
    stage = Scene(kube_api, zk, namespace, ensemble, program)
    yield stage
    stage.close()


def proc_status(pid: int) -> dict[str, str]:
    return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())


def test_replicas_from_the_image_register_and_hand_over(scene, image_replicas, service_account):
    started = image_replicas.start(3)

    # Each replica is the image's entrypoint, as the image's user, on a read-only root.
    for replica in started:
        pid = replica.container.init_pid()
        assert pid is not None, replica.output()[-2000:]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        assert argv[1:3] == [b"/opt/zkregistry/bin/zkregistry", b"run"], argv
        status = proc_status(pid)
        assert status["Uid"].split() == ["65532"] * 4 and status["Gid"].split() == ["65532"] * 4
        assert status["NSpid"].split()[-1] == "1"  # the container's first process, as in a pod
        root = next(line for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if line.split()[4] == "/")
        assert root.split()[5].split(",")[0] == "ro", root
        env = replica.container.spec["process"]["env"]
        assert not any(e.startswith("KUBECONFIG=") for e in env), "the ServiceAccount must be the only credential"

    # The registration scenario: every Ready pod registered, the status agrees (begin() waits
    # for that, for both services), and it names a replica of the image as the leader.
    scene.begin()
    leader = sole_leader(image_replicas)
    status = get_registry(scene.kube_api, scene.namespace, "web")["status"]
    assert status["leader"] == leader.name
    assert {m["id"] for m in status["members"] if m["source"] == "kubernetes"} == set(scene.pods)
    registry = get_registry(scene.kube_api, scene.namespace, "web")
    assert api.FINALIZER in registry["metadata"]["finalizers"]
    assert {r.uid: r.address for r in ours(scene.zk, scene.path, scene.namespace)} == scene.pods

    # SIGTERM to the leader's container, with churn: make-before-break, as with processes.
    with Churn(scene.kube_api, scene.namespace):
        h = handover(scene, image_replicas, leader)
    ended = time.time()
    scene.report(
        "image: graceful handover", h["signalled"], ended,
        exit_after_sigterm=h["exit"], successor_owns_all_after=h["owned"], successor=h["successor"].name,
    )
    problems = handover_problems(scene, h, ended)
    if leader.process.returncode != 0:
        problems.append(f"the old leader's container exited {leader.process.returncode}")
    scene.finish()
    assert not problems, "\n".join(problems)
