"""The inventory's Replace: a fresh list of pods, ReplicaSets or Deployments is the whole truth for
its scope, as client-go's DeltaFIFO.Replace makes it, and the controller is told once per registry,
of the pods the list changed; and the inventory is complete only once every source has listed."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from zkregistry.inventory import SOURCES, Inventory
from zkregistry.model import Deployment, Key, Pod, Registry, ReplicaSet


def pod(name: str, namespace: str = "a", ready: bool = True, replicaset: str = "web-1") -> Pod:
    return Pod.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{namespace}-{name}",
                "ownerReferences": [{"kind": "ReplicaSet", "name": replicaset, "controller": True}],
            },
            "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": str(ready)}]},
        }
    )


class Told(list):
    """What an inventory tells the controller, one entry per registry and call: (registry, the
    uids of its pods to plan) through `on_pods`, (registry, None) through `on_change`, a change
    that may affect every pod of it (a whole-path plan)."""

    def change(self, keys: Iterable[Key]) -> None:
        self.extend((key, None) for key in sorted(keys))

    def pods(self, key: Key, uids: set[str]) -> None:
        self.append((key, set(uids)))

    def inventory(self, sources: Iterable[str] = SOURCES) -> Inventory:
        """A fresh inventory that tells this."""
        return Inventory(on_change=self.change, on_pods=self.pods, sources=sources)


def inventory_with_registries(*namespaces: str) -> tuple[Inventory, dict]:
    """An inventory where, in each namespace, the pods of ReplicaSet web-1 register in "reg";
    and what it tells the controller: registry -> the pods to plan."""
    changed: dict = {}
    inventory = Inventory(on_pods=lambda key, uids: changed.setdefault(key, set()).update(uids))
    for ns in namespaces:
        inventory.put_registry(Registry.from_body({"metadata": {"name": "reg", "namespace": ns}, "spec": {}}))
        inventory.put_deployment(
            Deployment.from_body(
                {
                    "metadata": {"name": "web", "namespace": ns, "annotations": {"zkregistry.io/registry": "reg"}},
                    "spec": {"template": {"spec": {"containers": [{"ports": [{"containerPort": 8080}]}]}}},
                }
            )
        )
        inventory.put_replicaset(ReplicaSet(ns, "web-1", "web"))
    changed.clear()
    return inventory, changed


def desired(inventory: Inventory, namespace: str = "a") -> set[str]:
    return set(inventory.desired(inventory.registry((namespace, "reg")))[0])


def test_replace_removes_the_pods_missing_from_the_list_and_keeps_the_listed_ones():
    inventory, changed = inventory_with_registries("a")
    for name in ("p1", "p2", "p3"):
        inventory.put_pod(pod(name))
    assert desired(inventory) == {"uid-a-p1", "uid-a-p2", "uid-a-p3"}
    changed.clear()

    inventory.replace_pods("a", [pod("p1"), pod("p3", ready=False), pod("p4")])

    assert desired(inventory) == {"uid-a-p1", "uid-a-p4"}  # p2 gone, p3 no longer Ready, p4 new
    assert changed == {("a", "reg"): {"uid-a-p2", "uid-a-p3", "uid-a-p4"}}, "exactly the pods that changed"
    assert set(inventory.serving_since) == {"uid-a-p1", "uid-a-p4"}


def test_replace_with_an_unchanged_list_changes_nothing():
    inventory, changed = inventory_with_registries("a")
    inventory.put_pod(pod("p1"))
    changed.clear()
    inventory.replace_pods("a", [pod("p1")])
    assert changed == {}
    assert desired(inventory) == {"uid-a-p1"}


def test_replace_of_a_namespace_leaves_other_namespaces_alone():
    inventory, changed = inventory_with_registries("a", "b")
    inventory.put_pod(pod("p1", "a"))
    inventory.put_pod(pod("p1", "b"))
    inventory.put_pod(pod("p2", "b"))
    changed.clear()

    inventory.replace_pods("a", [])  # namespace "a" is now empty; "b" was not listed

    assert desired(inventory, "a") == set()
    assert desired(inventory, "b") == {"uid-b-p1", "uid-b-p2"}
    assert changed == {("a", "reg"): {"uid-a-p1"}}


def test_replace_of_every_namespace():
    inventory, changed = inventory_with_registries("a", "b")
    inventory.put_pod(pod("p1", "a"))
    inventory.put_pod(pod("p1", "b"))
    changed.clear()

    inventory.replace_pods(None, [pod("p2", "b")])

    assert desired(inventory, "a") == set()
    assert desired(inventory, "b") == {"uid-b-p2"}
    assert changed == {("a", "reg"): {"uid-a-p1"}, ("b", "reg"): {"uid-b-p1", "uid-b-p2"}}


def web(namespace: str, registry: str | None = "reg", port: int = 8080) -> Deployment:
    annotations = {"zkregistry.io/registry": registry} if registry else {}
    return Deployment.from_body(
        {
            "metadata": {"name": "web", "namespace": namespace, "annotations": annotations},
            "spec": {"template": {"spec": {"containers": [{"ports": [{"containerPort": port}]}]}}},
            "status": {"readyReplicas": 1},
        }
    )


def with_told(*namespaces: str) -> tuple[Inventory, Told]:
    """`inventory_with_registries` with pod p1 in each namespace; and what it tells the
    controller from then on."""
    inventory, _ = inventory_with_registries(*namespaces)
    for ns in namespaces:
        inventory.put_pod(pod("p1", ns))
    told = Told()
    inventory.on_change, inventory.on_pods = told.change, told.pods
    return inventory, told


def test_replace_replicasets_removes_the_missing_ones_and_tells_the_controller_once():
    inventory, told = with_told("a", "b")
    inventory.put_replicaset(ReplicaSet("a", "web-0", "web"))
    inventory.put_replicaset(ReplicaSet("a", "loose", None))
    inventory.put_pod(pod("p0", "a", replicaset="web-0"))
    assert desired(inventory, "a") == {"uid-a-p0", "uid-a-p1"}
    told.clear()

    # web-1 and web-0 of namespace "a" were deleted while the watch was away; web-2 is new.
    inventory.replace_replicasets("a", [ReplicaSet("a", "loose", None), ReplicaSet("a", "web-2", "web")])

    assert desired(inventory, "a") == set(), "the pods of the deleted ReplicaSets lead nowhere"
    assert desired(inventory, "b") == {"uid-b-p1"}, "another namespace is left alone"
    assert told == [(("a", "reg"), {"uid-a-p0", "uid-a-p1"})], "once, with the pods of three ReplicaSets"


def test_replace_replicasets_of_every_namespace_tells_the_union_once():
    inventory, told = with_told("a", "b")
    inventory.replace_replicasets(None, [ReplicaSet("b", "web-1", "web")])
    assert desired(inventory, "a") == set() and desired(inventory, "b") == {"uid-b-p1"}
    assert told == [(("a", "reg"), {"uid-a-p1"})]

    inventory.replace_replicasets(None, [])
    assert desired(inventory, "b") == set()
    assert told == [(("a", "reg"), {"uid-a-p1"}), (("b", "reg"), {"uid-b-p1"})]


def test_replace_replicasets_with_an_unchanged_list_changes_nothing():
    inventory, told = with_told("a", "b")
    inventory.replace_replicasets(None, [ReplicaSet("a", "web-1", "web"), ReplicaSet("b", "web-1", "web")])
    assert told == []
    assert desired(inventory, "a") == {"uid-a-p1"}


def test_replace_deployments_removes_the_missing_ones_and_tells_the_union_once():
    inventory, told = with_told("a", "b", "c")

    # "a"'s web was deleted while the watch was away, "b"'s moved to port 9090, "c"'s only
    # changed its status (not part of the record).
    inventory.replace_deployments(None, [web("b", port=9090), web("c")])

    assert desired(inventory, "a") == set()
    assert inventory.deployment(("b", "web")).ports == (("", 9090),)
    assert desired(inventory, "c") == {"uid-c-p1"}
    assert sorted(told) == [(("a", "reg"), {"uid-a-p1"}), (("b", "reg"), {"uid-b-p1"})], "once per registry"


def test_replace_deployments_of_a_namespace_leaves_other_namespaces_alone():
    inventory, told = with_told("a", "b")
    inventory.replace_deployments("a", [web("a", registry=None)])  # "a"'s web opted out
    assert desired(inventory, "a") == set() and desired(inventory, "b") == {"uid-b-p1"}
    assert told == [(("a", "reg"), {"uid-a-p1"})]


def test_replace_deployments_with_only_their_status_changed_changes_nothing():
    inventory, told = with_told("a", "b")
    inventory.replace_deployments(None, [web("a"), web("b")])
    inventory.put_deployment(web("a"))
    assert told == []


def test_synced_only_once_every_source_has_listed():
    inventory = Inventory(sources=("kopf", "pods"))
    assert not inventory.synced.is_set()
    inventory.mark_synced("kopf")
    inventory.mark_synced("kopf")  # kopf reports its CRD again on every change: no harm
    assert not inventory.synced.is_set()
    inventory.mark_synced("pods")
    assert inventory.synced.is_set()


def test_the_default_sources_are_kopf_and_the_reflector_of_each_kind():
    inventory = Inventory()
    for source in ("pods", "replicasets", "deployments"):
        inventory.mark_synced(source)
        assert not inventory.synced.is_set()
    inventory.mark_synced("kopf")
    assert inventory.synced.is_set()


def test_an_unknown_source_is_refused():
    inventory = Inventory(sources=("kopf",))
    with pytest.raises(ValueError, match="unknown inventory source 'pods'"):
        inventory.mark_synced("pods")
    assert not inventory.synced.is_set()


def _owned(kind: str, name: str, uid: str, owner_kind: str, owner: str, owner_uid: str) -> dict:
    reference = {"kind": owner_kind, "name": owner, "uid": owner_uid, "controller": True}
    return {"kind": kind, "metadata": {"name": name, "namespace": "a", "uid": uid, "ownerReferences": [reference]}}


def test_an_old_pod_does_not_join_a_new_replicaset_of_its_replicasets_name():
    """`kubectl replace --force` of a Deployment with the same pod template: its ReplicaSet is
    deleted at once and the new Deployment's is created under the same name (the same template
    hash), while the garbage collector has yet to delete the old pods. They belong to the old
    ReplicaSet's uid, and must not be registered for the new Deployment's registry meanwhile."""
    inventory = Inventory()
    for name in ("old", "new"):
        inventory.put_registry(Registry.from_body({"metadata": {"name": name, "namespace": "a"}, "spec": {}}))

    def deployment(uid: str, registry: str) -> Deployment:
        return Deployment.from_body(
            {
                "metadata": {
                    "name": "web",
                    "namespace": "a",
                    "uid": uid,
                    "annotations": {"zkregistry.io/registry": registry},
                },
                "spec": {"template": {"spec": {"containers": [{"ports": [{"containerPort": 8080}]}]}}},
            }
        )

    old_pod = Pod.from_body(
        {
            **_owned("Pod", "p1", "uid-p1", "ReplicaSet", "web-5d8", "rs1"),
            "spec": {"containers": [{"ports": [{"containerPort": 8080}]}]},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
        }
    )
    assert old_pod.replicaset_uid == "rs1"
    inventory.put_deployment(deployment("d1", "old"))
    inventory.put_replicaset(ReplicaSet.from_body(_owned("ReplicaSet", "web-5d8", "rs1", "Deployment", "web", "d1")))
    inventory.put_pod(old_pod)
    old, new = inventory.registry(("a", "old")), inventory.registry(("a", "new"))
    assert set(inventory.desired(old)[0]) == {"uid-p1"}

    inventory.remove_deployment(("a", "web"))
    inventory.remove_replicaset(("a", "web-5d8"))
    inventory.put_deployment(deployment("d2", "new"))
    inventory.put_replicaset(ReplicaSet.from_body(_owned("ReplicaSet", "web-5d8", "rs2", "Deployment", "web", "d2")))

    assert inventory.instance(new, "uid-p1") is None, "an old pod registered for the new Deployment"
    assert set(inventory.desired(new)[0]) == set()
