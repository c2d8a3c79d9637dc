"""The inventory: every replica's in-memory view of the Kubernetes objects that matter.

Fed by kopf (handlers.py: registries, policies, namespaces, nodes) on kopf's thread and by one
reflector per kind (reflector.py: Pods, ReplicaSets, Deployments) on threads of their own, read
by the controller on its own; one lock guards it. It keeps the small `model` records, not the
objects, and the indexes that turn one pod event into the one registry it affects: pod ->
ReplicaSet -> Deployment -> annotated registry. A ReplicaSet belongs to the Deployment whose uid
its controlling ownerReference names, not to any of that name: one re-created under the name has
none of the old ReplicaSet's pods until it adopts them.

Two kinds of change reach the controller. A change of some pods is `on_pods(registry, uids)`:
it names the registry and those pods, and the controller plans each alone through
`instance(registry, uid)`, O(1) a pod. A pod event names its own pod; a change of a Deployment
names the pods of every ReplicaSet linked to it, and a ReplicaSet whose link changed the pods of
that ReplicaSet, each to the registries of the old record and of the new one (a registry that
the change took them out of plans their deletion): O(the pods affected), not O(the registry).
A registry is told of a change of its Deployments even when it affects no pod (a new
Deployment, a bad port annotation), with no uids: their problems show in its status. A change
that may affect every pod of a registry, of its spec, of admission (policies, namespace labels)
or of a node's zone, is `on_change(registries)`: the controller then plans the whole path. An
update equal to the record held (a Deployment's or ReplicaSet's status, rewritten whenever a
pod's readiness changes, is not part of the record) returns before telling anyone.

It is complete (`synced`) once every source has listed what it watches (`mark_synced`). A fresh
list of one kind in one scope replaces what the inventory held there (`replace_pods`,
`replace_replicasets`, `replace_deployments`), so that an object deleted while its watch was
broken goes away although no DELETED event ever came for it; the controller is told once per
list, of everything that the list changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from zkregistry.admission import Policy
from zkregistry.model import Deployment, Instance, Key, Pod, Problem, Registry, ReplicaSet, desired_instances

#: What feeds the inventory: kopf (registries, policies, namespaces, nodes) and the reflector of
#: each kind, named as `reflector.Kind.name`.
SOURCES = ("kopf", "pods", "replicasets", "deployments")


class Inventory:
    def __init__(
        self,
        on_change: Callable[[Iterable[Key]], None] = lambda keys: None,
        on_pods: Callable[[Key, set[str]], None] = lambda key, uids: None,
        sources: Iterable[str] = SOURCES,
    ) -> None:
        """`on_change(registry_keys)` is called after a change that may affect every pod of those
        registries; `on_pods(registry_key, uids)` after a change of those pods only, where `uids`
        is empty for a change of the registry's Deployments that affects none of its pods (the
        registry's status may still change). `sources` name the feeds that must each call
        `mark_synced` before the inventory is complete."""
        self.on_change = on_change
        self.on_pods = on_pods
        self.synced = threading.Event()  # set once every source has listed what it watches
        self._sources = frozenset(sources)
        self._unsynced = set(self._sources)
        self._lock = threading.Lock()
        self._registries: dict[Key, Registry] = {}
        self._deployments: dict[Key, Deployment] = {}
        self._replicasets: dict[Key, ReplicaSet] = {}
        self._pods: dict[Key, Pod] = {}
        self._uids: dict[str, Key] = {}  # pod uid -> pod
        # Indexes of names; a set that empties is dropped, so that nothing of the ReplicaSets of
        # past rollouts stays behind.
        self._pods_by_rs: dict[Key, set[str]] = {}
        self._rs_by_deployment: dict[Key, set[str]] = {}
        self._zones: dict[str, str] = {}  # node -> its topology.kubernetes.io/zone
        self._policies: dict[str, Policy] = {}  # RegistryPolicies, by name
        self._namespace_labels: dict[str, dict[str, str]] = {}
        #: Counts changes that may change admission (registries, policies, namespace labels).
        self.admission_version = 0
        #: When each serving pod was first seen serving (time.monotonic), for the latency metric.
        self.serving_since: dict[str, float] = {}

    # -- updates (the sources' threads) -----------------------------------------------------

    def mark_synced(self, source: str) -> None:
        """`source` has listed everything it watches; once every source has, `synced` is set."""
        if source not in self._sources:
            raise ValueError(f"unknown inventory source {source!r}; the sources are {sorted(self._sources)}")
        with self._lock:
            self._unsynced.discard(source)
            done = not self._unsynced
        if done:
            self.synced.set()

    def put_registry(self, registry: Registry) -> None:
        with self._lock:
            old = self._registries.get(registry.key)
            self._registries[registry.key] = registry
            if old == registry:  # only its status changed (not compared): nothing to plan
                return
            self.admission_version += 1
            affected = self._claimants(registry.service_path) | {registry.key}
            if old is not None and old.service_path != registry.service_path:
                affected |= self._claimants(old.service_path)
        self.on_change(affected)

    def remove_registry(self, key: Key) -> None:
        with self._lock:
            old = self._registries.pop(key, None)
            self.admission_version += 1
            affected = {key} | (self._claimants(old.service_path) if old else set())
        self.on_change(affected)

    def put_policy(self, policy: Policy) -> None:
        """A RegistryPolicy; every registry may be affected by a change of its spec."""
        with self._lock:
            if self._policies.get(policy.name) == policy:
                return
            self._policies[policy.name] = policy
            self.admission_version += 1
            affected = set(self._registries)
        self.on_change(affected)

    def remove_policy(self, name: str) -> None:
        with self._lock:
            if self._policies.pop(name, None) is None:
                return
            self.admission_version += 1
            affected = set(self._registries)
        self.on_change(affected)

    def put_namespace(self, name: str, labels: dict[str, str] | None) -> None:
        """A namespace's labels (None: the namespace is gone), for policies' namespace selectors."""
        with self._lock:
            if self._namespace_labels.get(name) == labels:
                return
            if labels is None:
                self._namespace_labels.pop(name, None)
            else:
                self._namespace_labels[name] = dict(labels)
            self.admission_version += 1
            affected = {k for k in self._registries if k[0] == name} if self._policies else set()
        self.on_change(affected)

    def put_deployment(self, deployment: Deployment) -> None:
        with self._lock:
            affected = self._put_deployment(deployment)
        self._tell(affected)

    def remove_deployment(self, key: Key) -> None:
        with self._lock:
            affected = self._remove_deployment(key)
        self._tell(affected)

    def replace_deployments(self, namespace: str | None, deployments: Iterable[Deployment]) -> None:
        """A fresh list of every Deployment in `namespace` (every namespace if None) replaces what
        the inventory holds there, as `replace_pods` does for pods; the controller is told once
        per registry affected, of the pods that the list changed."""
        self._replace(namespace, deployments, self._deployments, self._put_deployment, self._remove_deployment)

    def put_replicaset(self, replicaset: ReplicaSet) -> None:
        with self._lock:
            affected = self._put_replicaset(replicaset)
        self._tell(affected)

    def remove_replicaset(self, key: Key) -> None:
        with self._lock:
            affected = self._remove_replicaset(key)
        self._tell(affected)

    def replace_replicasets(self, namespace: str | None, replicasets: Iterable[ReplicaSet]) -> None:
        """A fresh list of every ReplicaSet in `namespace` (every namespace if None) replaces what
        the inventory holds there, as `replace_pods` does for pods; the controller is told once
        per registry affected, of the pods that the list changed."""
        self._replace(namespace, replicasets, self._replicasets, self._put_replicaset, self._remove_replicaset)

    def _replace(
        self,
        namespace: str | None,
        records: Iterable[Deployment] | Iterable[ReplicaSet],
        held: dict,
        put: Callable[..., dict[Key, set[str]]],
        remove: Callable[[Key], dict[Key, set[str]]],
    ) -> None:
        """Puts every record listed in `namespace` and removes those of `held` there that the list
        lacks; then tells the controller, once per registry affected, of the pods affected."""
        affected: dict[Key, set[str]] = {}
        with self._lock:
            listed: set[Key] = set()
            for record in records:
                listed.add(record.key)
                _merge(affected, put(record))
            for key in _unlisted(held, listed, namespace):
                _merge(affected, remove(key))
        self._tell(affected)

    def put_node(self, name: str, zone: str | None) -> None:
        """A node's zone; the registries that copy zones into metadata are told when it changes
        (rare: kwok's heartbeats and every other node update return at once)."""
        with self._lock:
            if self._zones.get(name) == zone:
                return
            if zone is None:
                self._zones.pop(name, None)
            else:
                self._zones[name] = zone
            affected = {
                key
                for key in self._registries_of_pods(*(p for p in self._pods.values() if p.node == name))
                if (r := self._registries.get(key)) is not None and r.zone
            }
        self.on_change(affected)

    def remove_node(self, name: str) -> None:
        self.put_node(name, None)

    def put_pod(self, pod: Pod) -> None:
        with self._lock:
            affected = self._put_pod(pod)
        self._tell(affected)

    def remove_pod(self, key: Key) -> None:
        with self._lock:
            affected = self._remove_pod(key)
        self._tell(affected)

    def replace_pods(self, namespace: str | None, pods: Iterable[Pod]) -> None:
        """A fresh list of every pod in `namespace` (every namespace if None) replaces what the
        inventory holds there: each listed pod is put, each known pod of that scope that the list
        lacks is removed, as client-go's DeltaFIFO.Replace does. The controller is told of the
        pods that changed, per registry."""
        affected: dict[Key, set[str]] = {}
        with self._lock:
            listed: set[Key] = set()
            for pod in pods:
                listed.add(pod.key)
                _merge(affected, self._put_pod(pod))
            for key in _unlisted(self._pods, listed, namespace):
                _merge(affected, self._remove_pod(key))
        self._tell(affected)

    def _tell(self, affected: dict[Key, set[str]]) -> None:
        for registry, uids in affected.items():
            self.on_pods(registry, uids)

    # -- queries (the controller's thread) --------------------------------------------------

    def registry(self, key: Key) -> Registry | None:
        with self._lock:
            return self._registries.get(key)

    def registries(self) -> list[Registry]:
        with self._lock:
            return list(self._registries.values())

    def policies(self) -> list[Policy]:
        with self._lock:
            return list(self._policies.values())

    def policy(self, name: str) -> Policy | None:
        with self._lock:
            return self._policies.get(name)

    def namespace_labels(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {k: dict(v) for k, v in self._namespace_labels.items()}

    def deployment(self, key: Key) -> Deployment | None:
        with self._lock:
            return self._deployments.get(key)

    def desired(self, registry: Registry) -> tuple[dict[str, Instance], list[Problem]]:
        """Every registration that `registry` wants, and its Deployments' problems. O(its pods)."""
        with self._lock:
            deployments = self._deployments_of(registry)
            pods_of = {
                d.name: [
                    self._pods[(d.namespace, pod)]
                    for rs in self._rs_by_deployment.get(d.key, ())
                    if (replicaset := self._replicasets[(d.namespace, rs)]).controlled_by(d)
                    for pod in self._pods_by_rs.get((d.namespace, rs), ())
                    if replicaset.owns(self._pods[(d.namespace, pod)])
                ]
                for d in deployments
            }
            zones = dict(self._zones) if registry.zone else None
        return desired_instances(registry, deployments, pods_of, zones=zones)

    def problems(self, registry: Registry) -> list[Problem]:
        """What keeps Deployments annotated for `registry` from registering. O(Deployments)."""
        with self._lock:
            deployments = self._deployments_of(registry)
        return desired_instances(registry, deployments, {})[1]

    def instance(self, registry: Registry, uid: str) -> Instance | None:
        """The registration that `registry` wants for pod `uid`, if any. O(1)."""
        with self._lock:
            key = self._uids.get(uid)
            pod = self._pods.get(key) if key is not None else None
            if pod is None or pod.namespace != registry.namespace or not pod.replicaset:
                return None
            deployment = self._deployment_of(pod)
            if deployment is None or deployment.registry != registry.name:
                return None
            zones = self._zones if registry.zone else None
            return desired_instances(registry, [deployment], {deployment.name: [pod]}, zones=zones)[0].get(uid)

    def orphaned_deployments(self) -> list[Deployment]:
        """Deployments annotated for a registry that does not exist in their namespace."""
        with self._lock:
            return [
                d
                for d in self._deployments.values()
                if d.registry and (d.namespace, d.registry) not in self._registries
            ]

    # -- index helpers (lock held) ----------------------------------------------------------

    def _put_pod(self, pod: Pod) -> dict[Key, set[str]]:
        """Stores `pod` (lock held); returns the registries it affects, with the uids to plan."""
        old = self._pods.get(pod.key)
        if old == pod:
            return {}
        self._pods[pod.key] = pod
        self._uids[pod.uid] = pod.key
        if old is not None and old.uid != pod.uid:  # re-created under the same name
            self._uids.pop(old.uid, None)
        if pod.serving and not (old and old.serving):
            self.serving_since[pod.uid] = time.monotonic()
        elif not pod.serving:
            self.serving_since.pop(pod.uid, None)
        if old is not None and old.replicaset != pod.replicaset and old.replicaset:
            _unindex(self._pods_by_rs, (old.namespace, old.replicaset), pod.name)
        if pod.replicaset:
            self._pods_by_rs.setdefault((pod.namespace, pod.replicaset), set()).add(pod.name)
        uids = {pod.uid} | ({old.uid} if old is not None else set())
        return _each(self._registries_of_pods(old, pod), uids)

    def _remove_pod(self, key: Key) -> dict[Key, set[str]]:
        """Forgets pod `key` (lock held); returns the registries it affects, with its uid."""
        old = self._pods.pop(key, None)
        if old is None:
            return {}
        self._uids.pop(old.uid, None)
        self.serving_since.pop(old.uid, None)
        if old.replicaset:
            _unindex(self._pods_by_rs, (old.namespace, old.replicaset), old.name)
        return _each(self._registries_of_pods(old), {old.uid})

    def _deployments_of(self, registry: Registry) -> list[Deployment]:
        return [
            d for d in self._deployments.values() if d.namespace == registry.namespace and d.registry == registry.name
        ]

    def _put_deployment(self, deployment: Deployment) -> dict[Key, set[str]]:
        """Stores `deployment` (lock held); returns the registries it affects, with the uids to
        plan (`_deployment_changed`), none if it equals the one held (an update of its status
        alone)."""
        old = self._deployments.get(deployment.key)
        if old == deployment:
            return {}
        self._deployments[deployment.key] = deployment
        return self._deployment_changed(deployment.key, old, deployment)

    def _remove_deployment(self, key: Key) -> dict[Key, set[str]]:
        """Forgets Deployment `key` (lock held); returns the registry it was annotated for, with
        the uids of its pods, whose registrations that registry now deletes."""
        return self._deployment_changed(key, self._deployments.pop(key, None))

    def _deployment_changed(self, key: Key, *records: Deployment | None) -> dict[Key, set[str]]:
        """What a change of Deployment `key` between `records` (old and new) affects (lock held):
        the pods of every ReplicaSet linked to it, O(those pods), for every registry that either
        record is annotated for. Each such registry is named even when no pod is affected: its
        status shows its Deployments' problems, and a new Deployment with a bad port annotation
        has no pods to name."""
        registries = _registry_keys(*records)
        uids = self._uids_of_replicasets(key[0], self._rs_by_deployment.get(key, ())) if registries else set()
        return _each(registries, uids)

    def _put_replicaset(self, replicaset: ReplicaSet) -> dict[Key, set[str]]:
        """Stores `replicaset`'s link to its Deployment (lock held); returns the registries of its
        old and its new Deployment, with the uids of its pods, none if the link is unchanged (an
        update of its status alone) or it has no pods: a ReplicaSet shows in no status, and a
        pod that comes later finds its registry through it."""
        key = replicaset.key
        old = self._replicasets.get(key)
        if old == replicaset:
            return {}
        self._replicasets[key] = replicaset
        if old is not None and old.deployment is not None:
            _unindex(self._rs_by_deployment, (key[0], old.deployment), key[1])
        if replicaset.deployment is not None:
            self._rs_by_deployment.setdefault((key[0], replicaset.deployment), set()).add(key[1])
        return self._replicaset_changed(key, old and old.deployment, replicaset.deployment)

    def _remove_replicaset(self, key: Key) -> dict[Key, set[str]]:
        """Forgets ReplicaSet `key` (lock held); returns the registry of its Deployment, with the
        uids of its pods, which lead to no registry any more."""
        old = self._replicasets.pop(key, None)
        if old is None or old.deployment is None:
            return {}
        _unindex(self._rs_by_deployment, (key[0], old.deployment), key[1])
        return self._replicaset_changed(key, old.deployment)

    def _replicaset_changed(self, key: Key, *deployments: str | None) -> dict[Key, set[str]]:
        """The pods of ReplicaSet `key`, O(them), for the registries of the Deployments named
        `deployments` (lock held); nothing if it has none."""
        uids = self._uids_of_replicasets(key[0], (key[1],))
        return _each(self._registries_of_deployments(key[0], set(deployments)), uids) if uids else {}

    def _uids_of_replicasets(self, namespace: str, names: Iterable[str]) -> set[str]:
        """The uids of the pods whose controlling ReplicaSet has one of `names` (lock held), as
        the index knows them: every pod whose registration a change of those ReplicaSets, or of
        their Deployment, may change. O(those pods)."""
        return {
            self._pods[(namespace, pod)].uid for name in names for pod in self._pods_by_rs.get((namespace, name), ())
        }

    def _deployment_of(self, pod: Pod) -> Deployment | None:
        """The Deployment that controls `pod`'s ReplicaSet, if any (lock held)."""
        replicaset = self._replicasets.get((pod.namespace, pod.replicaset)) if pod.replicaset else None
        if replicaset is None or replicaset.deployment is None or not replicaset.owns(pod):
            return None
        deployment = self._deployments.get((pod.namespace, replicaset.deployment))
        return deployment if replicaset.controlled_by(deployment) else None

    def _claimants(self, path: str) -> set[Key]:
        return {k for k, r in self._registries.items() if r.service_path == path}

    def _registries_of_deployments(self, namespace: str, names: Iterable[object]) -> set[Key]:
        deployments = (self._deployments.get((namespace, n)) for n in names if isinstance(n, str))
        return _registry_keys(*deployments)

    def _registries_of_pods(self, *pods: Pod | None) -> set[Key]:
        keys: set[Key] = set()
        for pod in pods:
            if pod is not None:
                keys |= _registry_keys(self._deployment_of(pod))
        return keys


def _unlisted(held: dict[Key, object], listed: set[Key], namespace: str | None) -> list[Key]:
    """The keys of `held` in `namespace` (every namespace if None) that a fresh list lacks."""
    return [k for k in held if k not in listed and (namespace is None or k[0] == namespace)]


def _unindex(index: dict[Key, set[str]], key: Key, name: str) -> None:
    """Removes `name` from `index[key]`, and the set once it is empty."""
    names = index.get(key)
    if names is not None:
        names.discard(name)
        if not names:
            del index[key]


def _each(registries: Iterable[Key], uids: set[str]) -> dict[Key, set[str]]:
    """Each of `registries` with a set of its own of `uids`, as `on_pods` is told them."""
    return {registry: set(uids) for registry in registries}


def _merge(into: dict[Key, set[str]], more: dict[Key, set[str]]) -> None:
    for key, uids in more.items():
        into.setdefault(key, set()).update(uids)


def _registry_keys(*deployments: Deployment | None) -> set[Key]:
    return {(d.namespace, d.registry) for d in deployments if d is not None and d.registry}
