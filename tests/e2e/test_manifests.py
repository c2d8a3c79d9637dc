"""Every way of installing zkregistry is accepted by a real kube-apiserver: deploy/ (through
kustomize), the example ZooKeeper of deploy/zookeeper/, crds/, and the Helm chart as `helm
template` renders it (with every option on, its ServiceMonitor and PrometheusRule too, against
the Prometheus Operator's CRDs), each in a server-side dry run. The namespaces enforce the Pod Security
Standards' `restricted` profile and warn about it, so a dry run also reports any pod template that
falls short of it. And `helm lint` passes, and the chart renders the same objects as deploy/.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
CHART = TOP / "charts" / "zkregistry"
PSA_WARNING = "violate PodSecurity"

# Values that turn on every optional branch of the chart's templates.
EVERYTHING = {
    "fullnameOverride": "zkr",
    "image": {"repository": "registry.example/zkregistry", "tag": "dev", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "pull"}],
    "zookeeper": {
        "hosts": "zk-a:2281,zk-b:2281",
        "chroot": "/prod",
        "sessionTimeout": 6,
        "reader": "digest:reader:x=",
        "credentialsSecret": "zk-creds",
        "tls": {"enabled": True, "secret": "zk-tls", "clientCertificate": True},
    },
    "operator": {
        "ownerId": "prod",
        "root": "/zkr/prod",
        "namespaces": ["a", "b"],
        "logFormat": "text",
        "logLevel": "DEBUG",
        "resyncSeconds": 10,
        "handoverTimeout": 20,
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
    },
    "serviceAccount": {"annotations": {"example.com/role": "zkregistry"}},
    "podLabels": {"team": "platform"},
    "podAnnotations": {"example.com/note": "yes"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "zkregistry"}},
        }
    ],
    "priorityClassName": "system-cluster-critical",
}
# The operations kit, every part on (its CRDs come from the monitoring_crds fixture).
EVERYTHING["metrics"] = {
    "service": {"enabled": True, "annotations": {}},
    "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s", "labels": {"release": "prom"}},
    "prometheusRule": {
        "enabled": True,
        "labels": {"release": "prom"},
        "job": "zkr-job",
        "registrationsDifferFor": "10m",
        "zookeeperDisconnectedFor": "1m30s",
        "reconcileErrorsFor": "20m",
        "additionalLabels": {"team": "platform"},
    },
    "grafanaDashboard": {
        "enabled": True,
        "labels": {"grafana_dashboard": "1"},
        "annotations": {"grafana_folder": "zkregistry"},
        "namespace": "zkregistry",
    },
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(Path(os.environ["ZKREGISTRY_BIN"]) / "helm"), *args], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def render_chart(tmp_path: Path, namespace: str = "zkregistry", values: dict | None = None) -> list[dict]:
    args = ["template", "zkregistry", str(CHART), "--namespace", namespace, "--include-crds"]
    if values is not None:
        (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
        args += ["--values", str(tmp_path / "values.yaml")]
    return documents(helm(*args).stdout)


def kustomize(cluster, folder: Path) -> list[dict]:
    return documents(cluster.kubectl("kustomize", str(folder)).stdout)


def create_namespaces(cluster, docs: list[dict], tmp_path: Path) -> None:
    """Applies the Namespace objects among `docs` for real: a dry run of an object in a namespace
    that does not exist is refused. They stay (empty namespaces harm no other test)."""
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    if namespaces:
        (tmp_path / "namespaces.yaml").write_text(yaml.safe_dump_all(namespaces))
        cluster.kubectl("apply", "-f", str(tmp_path / "namespaces.yaml"))


def dry_run(cluster, docs: list[dict], tmp_path: Path) -> subprocess.CompletedProcess:
    """`kubectl apply --dry-run=server` of the documents, which must all be accepted."""
    create_namespaces(cluster, docs, tmp_path)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(manifest), check=False)
    assert result.returncode == 0, result.stderr
    # One line per object: "<kind>/<name> created (server dry run)" (or configured, unchanged).
    assert result.stdout.count("(server dry run)") == len(docs), result.stdout
    return result


@pytest.fixture(scope="module")
def deploy_docs(cluster) -> list[dict]:
    return kustomize(cluster, TOP / "deploy")


def test_deploy_is_accepted(cluster, deploy_docs, tmp_path):
    kinds = sorted(d["kind"] for d in deploy_docs)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
        ]
    )
    result = dry_run(cluster, deploy_docs, tmp_path)
    assert PSA_WARNING not in result.stderr, result.stderr


def test_pod_security_warnings_are_reported(cluster, deploy_docs, tmp_path):
    # The "no PodSecurity warning" checks mean something only if a weaker pod template does get
    # one here: the same Deployment, with privilege escalation allowed again.
    deployment = copy.deepcopy(next(d for d in deploy_docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    result = dry_run(cluster, [deployment], tmp_path)
    assert PSA_WARNING in result.stderr and "allowPrivilegeEscalation" in result.stderr, result.stderr


def test_deploy_meets_the_issue(deploy_docs):
    by_kind = {d["kind"]: d for d in deploy_docs}
    deployment = by_kind["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert pod["terminationGracePeriodSeconds"] >= 45  # a leader's handover takes up to 30 s
    assert pod["serviceAccountName"] == by_kind["ServiceAccount"]["metadata"]["name"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and security["runAsUser"] == 65532
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["memory"] == "256Mi"
    env = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    assert env["POD_NAME"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["ZKREGISTRY_ZK_DIGEST"]["secretKeyRef"]["optional"] is False  # an identity of its own
    assert "ZKREGISTRY_ZK_HOSTS" in by_kind["ConfigMap"]["data"]
    assert by_kind["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]


def test_example_zookeeper_is_accepted(cluster, tmp_path):
    docs = kustomize(cluster, TOP / "deploy" / "zookeeper")
    assert {d["kind"] for d in docs} == {"Namespace", "ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"}
    statefulset = next(d for d in docs if d["kind"] == "StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"].startswith("zookeeper:3.9")
    result = dry_run(cluster, docs, tmp_path)
    assert PSA_WARNING not in result.stderr, result.stderr


def test_crds_are_accepted(cluster):
    # The session's cluster has the CRD already, so this is a dry-run update: still validated.
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(TOP / "crds"))
    crds = list((TOP / "crds").glob("*.yaml"))
    assert result.stdout.count("(server dry run)") == len(crds) >= 1, result.stdout


@pytest.mark.parametrize("values", [None, EVERYTHING], ids=["defaults", "every-option"])
def test_helm_template_is_accepted(cluster, deploy_docs, monitoring_crds, tmp_path, values):
    create_namespaces(cluster, deploy_docs, tmp_path)  # the release's namespace, zkregistry
    docs = render_chart(tmp_path, values=values)
    assert {d["kind"] for d in docs} >= {"CustomResourceDefinition", "Deployment", "ClusterRole"}
    kit = {"ServiceMonitor", "PrometheusRule"} & {d["kind"] for d in docs}
    assert kit == (set() if values is None else {"ServiceMonitor", "PrometheusRule"})
    result = dry_run(cluster, docs, tmp_path)
    assert PSA_WARNING not in result.stderr, result.stderr


def test_helm_lint(tmp_path):
    helm("lint", "--strict", str(CHART))
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(EVERYTHING))
    helm("lint", "--strict", str(CHART), "--values", str(tmp_path / "values.yaml"))


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCount=0", "replicaCount"),
        ("zookeeper.hosts=not a host list", "zookeeper/hosts"),
        ("operator.logFormat=xml", "operator/logFormat"),
        ("zookeeper.hostz=zk:2181", "hostz"),  # a misspelt value is not silently ignored
        ("operator.handoverTimeout=90", "terminationGracePeriodSeconds"),
        ("metrics.prometheusRule.registrationsDifferFor=5 minutes", "registrationsDifferFor"),
        ("metrics.serviceMonitor.enabled=true,metrics.service.enabled=false", "metrics.service.enabled"),
    ],
)
def test_helm_refuses_bad_values(setting, complaint):
    result = helm("template", "zkregistry", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_chart_renders_what_deploy_has(deploy_docs, tmp_path):
    """The chart with its defaults and deploy/ install the same objects with the same pod
    template and RBAC; only labels and annotations (Helm's own, a config checksum) differ, and the
    chart generates the ZooKeeper credentials' Secret that deploy/ has you create."""
    chart = [d for d in render_chart(tmp_path) if d["kind"] not in ("CustomResourceDefinition", "Secret")]
    plain = [d for d in deploy_docs if d["kind"] != "Namespace"]  # the chart installs into one

    def key(d: dict) -> tuple:
        return d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")

    assert sorted(map(key, chart)) == sorted(map(key, plain))
    chart_by_kind = {d["kind"]: d for d in chart}
    plain_by_kind = {d["kind"]: d for d in plain}

    def pod_template(d: dict) -> dict:
        template = copy.deepcopy(d["spec"]["template"])
        template["metadata"].pop("annotations", None)
        return template

    assert pod_template(chart_by_kind["Deployment"]) == pod_template(plain_by_kind["Deployment"])
    for kind in ("Deployment", "PodDisruptionBudget", "Service"):
        chart_spec = {k: v for k, v in chart_by_kind[kind]["spec"].items() if k != "template"}
        plain_spec = {k: v for k, v in plain_by_kind[kind]["spec"].items() if k != "template"}
        assert chart_spec == plain_spec, kind
    assert chart_by_kind["ClusterRole"]["rules"] == plain_by_kind["ClusterRole"]["rules"]
    for field in ("roleRef", "subjects"):
        assert chart_by_kind["ClusterRoleBinding"][field] == plain_by_kind["ClusterRoleBinding"][field]
    # The chart's settings include deploy/'s (it spells out the defaults as well).
    assert chart_by_kind["ConfigMap"]["data"].items() >= plain_by_kind["ConfigMap"]["data"].items()
