"""The local control plane is real: controllers, scheduler and kwok make a Deployment's pods
Ready and the EndpointSlice controller publishes them."""

from __future__ import annotations

import kubernetes

from conftest import eventually
from kit import create_deployment, ready_pods


def test_deployment_pods_ready_and_endpointslice(kube_api, namespace):
    create_deployment(kube_api, namespace, "web", replicas=3)
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    pods = eventually(lambda: (p := ready_pods(kube_api, namespace, "web")) and len(p) == 3 and p, 60, "3 Ready pods")

    discovery = kubernetes.client.DiscoveryV1Api(kube_api)

    def ready_endpoints() -> set[str]:
        slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector="kubernetes.io/service-name=web")
        return {
            address
            for s in slices.items
            for e in s.endpoints or ()
            if e.conditions and e.conditions.ready
            for address in e.addresses
        }

    eventually(lambda: ready_endpoints() == set(pods.values()), 60, "an EndpointSlice with 3 ready endpoints")
