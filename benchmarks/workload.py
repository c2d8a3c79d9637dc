"""The benchmark's workload in one namespace: a few ServiceRegistries, Deployments of 100 pods
each annotated for one of them in turn, and a Service per Deployment selecting the same pods (so
that the EndpointSlice controller mirrors the very readiness that zkregistry does)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import kubernetes

from zkregistry import api

PODS_PER_DEPLOYMENT = 100
REGISTRIES = 5


@dataclass
class Workload:
    kube_api: object
    namespace: str
    pods: int

    @property
    def deployments(self) -> list[str]:
        count = max(1, -(-self.pods // PODS_PER_DEPLOYMENT))
        return [f"d{i:03d}" for i in range(count)]

    @property
    def registries(self) -> list[str]:
        return [f"r{i}" for i in range(min(REGISTRIES, len(self.deployments)))]

    @property
    def base_path(self) -> str:
        """Under /services, the prefix that the operator grants every namespace by default."""
        return f"/services/{self.namespace}"

    @property
    def paths(self) -> list[str]:
        return [f"{self.base_path}/{r}" for r in self.registries]

    def replicas_of(self, index: int) -> int:
        size = len(self.deployments)
        return self.pods // size + (1 if index < self.pods % size else 0)

    def registry_of(self, index: int) -> str:
        return self.registries[index % len(self.registries)]

    def prepare(self) -> None:
        """The namespace, the registries and the Services: everything but the pods."""
        core = kubernetes.client.CoreV1Api(self.kube_api)
        core.create_namespace({"metadata": {"name": self.namespace}})
        custom = kubernetes.client.CustomObjectsApi(self.kube_api)
        for name in self.registries:
            create_registry(custom, self.namespace, name, self.base_path)
        for name in self.deployments:
            core.create_namespaced_service(
                self.namespace,
                {
                    "metadata": {"name": name},
                    "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
                },
            )

    def create_deployments(self, names: list[str], annotated: bool = True) -> None:
        """Creates Deployments (a few at a time: one by one is slow on a busy apiserver); the
        controllers make the pods."""
        apps = kubernetes.client.AppsV1Api(self.kube_api)
        index = {name: i for i, name in enumerate(self.deployments)}
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda name: apps.create_namespaced_deployment(
                        self.namespace, self._deployment(name, index[name], annotated)
                    ),
                    names,
                )
            )

    def annotate(self, names: list[str]) -> None:
        """Opts Deployments in: the annotation for their registry."""
        apps = kubernetes.client.AppsV1Api(self.kube_api)
        index = {name: i for i, name in enumerate(self.deployments)}
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda name: apps.patch_namespaced_deployment(
                        name,
                        self.namespace,
                        {"metadata": {"annotations": {api.REGISTRY_ANNOTATION: self.registry_of(index[name])}}},
                    ),
                    names,
                )
            )

    def _deployment(self, name: str, index: int, annotated: bool) -> dict:
        annotations = {api.REGISTRY_ANNOTATION: self.registry_of(index)} if annotated else {}
        return deployment_body(name, self.replicas_of(index), annotations, surge="25%", unavailable="25%")

    def sizes(self, fraction: float) -> dict[str, int]:
        return {name: round(self.replicas_of(i) * fraction) for i, name in enumerate(self.deployments)}

    def scale_all(self, fraction: float) -> int:
        """Scales every Deployment to `fraction` of its size; returns the new total of pods."""
        apps = kubernetes.client.AppsV1Api(self.kube_api)
        sizes = self.sizes(fraction)
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda item: apps.patch_namespaced_deployment_scale(
                        item[0], self.namespace, {"spec": {"replicas": item[1]}}
                    ),
                    sizes.items(),
                )
            )
        return sum(sizes.values())

    def roll(self, count: int, revision: str) -> list[str]:
        """A rolling update of the first `count` Deployments (a new pod template annotation)."""
        apps = kubernetes.client.AppsV1Api(self.kube_api)
        names = self.deployments[:count]
        for name in names:
            apps.patch_namespaced_deployment(
                name,
                self.namespace,
                {"spec": {"template": {"metadata": {"annotations": {"bench.zkregistry.io/revision": revision}}}}},
            )
        return names

    def rolled_out(self, names: list[str]) -> bool:
        apps = kubernetes.client.AppsV1Api(self.kube_api)
        for name in names:
            d = apps.read_namespaced_deployment_status(name, self.namespace)
            s = d.status
            if not (
                (s.observed_generation or 0) >= d.metadata.generation
                and s.updated_replicas == d.spec.replicas
                and s.replicas == d.spec.replicas
                and s.available_replicas == d.spec.replicas
            ):
                return False
        return True

    def delete(self) -> None:
        kubernetes.client.CoreV1Api(self.kube_api).delete_namespace(self.namespace)

    def gone(self) -> bool:
        try:
            kubernetes.client.CoreV1Api(self.kube_api).read_namespace(self.namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return True
            raise
        return False


def create_registry(custom: kubernetes.client.CustomObjectsApi, namespace: str, name: str, base_path: str) -> None:
    """Creates ServiceRegistry `name`, registering each pod's port named http under `base_path`."""
    custom.create_namespaced_custom_object(
        api.GROUP,
        api.VERSION,
        namespace,
        api.PLURAL,
        {
            "apiVersion": f"{api.GROUP}/{api.VERSION}",
            "kind": api.KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"basePath": base_path, "port": "http"},
        },
    )


def deployment_body(
    name: str, replicas: int, annotations: dict[str, str], surge: int | str, unavailable: int | str
) -> dict:
    """A Deployment of `replicas` pods labelled app=`name`, each with one container port named http
    (8080), rolled out with this `maxSurge` and `maxUnavailable`."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": labels},
            "strategy": {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "app",
                            "image": "example.invalid/app:1",
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ],
                },
            },
        },
    }
