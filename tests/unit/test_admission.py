"""Admission of registries to ZooKeeper paths: policy, claims, nesting, foreign members."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zkregistry.admission import (
    FOREIGN_MEMBERS,
    PATH_CONFLICT,
    PATH_NOT_ALLOWED,
    Claim,
    PathState,
    Policy,
    Selector,
    admitted_by,
    decide,
    nested,
    owners,
    under,
)
from zkregistry.model import Registry


def registry(namespace: str, name: str, base: str = "/services", created: str = "2026-01-01T00:00:00Z", **kw):
    return Registry(namespace, name, f"uid-{namespace}-{name}", kw.pop("service", name), base, created=created, **kw)


def test_paths():
    assert under("/services/web", "/services") and under("/a/b", "/")
    assert not under("/services", "/services") and not under("/servicesx/a", "/services")
    assert nested("/services/web", "/services/web/x") and nested("/services/web/x", "/services/web")
    assert not nested("/services/web", "/services/web") and not nested("/services/web", "/services/webx")


def test_default_admits_services_only():
    a, b = registry("a", "web"), registry("a", "other", base="/elsewhere")
    d = decide([a, b], [], {})
    assert d[a.key].admitted and d[a.key].policies == ("",)
    assert not d[b.key].admitted and d[b.key].reason == PATH_NOT_ALLOWED


def test_policy_by_name_and_selector():
    p1 = Policy("p1", namespaces=("a",), path_prefixes=("/pay",))
    p2 = Policy("p2", selector=Selector(match_labels=(("team", "x"),)), path_prefixes=("/x",))
    a, b, c = registry("a", "s", base="/pay"), registry("b", "s", base="/x"), registry("c", "s", base="/pay")
    d = decide([a, b, c], [p1, p2], {}, namespace_labels={"b": {"team": "x"}})
    assert d[a.key].admitted and d[a.key].policies == ("p1",)
    assert d[b.key].admitted
    assert d[c.key].reason == PATH_NOT_ALLOWED
    assert admitted_by(d, "p1") == ["a/s"]


def test_selector_expressions():
    s = Selector(match_expressions=(("env", "In", ("prod",)), ("x", "DoesNotExist", ())))
    assert s.matches({"env": "prod"}) and not s.matches({"env": "dev"}) and not s.matches({"env": "prod", "x": "1"})
    assert not Selector(match_expressions=(("k", "Bogus", ()),)).matches({"k": "v"})
    assert not Policy("empty", path_prefixes=("/",)).selects("a", {})


def test_oldest_new_claimant_wins_and_claim_beats_age():
    old = registry("b", "web", created="2026-01-01T00:00:00Z")
    new = registry("a", "web", created="2026-02-01T00:00:00Z")
    d = decide([old, new], [], {})
    assert d[old.key].admitted and d[new.key].reason == PATH_CONFLICT and d[new.key].owner == old.key
    # The path is claimed by namespace a: a's younger registry has it, b's older one is refused.
    d = decide([old, new], [], {"/services/web": Claim("/services/web", "a", "web")})
    assert d[new.key].admitted and not d[old.key].admitted and d[old.key].owner == ("a", "web")


def test_claim_keeps_path_for_its_namespace_without_registry():
    squatter = registry("b", "web", created="2020-01-01T00:00:00Z")
    d = decide([squatter], [], {"/services/web": Claim("/services/web", "a", "web")})
    assert d[squatter.key].reason == PATH_CONFLICT
    assert owners(d) == {}


def test_nesting_refused_both_ways():
    first = registry("a", "web")
    child = registry("b", "x", base="/services/web", created="2026-03-01T00:00:00Z")
    parent = registry("b", "services", base="/", service="services", created="2026-03-01T00:00:00Z")
    p = Policy("root", namespaces=("b",), path_prefixes=("/",))
    d = decide([first, child, parent], [p], {})
    assert d[first.key].admitted
    assert d[child.key].reason == PATH_CONFLICT and d[parent.key].reason == PATH_CONFLICT
    # Against a claim too, even an older registry, and within one namespace.
    older_child = registry("a", "y", base="/services/web", created="2000-01-01T00:00:00Z")
    d = decide([first, older_child], [], {"/services/web": Claim("/services/web", "a", "web")})
    assert d[first.key].admitted and d[older_child.key].reason == PATH_CONFLICT


def test_foreign_members():
    a = registry("a", "web")
    d = decide([a], [], {}, paths={"/services/web": PathState(external=True)})
    assert d[a.key].reason == FOREIGN_MEMBERS
    d = decide([a], [], {}, paths={"/services/web": PathState(namespaces=frozenset({"b"}))})
    assert d[a.key].reason == FOREIGN_MEMBERS
    d = decide([a], [], {}, paths={"/services/web": PathState(namespaces=frozenset({"a"}))})
    assert d[a.key].admitted
    shared = Policy("vm", namespaces=("a",), path_prefixes=("/services",), allow_external_members=True,
                    external_principals=("digest:vm:abc",))
    d = decide([a], [shared], {}, paths={"/services/web": PathState(external=True)})
    assert d[a.key].admitted and d[a.key].allow_external and d[a.key].principals == ("digest:vm:abc",)
    # A claimed path stays admitted whatever appears under it later.
    claim = {"/services/web": Claim("/services/web", "a", "web")}
    d = decide([a], [], claim, paths={"/services/web": PathState(external=True)})
    assert d[a.key].admitted


def test_deleting_registry_gives_way_within_its_namespace():
    going = registry("a", "web", created="2026-01-01T00:00:00Z", deleting=True)
    new = registry("a", "web2", service="web", created="2026-02-01T00:00:00Z")
    d = decide([going, new], [], {"/services/web": Claim("/services/web", "a", "web")})
    assert d[new.key].admitted and not d[going.key].admitted
    assert not decide([going], [], {})[going.key].admitted


def test_policy_from_body():
    p = Policy.from_body({
        "metadata": {"name": "p", "generation": 2},
        "spec": {"namespaces": ["a"], "namespaceSelector": {"matchLabels": {"t": "x"}},
                 "pathPrefixes": ["/pay/"], "allowExternalMembers": True, "externalPrincipals": ["digest:u:h"]},
    })
    assert p.path_prefixes == ("/pay",) and p.selects("z", {"t": "x"}) and p.external_principals == ("digest:u:h",)


def test_service_acl_denies_create_by_default_and_grants_principals():
    from kazoo.security import Permissions

    from zkregistry import zk
    from zkregistry.config import Settings

    assert zk.service_acl(Settings()) is None  # no identity of ours: nothing to restrict to
    settings = Settings(zk_digest="op:pw")
    closed = zk.service_acl(settings)
    assert [(a.id.scheme, a.perms) for a in closed] == [("digest", Permissions.ALL), ("world", Permissions.READ)]
    shared = zk.service_acl(settings, ("digest:vm:abc",))
    assert shared[-1].id.scheme == "digest" and shared[-1].id.id == "vm:abc" and shared[-1].perms == Permissions.CREATE


def test_tls_verifies_unless_told_not_to():
    from zkregistry import zk

    strict = zk.security_options(tls=True)
    assert strict["verify_certs"] and strict["check_hostname"] and strict["ca"] is None
    loose = zk.security_options(tls=True, insecure=True)
    assert not loose["verify_certs"] and not loose["check_hostname"]


def test_status_says_why_and_who_owns_the_path():
    from zkregistry import status
    from zkregistry.admission import Decision

    r = registry("b", "web")
    no = Decision(r.key, r.service_path, False, PATH_CONFLICT, "held by a/web", ("a", "web"))
    s = status.compute(status.Observation(r, {}, 0, "o", "leader", admission=no), "2026-01-01T00:00:00Z")
    kinds = {c["type"]: c for c in s["conditions"]}
    assert kinds["Admitted"]["status"] == "False" and kinds["Admitted"]["reason"] == PATH_CONFLICT
    assert kinds["Ready"]["reason"] == PATH_CONFLICT and kinds["PathConflict"]["status"] == "True"
    assert s["pathOwner"] == "a/web"
    yes = Decision(r.key, r.service_path, True, "Admitted", "granted")
    s = status.compute(status.Observation(r, {}, 0, "o", "leader", admission=yes), "2026-01-01T00:00:00Z")
    assert {c["type"]: c["status"] for c in s["conditions"]}["Admitted"] == "True" and s["pathOwner"] == "b/web"


_SEGMENTS = ["a", "b", "c"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["n1", "n2", "n3"]),
            st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=3),
            st.integers(0, 9),
            st.booleans(),
        ),
        max_size=8,
    ),
    st.dictionaries(
        st.lists(st.sampled_from(_SEGMENTS), min_size=2, max_size=4).map(lambda p: "/services/" + "/".join(p)),
        st.sampled_from(["n1", "n2", "n3"]),
        max_size=3,
    ),
)
def test_admitted_paths_never_nest_nor_cross_namespaces(specs, claimed):
    registries = []
    for i, (namespace, parts, age, deleting) in enumerate(specs):
        base = "/services" + "".join(f"/{p}" for p in parts[:-1])
        registries.append(
            registry(namespace, f"r{i}", base=base, service=parts[-1], created=f"2026-01-0{age}T00:00:00Z",
                     deleting=deleting)
        )
    claims = {p: Claim(p, ns, "x") for p, ns in claimed.items()}
    decisions = decide(registries, [], claims)
    admitted = [d for d in decisions.values() if d.admitted]
    paths = [d.path for d in admitted]
    assert len(paths) == len(set(paths))  # one registry per path
    for d in admitted:
        assert not any(nested(d.path, other) for other in paths)
        assert not any(nested(d.path, c) for c in claims)  # never inside or above a claim
        claim = claims.get(d.path)
        assert claim is None or claim.namespace == d.registry[0]
