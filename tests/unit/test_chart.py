"""The Helm chart and the plain manifests of deploy/ describe one installation: the same CRD, the
same least-privilege RBAC, the same version. (tests/e2e/test_manifests.py renders both and sends
them to a real kube-apiserver; this file needs neither helm nor a cluster.)"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import zkregistry

TOP = Path(__file__).resolve().parents[2]
CHART = TOP / "charts" / "zkregistry"
CRD = "serviceregistries.zkregistry.io.yaml"

READ = {"get", "list", "watch"}


def deploy_rules() -> list[dict]:
    return yaml.safe_load((TOP / "deploy" / "clusterrole.yaml").read_text())["rules"]


def chart_rules() -> list[dict]:
    # The template keeps its rules free of template expressions (it says so), so dropping the
    # lines that hold one leaves YAML whose rules are exactly what helm renders.
    template = (CHART / "templates" / "clusterrole.yaml").read_text()
    plain = "\n".join(line for line in template.splitlines() if "{{" not in line)
    return yaml.safe_load(plain)["rules"]


def test_chart_crd_is_a_copy_of_crds():
    # Helm installs crds/ of the chart before anything else and never upgrades it; both copies
    # must be the same file, or `helm install` and `kubectl apply -f crds/` give different APIs.
    fix = "copy it again: cp crds/*.yaml charts/zkregistry/crds/"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(p.name for p in (TOP / "crds").iterdir()), fix
    assert (CHART / "crds" / CRD).read_bytes() == (TOP / "crds" / CRD).read_bytes(), f"the chart's CRD differs; {fix}"


def test_chart_and_deploy_have_the_same_rbac_rules():
    assert chart_rules() == deploy_rules()


def test_rbac_is_least_privilege():
    """What the design promises: read-only on the inventory, writes only to the operator's own
    objects and Events, nothing on Secrets, no wildcards."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in deploy_rules():
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert all("*" not in key and "*" not in verbs for key, verbs in granted.items())
    assert granted == {
        ("", "pods"): READ,
        ("apps", "replicasets"): READ,
        ("", "nodes"): READ,
        ("apps", "deployments"): READ,
        ("zkregistry.io", "serviceregistries"): READ | {"patch"},
        ("zkregistry.io", "serviceregistries/status"): {"patch"},
        ("zkregistry.io", "registrypolicies"): READ,
        ("zkregistry.io", "registrypolicies/status"): {"patch"},
        ("", "namespaces"): READ,
        ("", "events"): {"create", "patch"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): READ,
    }


def test_versions_agree():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == zkregistry.__version__
    deployment = yaml.safe_load((TOP / "deploy" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"zkregistry:{zkregistry.__version__}"


def test_every_value_is_in_the_schema():
    # values.schema.json forbids unknown keys, so a value documented in values.yaml but missing
    # from the schema would make the chart reject its own defaults.
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: object, node: dict, path: str) -> None:
        if isinstance(value, dict) and node.get("additionalProperties") is False:
            for key, child in value.items():
                assert key in node["properties"], f"{path}{key} is not in values.schema.json"
                walk(child, node["properties"][key], f"{path}{key}.")

    walk(values, schema, "")
