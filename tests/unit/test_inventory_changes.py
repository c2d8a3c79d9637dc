"""What a change of a Deployment or a ReplicaSet tells the controller: the pods it leads to, through
`on_pods`, for the registry of the old record and of the new one, never a whole-path `on_change`;
so that one Deployment of a registry of thousands of pods costs the plans of its own pods."""

from __future__ import annotations

from unit.test_inventory_replace import Told, pod
from zkregistry.inventory import Inventory
from zkregistry.model import Deployment, Registry, ReplicaSet

REG, OTHER = ("a", "reg"), ("a", "other")
WEB = {"uid-a-w1", "uid-a-w2", "uid-a-w3"}  # the pods of Deployment web, in two ReplicaSets
API = {"uid-a-api1"}


def deployment(name: str, registry: str | None = "reg", port: str | None = None) -> Deployment:
    return Deployment("a", name, f"d-{name}", registry, port, (("http", 8080),))


def two_deployments() -> tuple[Inventory, Told]:
    """Registries "reg" and "other"; Deployments web (ReplicaSets web-1 and web-2, the latter a
    rollout in progress) and api, both annotated for "reg", every pod Ready; and what the
    inventory tells the controller from then on."""
    told = Told()
    inventory = told.inventory()
    for name in ("reg", "other"):
        inventory.put_registry(Registry.from_body({"metadata": {"name": name, "namespace": "a"}, "spec": {}}))
    for name in ("web", "api"):
        inventory.put_deployment(deployment(name))
    for rs, owner in (("web-1", "web"), ("web-2", "web"), ("api-1", "api")):
        inventory.put_replicaset(ReplicaSet("a", rs, owner))
    for name, rs in (("w1", "web-1"), ("w2", "web-1"), ("w3", "web-2"), ("api1", "api-1")):
        inventory.put_pod(pod(name, replicaset=rs))
    assert set(inventory.desired(inventory.registry(REG))[0]) == WEB | API
    told.clear()
    return inventory, told


def instance_port(inventory: Inventory, key: tuple[str, str], uid: str) -> int | None:
    instance = inventory.instance(inventory.registry(key), uid)
    return instance.port if instance is not None else None


def test_a_deployment_change_names_its_own_pods_alone():
    inventory, told = two_deployments()
    inventory.put_deployment(deployment("web", port="9090"))
    assert told == [(REG, WEB)], "the pods of both of web's ReplicaSets, none of api's, and no whole-path plan"
    assert {instance_port(inventory, REG, uid) for uid in WEB} == {9090}
    assert instance_port(inventory, REG, "uid-a-api1") == 8080


def test_an_annotation_moved_to_another_registry_names_the_pods_to_both():
    inventory, told = two_deployments()
    inventory.put_deployment(deployment("web", registry="other"))
    assert sorted(told) == [(OTHER, WEB), (REG, WEB)]
    for uid in WEB:  # "reg" plans their deletion, "other" their creation
        assert instance_port(inventory, REG, uid) is None and instance_port(inventory, OTHER, uid) == 8080

    told.clear()
    inventory.put_deployment(deployment("web", registry=None))  # opted out
    assert told == [(OTHER, WEB)]


def test_a_removed_deployment_names_its_pods():
    inventory, told = two_deployments()
    inventory.remove_deployment(("a", "web"))
    assert told == [(REG, WEB)]
    assert all(instance_port(inventory, REG, uid) is None for uid in WEB)
    inventory.remove_deployment(("a", "web"))  # gone already: nothing to tell
    assert told == [(REG, WEB)]


def test_a_relinked_replicaset_names_its_pods_to_the_registries_of_both_deployments():
    inventory, told = two_deployments()
    inventory.put_deployment(deployment("api", registry="other"))
    told.clear()

    inventory.put_replicaset(ReplicaSet("a", "web-2", "api"))  # web-2 now api's (annotated for "other")
    assert sorted(told) == [(OTHER, {"uid-a-w3"}), (REG, {"uid-a-w3"})], "web-2's pod alone"
    assert instance_port(inventory, REG, "uid-a-w3") is None and instance_port(inventory, OTHER, "uid-a-w3") == 8080

    told.clear()
    inventory.put_replicaset(ReplicaSet("a", "web-2", None))  # orphaned
    assert told == [(OTHER, {"uid-a-w3"})]
    told.clear()
    inventory.remove_replicaset(("a", "web-1"))
    assert told == [(REG, {"uid-a-w1", "uid-a-w2"})]
    assert set(inventory.desired(inventory.registry(REG))[0]) == set()
    assert set(inventory.desired(inventory.registry(OTHER))[0]) == API


def test_a_replicaset_without_pods_tells_nobody():
    """A rollout's new ReplicaSet has no pods yet; the pods that come find their registry
    through it, and a ReplicaSet shows in no status."""
    inventory, told = two_deployments()
    inventory.put_replicaset(ReplicaSet("a", "web-3", "web"))
    inventory.put_replicaset(ReplicaSet("a", "web-3", "api"))
    inventory.remove_replicaset(("a", "web-3"))
    assert told == []


def test_a_new_deployment_without_pods_still_names_its_registry_for_its_problems():
    """Its pods are not made yet, but a bad port annotation shows in the registry's status and
    Events at once: the registry is told, of no pod, so that the controller reports it."""
    inventory, told = two_deployments()
    inventory.put_deployment(deployment("bad", port="70000"))
    assert told == [(REG, set())]
    problems = inventory.problems(inventory.registry(REG))
    assert [(p.reason, p.deployment) for p in problems] == [("InvalidPort", ("a", "bad"))]

    told.clear()
    inventory.remove_deployment(("a", "bad"))  # its problem goes from the status
    assert told == [(REG, set())]
    inventory.put_deployment(deployment("loose", registry=None))  # annotated for nothing
    assert told == [(REG, set())]


def test_a_relist_of_deployments_names_each_registry_once_with_every_pod_it_changed():
    inventory, told = two_deployments()
    inventory.replace_deployments("a", [deployment("web", registry="other"), deployment("bad", port="70000")])
    # web moved to "other"; api was deleted while the watch was away; bad is new.
    assert sorted(told) == [(OTHER, WEB), (REG, WEB | API)]
