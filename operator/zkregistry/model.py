"""Plain data for what zkregistry knows about Kubernetes, and the desired registrations it implies.

Everything here is pure: built from Kubernetes object bodies, compared by value, no I/O. The
`Inventory` (inventory.py) holds these objects; the controller asks `desired_instances` what
ZooKeeper should hold for one service path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zkregistry import api

Key = tuple[str, str]  # (namespace, name)


def _key(body: Mapping) -> Key:
    meta = body.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _controller_owner(body: Mapping, kind: str) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("kind") == kind and ref.get("controller"):
            return ref.get("name")
    return None


def _epoch_ms(timestamp: str | None) -> int:
    if not timestamp:
        return 0
    return int(dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Registry:
    """A ServiceRegistry object: where and how its members are registered."""

    namespace: str
    name: str
    uid: str
    service_name: str
    base_path: str
    format: str = "curator"
    port: str | int | None = None  # container port name or number; None: the first declared port
    generation: int = 0
    created: str = ""  # creationTimestamp: the older of two registries claiming a path wins
    deleting: bool = False
    finalizers: tuple[str, ...] = ()
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
        return cls(
            namespace=meta.get("namespace") or "",
            name=meta["name"],
            uid=meta.get("uid") or "",
            service_name=spec.get("serviceName") or meta["name"],
            base_path=spec.get("basePath") or api.DEFAULT_BASE_PATH,
            format=spec.get("format") or "curator",
            port=spec.get("port"),
            generation=meta.get("generation") or 0,
            created=meta.get("creationTimestamp") or "",
            deleting=bool(meta.get("deletionTimestamp")),
            finalizers=tuple(meta.get("finalizers") or ()),
            status=body.get("status") or {},
        )


@dataclass(frozen=True, slots=True)
class Deployment:
    """The parts of a Deployment that matter: its opt-in annotation and its template's ports."""

    namespace: str
    name: str
    uid: str
    registry: str | None  # value of the opt-in annotation
    port: str | None  # value of the port annotation
    ports: tuple[tuple[str, int], ...]  # (name, containerPort) of the pod template

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
        )


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
        ready = next(
            (c for c in status.get("conditions") or () if c.get("type") == "Ready"), None
        )
        return cls(
            namespace=meta.get("namespace") or "",
            name=meta["name"],
            uid=meta.get("uid") or "",
            replicaset=_controller_owner(body, "ReplicaSet"),
            ready=bool(ready) and ready.get("status") == "True",
            ready_since_ms=_epoch_ms(ready.get("lastTransitionTime")) if ready else 0,
            terminating=bool(meta.get("deletionTimestamp")),
            ip=status.get("podIP"),
            host_ip=status.get("hostIP"),
            node=(body.get("spec") or {}).get("nodeName"),
            ports=container_ports(body.get("spec") or {}),
            labels=tuple(sorted((meta.get("labels") or {}).items())),
        )


def container_ports(pod_spec: Mapping) -> tuple[tuple[str, int], ...]:
    """(name, containerPort) of every declared port of a pod spec, in declaration order."""
    return tuple(
        (p.get("name") or "", int(p["containerPort"]))
        for c in pod_spec.get("containers") or ()
        for p in c.get("ports") or ()
        if "containerPort" in p
    )


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


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with a Deployment's opt-in that its owner must fix (a Warning Event)."""

    deployment: Key
    reason: str
    message: str


def resolve_port(wanted: str | int | None, ports: tuple[tuple[str, int], ...]) -> int | None:
    """The port number that `wanted` names among `ports`, or None if there is none.

    A name must match a declared port; a number is taken as it is (a container need not declare
    the ports it listens on); nothing wanted means the first declared port.
    """
    if wanted is None or wanted == "":
        return ports[0][1] if ports else None
    if isinstance(wanted, int) or str(wanted).isdigit():
        return int(wanted)
    return next((number for name, number in ports if name == wanted), None)


def desired_instances(
    registry: Registry,
    deployments: Iterable[Deployment],
    pods_of: Mapping[str, Iterable[Pod]],
) -> tuple[dict[str, Instance], list[Problem]]:
    """The registrations that `registry` wants, and the problems that keep any from being made.

    `deployments` are the Deployments annotated for this registry; `pods_of` maps a Deployment's
    name to its pods. A Deployment with a problem registers nothing; the others are unaffected.
    """
    instances: dict[str, Instance] = {}
    problems: list[Problem] = []
    if registry.deleting:
        return instances, problems
    for deployment in deployments:
        wanted = deployment.port if deployment.port is not None else registry.port
        port = resolve_port(wanted, deployment.ports)
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
        for pod in pods_of.get(deployment.name, ()):
            if not pod.serving:
                continue
            instances[pod.uid] = Instance(
                id=pod.uid,
                service=registry.service_name,
                address=pod.ip or "",
                # A pod of an older template may number the port differently during a rollout.
                port=resolve_port(wanted, pod.ports) or port,
                namespace=pod.namespace,
                pod=pod.name,
                deployment=deployment.name,
                registration_ms=pod.ready_since_ms,
            )
    return instances, problems
