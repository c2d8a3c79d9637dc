"""Admission: which ServiceRegistry may write which ZooKeeper path. Pure.

`decide` takes every registry, every `RegistryPolicy`, the claims recorded in ZooKeeper and what
the mirror shows under the paths, and returns one `Decision` per registry. The controller writes
only the paths of admitted registries; the reporter turns each decision into the `Admitted`
condition and an Event. Nothing here does I/O.

The rules, in order (README, "Trust model"):

1. **Policy.** A registry's service path must lie strictly under a prefix that its namespace is
   granted: the built-in grant (`default_prefixes`, every namespace, `/services` unless the
   operator is told otherwise) or a RegistryPolicy that selects the namespace by name or label.
   Otherwise: `PathNotAllowed`.
2. **Claims.** A path recorded as claimed by a namespace belongs to that namespace until the claim
   is released; a registry of any other namespace for it is refused (`PathConflict`). Within the
   owning namespace, the oldest registry for the path has it.
3. **Nesting.** A path inside or above a claimed path, or above or inside an older candidate's path,
   is refused like an exact conflict (`PathConflict`), in any namespace: a persistent service path
   must never become a child of another service.
4. **Foreign members.** A new claim of a path that already holds members this namespace did not
   write (external ones, or another namespace's) is refused (`ForeignMembers`) unless a policy
   that grants the path allows external members; another namespace's members refuse it always.

Ties between new claimants go to the oldest registry (creationTimestamp, then namespace, name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from zkregistry.model import Key, Registry

T = TypeVar("T")

ADMITTED = "Admitted"
PATH_NOT_ALLOWED = "PathNotAllowed"
PATH_CONFLICT = "PathConflict"
FOREIGN_MEMBERS = "ForeignMembers"


@dataclass(frozen=True, slots=True)
class Selector:
    """A Kubernetes label selector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True if `labels` satisfy every term. An empty selector matches everything."""
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        for key, operator, values in self.match_expressions:
            present = key in labels
            if operator == "In" and not (present and labels[key] in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if operator == "Exists" and not present:
                return False
            if operator == "DoesNotExist" and present:
                return False
            if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
                return False  # unknown operator: match nothing, never more than asked
        return True

    @classmethod
    def from_body(cls, body: Mapping | None) -> Selector | None:
        if body is None:
            return None
        return cls(
            match_labels=tuple(sorted((body.get("matchLabels") or {}).items())),
            match_expressions=tuple(
                (e.get("key", ""), e.get("operator", ""), tuple(e.get("values") or ()))
                for e in body.get("matchExpressions") or ()
            ),
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """A RegistryPolicy (cluster-scoped): namespaces (by name, or by a label selector) may register
    under `path_prefixes`; with `allow_external_members`, those paths may be shared with
    registrants outside Kubernetes, and `external_principals` (ZooKeeper ACL ids `scheme:id`) get
    CREATE on them."""

    name: str
    namespaces: tuple[str, ...] = ()
    selector: Selector | None = None
    path_prefixes: tuple[str, ...] = ()
    allow_external_members: bool = False
    external_principals: tuple[str, ...] = ()
    generation: int = 0
    status: Mapping = field(default_factory=dict, compare=False, hash=False)

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """A policy with neither names nor selector selects no namespace."""
        if namespace in self.namespaces:
            return True
        return self.selector is not None and self.selector.matches(labels)

    def grants(self, path: str) -> bool:
        return any(under(path, prefix) for prefix in self.path_prefixes)

    @classmethod
    def from_body(cls, body: Mapping) -> Policy:
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        return cls(
            name=meta.get("name") or "",
            namespaces=tuple(spec.get("namespaces") or ()),
            selector=Selector.from_body(spec.get("namespaceSelector")),
            path_prefixes=tuple(p.rstrip("/") or "/" for p in spec.get("pathPrefixes") or ()),
            allow_external_members=bool(spec.get("allowExternalMembers")),
            external_principals=tuple(spec.get("externalPrincipals") or ()),
            generation=meta.get("generation") or 0,
            status=body.get("status") or {},
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """A path's recorded owner: the namespace, and the registry that last held it there."""

    path: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether `registry` may write its path; `reason` is ADMITTED or why not. `policies` names the
    RegistryPolicies that grant the path ("" for the built-in grant); `principals` the external
    ZooKeeper identities that may add members to it."""

    registry: Key
    path: str
    admitted: bool
    reason: str
    message: str
    owner: Key | None = None  # the registry that has the path, if another one does
    policies: tuple[str, ...] = ()
    allow_external: bool = False
    principals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathState:
    """What the mirror shows under a path: the namespaces whose registrations (of this
    installation) are there, and whether anything else is."""

    namespaces: frozenset[str] = frozenset()
    external: bool = False


def under(path: str, prefix: str) -> bool:
    """`path` lies strictly below `prefix` ("/services/web" is under "/services" and "/")."""
    if prefix == "/":
        return path != "/"
    return path.startswith(prefix + "/")


def nested(a: str, b: str) -> bool:
    """One of two different paths contains the other."""
    return a != b and (under(a, b) or under(b, a))


def _age(registry: Registry) -> tuple[bool, str, str, str]:
    """Registries being deleted come last: a live one of the same namespace takes the path over."""
    return (registry.deleting, registry.created or "~", registry.namespace, registry.name)


def decide(
    registries: Iterable[Registry],
    policies: Iterable[Policy],
    claims: Mapping[str, Claim],
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    paths: Mapping[str, PathState] | None = None,
    default_prefixes: Sequence[str] = ("/services",),
) -> dict[Key, Decision]:
    """One decision per registry (see the module's rules). At most one registry is admitted per
    path, and no two admitted paths, nor an admitted path and a claim of another namespace, nest.

    A registry being deleted keeps the decision it would have, so that it can remove its own
    registrations; it never wins a new claim.
    """
    labels = namespace_labels or {}
    states = paths or {}
    policies = list(policies)
    out: dict[Key, Decision] = {}
    granted: list[tuple[Registry, tuple[str, ...], bool, tuple[str, ...]]] = []
    for registry in sorted(registries, key=_age):
        path = registry.service_path
        names: list[str] = [""] if any(under(path, p) for p in default_prefixes) else []
        external, principals = False, []
        for policy in policies:
            if policy.selects(registry.namespace, labels.get(registry.namespace, {})) and policy.grants(path):
                names.append(policy.name)
                if policy.allow_external_members:
                    external = True
                    principals += [p for p in policy.external_principals if p not in principals]
        if not names:
            out[registry.key] = Decision(
                registry.key,
                path,
                False,
                PATH_NOT_ALLOWED,
                f"no RegistryPolicy lets namespace {registry.namespace!r} register under {path}",
            )
            continue
        granted.append((registry, tuple(names), external, tuple(principals)))

    taken: dict[str, Registry] = {}  # path -> the registry admitted for it
    # The proper ancestors of every claimed and every taken path, each with one such path below
    # it: with them, whether a path nests with another costs O(depth), not O(paths).
    claim_ancestors: dict[str, str] = {}
    for claimed in sorted(claims, reverse=True):
        for ancestor in _ancestors(claimed):
            claim_ancestors[ancestor] = claimed
    taken_ancestors: dict[str, str] = {}
    for registry, names, external, principals in granted:
        path = registry.service_path

        def refuse(
            reason: str, message: str, owner: Key | None = None, registry: Registry = registry, names=names
        ) -> None:
            out[registry.key] = Decision(registry.key, registry.service_path, False, reason, message, owner, names)

        claim = claims.get(path)
        if claim is not None and claim.namespace != registry.namespace:
            refuse(
                PATH_CONFLICT,
                f"{path} is claimed by namespace {claim.namespace!r} (ServiceRegistry {claim.name})",
                (claim.namespace, claim.name),
            )
            continue
        holder = taken.get(path)
        if holder is not None:
            refuse(
                PATH_CONFLICT,
                f"{path} is held by ServiceRegistry {holder.namespace}/{holder.name}",
                holder.key,
            )
            continue
        inner = _nested_with(path, claims, claim_ancestors)
        if inner is not None:
            refuse(
                PATH_CONFLICT,
                f"{path} nests with {inner.path}, claimed by namespace {inner.namespace!r} "
                f"(ServiceRegistry {inner.name}); a service path may not contain another",
                (inner.namespace, inner.name),
            )
            continue
        other = _nested_with(path, taken, taken_ancestors)
        if other is not None:
            refuse(
                PATH_CONFLICT,
                f"{path} nests with {other.service_path} of ServiceRegistry {other.namespace}/{other.name}; "
                "a service path may not contain another",
                other.key,
            )
            continue
        if claim is None:  # a new claim: only of a path that holds nobody else's members
            if registry.deleting:
                refuse(PATH_CONFLICT, f"{path} is not claimed and this registry is being deleted")
                continue
            state = states.get(path, PathState())
            others = sorted(state.namespaces - {registry.namespace})
            if others:
                refuse(FOREIGN_MEMBERS, f"{path} holds members of namespace {others[0]!r}")
                continue
            if state.external and not external:
                refuse(
                    FOREIGN_MEMBERS,
                    f"{path} holds members written outside this namespace; a RegistryPolicy with "
                    "allowExternalMembers is needed to share it",
                )
                continue
        taken[path] = registry
        for ancestor in _ancestors(path):
            taken_ancestors.setdefault(ancestor, path)
        out[registry.key] = Decision(
            registry.key,
            path,
            True,
            ADMITTED,
            f"{path} is granted by " + ", ".join(f"RegistryPolicy {n}" if n else "the default policy" for n in names),
            None,
            names,
            external,
            principals if external else (),
        )
    return out


def _ancestors(path: str) -> list[str]:
    """The proper ancestors of `path`, nearest first, without "/" ("/a/b/c" -> "/a/b", "/a")."""
    out, cut = [], path.rfind("/")
    while cut > 0:
        path = path[:cut]
        out.append(path)
        cut = path.rfind("/")
    return out


def _nested_with(path: str, paths: Mapping[str, T], below: Mapping[str, str]) -> T | None:
    """The value of a key of `paths` that lies above or below `path` (not `path` itself), if any;
    `below` maps each proper ancestor of a key to a key under it. O(depth of `path`)."""
    for ancestor in _ancestors(path):
        if ancestor in paths:
            return paths[ancestor]
    under_path = below.get(path)
    return paths[under_path] if under_path is not None else None


def owners(decisions: Mapping[Key, Decision]) -> dict[str, Key]:
    """path -> the admitted registry that writes it."""
    return {d.path: d.registry for d in decisions.values() if d.admitted}


def admitted_by(decisions: Mapping[Key, Decision], policy: str) -> list[str]:
    """The registries ("namespace/name") that `policy` admits, sorted."""
    return sorted(f"{d.registry[0]}/{d.registry[1]}" for d in decisions.values() if d.admitted and policy in d.policies)
