"""Plain data for what zkregistry knows about Kubernetes, and the desired registrations it implies.

Everything here is pure: built from Kubernetes object bodies, compared by value, no I/O. The
`Inventory` (inventory.py) holds these objects; the controller asks `desired_instances` what
ZooKeeper should hold for one service path.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zkregistry import api

Key = tuple[str, str]  # (namespace, name)


def _key(body: Mapping) -> Key:
    meta = body.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _controller_ref(body: Mapping, kind: str) -> Mapping:
    """The ownerReference of the `kind` that controls `body`; empty if none does."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("kind") == kind and ref.get("controller"):
            return ref
    return {}


def _controller_owner(body: Mapping, kind: str) -> str | None:
    return _controller_ref(body, kind).get("name")


def _epoch_ms(timestamp: str | None) -> int:
    if not timestamp:
        return 0
    return int(dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


#: `additionalPorts` value that means every named container port (the default).
ALL_PORTS = "*"
POD_IP, HOST_IP = "PodIP", "HostIP"
ZONE_LABEL = "topology.kubernetes.io/zone"
ZONE_KEY = "zone"  # the metadata key of the node's zone


@dataclass(frozen=True, slots=True)
class Registry:
    """A ServiceRegistry object: where and how its members are registered.

    The settings after `port` mirror the spec fields of the same meaning (see the CRD):
    `additionalPorts`, `metadata.podLabels`, `metadata.zone`, `address`, `drainTerminating`.
    """

    namespace: str
    name: str
    uid: str
    service_name: str
    base_path: str
    format: str = "curator"
    port: str | int | None = None  # container port name or number; None: the first declared port
    additional_ports: tuple[str, ...] = (ALL_PORTS,)  # named extra endpoints; ("*",): every named port
    pod_labels: tuple[str, ...] = ()  # pod label keys copied into metadata
    zone: bool = False  # copy the node's topology.kubernetes.io/zone into metadata as "zone"
    address: str = POD_IP  # PodIP, or HostIP (the node's address with the port's hostPort)
    drain_terminating: bool = False  # keep a terminating, still Ready pod registered, not enabled
    generation: int = 0
    created: str = ""  # creationTimestamp: the older of two registries claiming a path wins
    deleting: bool = False
    finalizers: tuple[str, ...] = ()
    # metadata.resourceVersion: the version a finalizer patch is guarded by. It changes with every
    # write, status included, so it takes no part in comparisons.
    resource_version: str = field(default="", compare=False, hash=False)
    status: Mapping = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def service_path(self) -> str:
        return f"{self.base_path.rstrip('/')}/{self.service_name}"

    @classmethod
    def from_body(cls, body: Mapping) -> Registry:
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        additional = spec.get("additionalPorts")
        metadata = spec.get("metadata") or {}
        return cls(
            namespace=meta.get("namespace") or "",
            name=meta["name"],
            uid=meta.get("uid") or "",
            service_name=spec.get("serviceName") or meta["name"],
            base_path=spec.get("basePath") or api.DEFAULT_BASE_PATH,
            format=spec.get("format") or "curator",
            port=spec.get("port"),
            # Absent only when the object predates the field (the schema defaults it).
            additional_ports=(ALL_PORTS,) if additional is None else tuple(additional),
            pod_labels=tuple(metadata.get("podLabels") or ()),
            zone=bool(metadata.get("zone")),
            address=spec.get("address") or POD_IP,
            drain_terminating=bool(spec.get("drainTerminating")),
            generation=meta.get("generation") or 0,
            created=meta.get("creationTimestamp") or "",
            deleting=bool(meta.get("deletionTimestamp")),
            finalizers=tuple(meta.get("finalizers") or ()),
            resource_version=meta.get("resourceVersion") or "",
            status=body.get("status") or {},
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """The parts of a Deployment that matter: its opt-in annotation and its template's ports.

    Its status is not read: the Deployment controller rewrites it whenever a pod's readiness
    changes, and such an update must compare equal to the record already held."""

    namespace: str
    name: str
    uid: str
    registry: str | None  # value of the opt-in annotation
    port: str | None  # value of the port annotation
    ports: tuple[tuple[str, int], ...]  # (name, containerPort) of the pod template
    host_ports: tuple[tuple[int, int], ...] = ()  # (containerPort, hostPort) of the pod template

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping) -> Deployment:
        meta = body.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        template = ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
        return cls(
            namespace=meta.get("namespace") or "",
            name=meta["name"],
            uid=meta.get("uid") or "",
            registry=annotations.get(api.REGISTRY_ANNOTATION),
            port=annotations.get(api.PORT_ANNOTATION),
            ports=container_ports(template),
            host_ports=host_ports(template),
        )


@dataclass(frozen=True, slots=True)
class ReplicaSet:
    """The one part of a ReplicaSet that matters: the Deployment that controls it (the link from a
    pod to its Deployment). Its status, which changes with every pod's readiness, is not kept."""

    namespace: str
    name: str
    deployment: str | None  # the controlling Deployment's name; None: not a Deployment's
    #: That Deployment's uid: a Deployment re-created under the name is another one, which the
    #: garbage collector has yet to part from this ReplicaSet's pods. None: any of the name.
    deployment_uid: str | None = None
    uid: str | None = None  # this ReplicaSet's own; None: any pod of its name is its

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    def owns(self, pod: Pod) -> bool:
        """Whether this ReplicaSet (not an earlier one of its name) controls `pod`."""
        if pod.replicaset != self.name:
            return False
        return self.uid is None or pod.replicaset_uid is None or self.uid == pod.replicaset_uid

    def controlled_by(self, deployment: Deployment | None) -> bool:
        """Whether `deployment` is the one that controls this ReplicaSet."""
        return (
            deployment is not None
            and deployment.name == self.deployment
            and self.deployment_uid in (None, deployment.uid)
        )

    @classmethod
    def from_body(cls, body: Mapping) -> ReplicaSet:
        namespace, name = _key(body)
        owner = _controller_ref(body, "Deployment")
        uid = (body.get("metadata") or {}).get("uid")
        uid = sys.intern(uid) if isinstance(uid, str) else None
        return cls(namespace, name, owner.get("name"), owner.get("uid"), uid)


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod as registration needs it: identity, owner, readiness and address."""

    namespace: str
    name: str
    uid: str
    replicaset: str | None
    ready: bool
    ready_since_ms: int
    terminating: bool
    ip: str | None
    host_ip: str | None
    node: str | None
    ports: tuple[tuple[str, int], ...]
    labels: tuple[tuple[str, str], ...] = ()
    host_ports: tuple[tuple[int, int], ...] = ()  # (containerPort, hostPort)
    #: The uid of the ReplicaSet that controls it: one re-created under that name is another.
    replicaset_uid: str | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def serving(self) -> bool:
        """Ready, not terminating, and with an address: the pods that are registered."""
        return self.ready and not self.terminating and bool(self.ip)

    @classmethod
    def from_body(cls, body: Mapping) -> Pod:
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        ready = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
        owner = _controller_ref(body, "ReplicaSet")
        return cls(
            namespace=meta.get("namespace") or "",
            name=meta["name"],
            uid=meta.get("uid") or "",
            replicaset=owner.get("name"),
            replicaset_uid=sys.intern(owner["uid"]) if isinstance(owner.get("uid"), str) else None,
            ready=bool(ready) and ready.get("status") == "True",
            ready_since_ms=_epoch_ms(ready.get("lastTransitionTime")) if ready else 0,
            terminating=bool(meta.get("deletionTimestamp")),
            ip=status.get("podIP"),
            host_ip=status.get("hostIP"),
            node=(body.get("spec") or {}).get("nodeName"),
            ports=container_ports(body.get("spec") or {}),
            labels=tuple(sorted((meta.get("labels") or {}).items())),
            host_ports=host_ports(body.get("spec") or {}),
        )


def container_ports(pod_spec: Mapping) -> tuple[tuple[str, int], ...]:
    """(name, containerPort) of every declared port of a pod spec, in declaration order."""
    return tuple(
        (p.get("name") or "", int(p["containerPort"]))
        for c in pod_spec.get("containers") or ()
        for p in c.get("ports") or ()
        if "containerPort" in p
    )


def host_ports(pod_spec: Mapping) -> tuple[tuple[int, int], ...]:
    """(containerPort, hostPort) of every declared port of a pod spec that has a hostPort."""
    return tuple(
        (int(p["containerPort"]), int(p["hostPort"]))
        for c in pod_spec.get("containers") or ()
        for p in c.get("ports") or ()
        if "containerPort" in p and p.get("hostPort")
    )


def node_zone(body: Mapping) -> str | None:
    """The topology.kubernetes.io/zone label of a Node object, if it has one: what the inventory
    keeps per node for `desired_instances(zones=...)`."""
    return ((body.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL) or None


def replicaset_owner(body: Mapping) -> str | None:
    """The name of the Deployment that controls a ReplicaSet, if any."""
    return _controller_owner(body, "Deployment")


def key_of(body: Mapping) -> Key:
    return _key(body)


@dataclass(frozen=True, slots=True)
class Instance:
    """One desired registration: a serving pod of an opted-in Deployment."""

    id: str  # deterministic per pod (its uid), so that reconciling is idempotent
    service: str
    address: str
    port: int
    namespace: str
    pod: str
    deployment: str
    registration_ms: int  # the pod's Ready transition: stable, so the payload is too
    enabled: bool = True  # False while a terminating pod drains (drainTerminating)
    endpoints: tuple[tuple[str, int], ...] = ()  # (name, port) at `address`, sorted by name
    metadata: tuple[tuple[str, str], ...] = ()  # sorted (key, value), from the pod and its node


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a Deployment's opt-in that its owner must fix (a Warning Event)."""

    deployment: Key
    reason: str
    message: str


def _port_number(wanted: str | int | None) -> int | None:
    """The number that `wanted` spells (an int, or ASCII digits with an optional leading minus),
    whether or not it is a valid port; None for a port name or nothing."""
    if isinstance(wanted, int):
        return wanted
    text = (wanted or "").removeprefix("-")
    return int(wanted) if text.isascii() and text.isdigit() else None


def resolve_port(wanted: str | int | None, ports: tuple[tuple[str, int], ...]) -> int | None:
    """The port number that `wanted` names among `ports`, or None if there is none.

    A name must match a declared port; a number is taken as it is (a container need not declare
    the ports it listens on) if it is a port number, 1 to 65535; nothing wanted means the first
    declared port.
    """
    if wanted is None or wanted == "":
        return ports[0][1] if ports else None
    number = _port_number(wanted)
    if number is not None:
        return number if 1 <= number <= 65535 else None
    return next((number for name, number in ports if name == wanted), None)


def desired_instances(
    registry: Registry,
    deployments: Iterable[Deployment],
    pods_of: Mapping[str, Iterable[Pod]],
    zones: Mapping[str, str] | None = None,
) -> tuple[dict[str, Instance], list[Problem]]:
    """The registrations that `registry` wants, and the problems that keep any from being made.

    `deployments` are the Deployments annotated for this registry; `pods_of` maps a Deployment's
    name to its pods; `zones` maps a node's name to its topology.kubernetes.io/zone label (needed
    only when the registry copies the zone; a node missing from it adds no zone). A Deployment
    with a problem registers nothing; the others are unaffected.
    """
    instances: dict[str, Instance] = {}
    problems: list[Problem] = []
    if registry.deleting:
        return instances, problems
    for deployment in deployments:
        wanted = deployment.port if deployment.port is not None else registry.port
        port = resolve_port(wanted, deployment.ports)
        if port is None and _port_number(wanted) is not None:
            source = (
                f"annotation {api.PORT_ANNOTATION}={wanted!r}"
                if deployment.port is not None
                else f"spec.port {wanted!r} of ServiceRegistry {registry.name!r}"
            )
            problems.append(
                Problem(
                    deployment.key,
                    "InvalidPort",
                    f"Deployment {deployment.name!r}: {source} is not a port number (1 to 65535); "
                    f"nothing is registered for this Deployment",
                )
            )
            continue
        if port is None:
            what = f"port {wanted!r}" if wanted not in (None, "") else "a container port"
            problems.append(
                Problem(
                    deployment.key,
                    "PortNotFound",
                    f"ServiceRegistry {registry.name!r} registers {what}, but the pod template "
                    f"of Deployment {deployment.name!r} declares no such port "
                    f"(declared: {', '.join(n or str(p) for n, p in deployment.ports) or 'none'})",
                )
            )
            continue
        if registry.address == HOST_IP and port not in dict(deployment.host_ports):
            problems.append(
                Problem(
                    deployment.key,
                    "HostPortNotFound",
                    f"ServiceRegistry {registry.name!r} registers the node's address (address: HostIP), "
                    f"but container port {port} in the pod template of Deployment {deployment.name!r} "
                    f"has no hostPort",
                )
            )
            continue
        for pod in pods_of.get(deployment.name, ()):
            instance = _instance(registry, deployment, pod, wanted, port, zones or {})
            if instance is not None:
                instances[pod.uid] = instance
    return instances, problems


def registered(pod: Pod, registry: Registry) -> bool:
    """Whether `registry` registers `pod`: a serving pod, or, with drainTerminating, a terminating
    one that is still Ready (it is then registered as not enabled until it goes)."""
    if registry.drain_terminating and pod.terminating:
        return pod.ready and bool(pod.ip)
    return pod.serving


def _instance(
    registry: Registry,
    deployment: Deployment,
    pod: Pod,
    wanted: str | int | None,
    port: int,
    zones: Mapping[str, str],
) -> Instance | None:
    if not registered(pod, registry):
        return None
    # A pod of an older template may number the port differently during a rollout.
    container_port = resolve_port(wanted, pod.ports) or port
    named = [
        (name, number)
        for name, number in pod.ports
        if name and (ALL_PORTS in registry.additional_ports or name in registry.additional_ports)
    ]
    if registry.address == HOST_IP:
        to_host = dict(pod.host_ports)
        if not pod.host_ip or container_port not in to_host:
            return None  # not reachable at its node (an older pod without the hostPort)
        address, main = pod.host_ip, to_host[container_port]
        named = [(name, to_host[number]) for name, number in named if number in to_host]
    else:
        address, main = pod.ip or "", container_port
    labels = dict(pod.labels)
    metadata = {key: labels[key] for key in registry.pod_labels if key in labels}
    if registry.zone and pod.node and zones.get(pod.node):
        metadata[ZONE_KEY] = zones[pod.node]
    return Instance(
        id=pod.uid,
        service=registry.service_name,
        address=address,
        port=main,
        namespace=pod.namespace,
        pod=pod.name,
        deployment=deployment.name,
        registration_ms=pod.ready_since_ms,
        enabled=not pod.terminating,
        endpoints=tuple(sorted(dict(reversed(named)).items())),  # the first of a name wins
        metadata=tuple(sorted(metadata.items())),
    )
