"""The soak's workload: three ServiceRegistries in one namespace, Deployments that churn all the
time, and Deployments that are never touched, whose pods the observers watch for absences.

    workload = Workload(kube_api, "soak", random.Random(seed))
    workload.prepare()                 # namespace, RegistryPolicy, registries, Deployments
    workload.churn(stop_event)         # on its own thread until stop_event is set

Every registry's path is `/soak/<registry>`. A RegistryPolicy grants `/soak` to the namespace with
`allowExternalMembers`, so that the nemesis's foreign writers may share the paths.

Deployments:
- `steady-<i>` (3 pods, registry r<i>): never changed by the churn. Their pods stay Ready for the
  whole run, so any moment in which a client misses one of them is the operator's doing.
- `churn-0` (r0), `churn-1` (r1): scaled between 3 and 8 pods, rolled, pods deleted, readiness
  flipped.
- `mover` (3 to 5 pods): its annotation moves between r1 and r2.
And r2's spec is edited (metadata.podLabels added and removed), which rewrites its registrations.

Every action tolerates a failing API server (the nemesis restarts it): a failed action is counted
and the churn goes on.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import kubernetes

from benchmarks.workload import create_registry, deployment_body
from zkregistry import api

REGISTRIES = ("r0", "r1", "r2")
BASE_PATH = "/soak"
STEADY = {"steady-0": "r0", "steady-1": "r1", "steady-2": "r2"}
CHURNED = {"churn-0": "r0", "churn-1": "r1", "mover": "r1"}
MOVER_REGISTRIES = ("r1", "r2")
STEADY_PODS = 3
POLICY = "soak"


@dataclass
class Workload:
    kube_api: object
    namespace: str
    rng: random.Random
    #: seconds between two churn actions, drawn uniformly
    pace: tuple[float, float] = (1.5, 5.0)
    actions: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    _unready: dict[str, float] = field(default_factory=dict)  # pod name -> when to make it Ready again

    @property
    def paths(self) -> dict[str, str]:
        """registry name -> its service path."""
        return {r: f"{BASE_PATH}/{r}" for r in REGISTRIES}

    # -- set-up -----------------------------------------------------------------------------------

    def prepare(self) -> None:
        core = kubernetes.client.CoreV1Api(self.kube_api)
        custom = kubernetes.client.CustomObjectsApi(self.kube_api)
        core.create_namespace({"metadata": {"name": self.namespace}})
        custom.create_cluster_custom_object(
            api.GROUP,
            api.VERSION,
            api.POLICY_PLURAL,
            {
                "apiVersion": f"{api.GROUP}/{api.VERSION}",
                "kind": api.POLICY_KIND,
                "metadata": {"name": POLICY},
                "spec": {"namespaces": [self.namespace], "pathPrefixes": [BASE_PATH], "allowExternalMembers": True},
            },
        )
        for name in REGISTRIES:
            create_registry(custom, self.namespace, name, BASE_PATH)
        apps = kubernetes.client.AppsV1Api(self.kube_api)
        for name, registry in {**STEADY, **CHURNED}.items():
            size = STEADY_PODS if name in STEADY else self.rng.randint(3, 6)
            apps.create_namespaced_deployment(self.namespace, deployment(name, registry, size))

    # -- reading ----------------------------------------------------------------------------------

    def desired(self) -> tuple[dict[str, dict[str, str]], str]:
        """registry -> {pod uid: pod IP} of the Ready, not terminating pods of the Deployments
        annotated for it, and the pods' list resourceVersion (equal versions: the same state)."""
        apps = kubernetes.client.AppsV1Api(self.kube_api)
        core = kubernetes.client.CoreV1Api(self.kube_api)
        registry_of = {
            d.metadata.name: (d.metadata.annotations or {}).get(api.REGISTRY_ANNOTATION)
            for d in apps.list_namespaced_deployment(self.namespace).items
        }
        pods = core.list_namespaced_pod(self.namespace)
        out: dict[str, dict[str, str]] = {r: {} for r in REGISTRIES}
        for pod in pods.items:
            registry = registry_of.get((pod.metadata.labels or {}).get("app", ""))
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())
            if registry in out and ready and pod.metadata.deletion_timestamp is None and pod.status.pod_ip:
                out[registry][pod.metadata.uid] = pod.status.pod_ip
        return out, pods.metadata.resource_version

    def steady_pods(self) -> dict[str, set[str]]:
        """registry -> uids of the Ready pods of its steady Deployment."""
        core = kubernetes.client.CoreV1Api(self.kube_api)
        out: dict[str, set[str]] = {r: set() for r in REGISTRIES}
        for name, registry in STEADY.items():
            for pod in core.list_namespaced_pod(self.namespace, label_selector=f"app={name}").items:
                if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ()):
                    out[registry].add(pod.metadata.uid)
        return out

    def steady_ready(self) -> bool:
        return all(len(uids) == STEADY_PODS for uids in self.steady_pods().values())

    # -- churn ------------------------------------------------------------------------------------

    def churn(self, stop: threading.Event) -> None:
        """One random action every `pace` seconds until `stop` is set; pods made not Ready are
        made Ready again a few seconds later."""
        actions = {
            "scale": self.scale,
            "roll": self.roll,
            "flip": self.flip,
            "delete-pod": self.delete_pod,
            "move-annotation": self.move,
            "edit-registry": self.edit_registry,
        }
        weights = {"scale": 3, "roll": 1, "flip": 3, "delete-pod": 2, "move-annotation": 1, "edit-registry": 1}
        names = list(actions)
        while not stop.wait(self.rng.uniform(*self.pace)):
            self._ready_again()
            kind = self.rng.choices(names, [weights[n] for n in names])[0]
            try:
                actions[kind]()
                self.actions[kind] += 1
            except Exception:  # the API server is down or restarting: the churn goes on
                self.failures[kind] += 1
        self._ready_again(everyone=True)

    def scale(self) -> None:
        name = self.rng.choice(["churn-0", "churn-1", "mover"])
        size = self.rng.randint(3, 5 if name == "mover" else 8)
        kubernetes.client.AppsV1Api(self.kube_api).patch_namespaced_deployment_scale(
            name, self.namespace, {"spec": {"replicas": size}}
        )

    def roll(self) -> None:
        name = self.rng.choice(["churn-0", "churn-1"])
        revision = str(self.rng.getrandbits(32))
        patch = {"spec": {"template": {"metadata": {"annotations": {"soak.zkregistry.io/revision": revision}}}}}
        kubernetes.client.AppsV1Api(self.kube_api).patch_namespaced_deployment(name, self.namespace, patch)

    def _churned_pod(self) -> str | None:
        core = kubernetes.client.CoreV1Api(self.kube_api)
        pods = [
            p.metadata.name
            for p in core.list_namespaced_pod(self.namespace).items
            if (p.metadata.labels or {}).get("app") in CHURNED and p.metadata.deletion_timestamp is None
        ]
        return self.rng.choice(sorted(pods)) if pods else None

    def flip(self) -> None:
        """Makes a churned pod not Ready (as a failing readiness probe would) for 2 to 6 s."""
        name = self._churned_pod()
        if name and name not in self._unready:
            set_ready(self.kube_api, self.namespace, name, False)
            self._unready[name] = time.monotonic() + self.rng.uniform(2, 6)

    def _ready_again(self, everyone: bool = False) -> None:
        now = time.monotonic()
        for name, when in list(self._unready.items()):
            if everyone or when <= now:
                try:
                    set_ready(self.kube_api, self.namespace, name, True)
                except kubernetes.client.ApiException as error:
                    if error.status != 404:  # a deleted pod needs nothing
                        continue  # tried again at the next action
                except Exception:
                    continue
                del self._unready[name]

    def delete_pod(self) -> None:
        name = self._churned_pod()
        if name:
            kubernetes.client.CoreV1Api(self.kube_api).delete_namespaced_pod(name, self.namespace)

    def move(self) -> None:
        apps = kubernetes.client.AppsV1Api(self.kube_api)
        current = (apps.read_namespaced_deployment("mover", self.namespace).metadata.annotations or {}).get(
            api.REGISTRY_ANNOTATION
        )
        target = next(r for r in MOVER_REGISTRIES if r != current)
        apps.patch_namespaced_deployment(
            "mover", self.namespace, {"metadata": {"annotations": {api.REGISTRY_ANNOTATION: target}}}
        )

    def edit_registry(self) -> None:
        """Adds or removes metadata.podLabels on r2: every registration of r2 is rewritten in place."""
        custom = kubernetes.client.CustomObjectsApi(self.kube_api)
        body = custom.get_namespaced_custom_object(api.GROUP, api.VERSION, self.namespace, api.PLURAL, "r2")
        labels = ((body.get("spec") or {}).get("metadata") or {}).get("podLabels") or []
        custom.patch_namespaced_custom_object(
            api.GROUP,
            api.VERSION,
            self.namespace,
            api.PLURAL,
            "r2",
            {"spec": {"metadata": {"podLabels": [] if labels else ["app"]}}},
        )


def deployment(name: str, registry: str, replicas: int) -> dict:
    return deployment_body(name, replicas, {api.REGISTRY_ANNOTATION: registry}, surge=1, unavailable=0)


def set_ready(kube_api, namespace: str, pod: str, ready: bool) -> None:
    """Flips a pod's Ready and ContainersReady conditions as a kubelet would."""
    core = kubernetes.client.CoreV1Api(kube_api)
    body = core.read_namespaced_pod_status(pod, namespace)
    conditions = [
        {
            "type": c.type,
            "status": ("True" if ready else "False") if c.type in ("Ready", "ContainersReady") else c.status,
        }
        for c in body.status.conditions or ()
    ]
    core.patch_namespaced_pod_status(pod, namespace, {"status": {"conditions": conditions}})
