"""The Helm chart: helm lint and helm template (the real helm binary) over several values sets; every
rendered manifest checked against Kubernetes' schemas (kubernetes-validate, strict); golden renders; RBAC
with no wildcards and only the verbs the operator uses. `make test` puts helm on PATH (`make tools`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "flops-fit"
GOLDEN = Path(__file__).resolve().parent / "golden"
K8S_VERSIONS = ("1.30.0", "1.34.0")  # the oldest and newest minor we claim, per kubernetes-validate's schemas
VALUES = {
    "default": [],
    "namespaced": ["--set", "operator.watchNamespaces={research,vision}", "--set", "networkPolicy.enabled=true",
                   "--set", "crds.install=false", "--set", "operator.image.tag=0.1.0-rc1",
                   "--set", "serviceAccounts.trainer.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/s3"],
    "custom": ["--set", "operator.verbose=true", "--set", "operator.logFormat=json", "--set", "userRole.create=false",
               "--set", "operator.nodeSelector.pool=system", "--set", "operator.priorityClassName=system-cluster-critical"],
    "replicated": ["--set", "operator.replicas=2", "--set", "operator.watchNamespaces={research}"],
    "monitored": ["--set", "operator.metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true",
                  "--set", "operator.metrics.serviceMonitor.labels.release=kube-prometheus-stack",
                  "--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring"],
}
NOT_IN_K8S_SCHEMAS = {"monitoring.coreos.com/v1"}  # the Prometheus Operator's CRDs: checked by the test below
OPERATOR_VERBS = {  # (apiGroup, resource) -> verbs: what ff_operator.handlers and kopf actually call
    ("flopsfit.dev", "scalingsweeps"): {"get", "list", "watch", "patch"},
    ("flopsfit.dev", "scalingsweeps/status"): {"get", "patch"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "services"): {"create"},
    ("", "events"): {"create"},
    ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch", "create"},  # replicas > 1: peering
    ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch", "create"},
}


def helm() -> str:
    found = shutil.which("helm")
    if not found:
        pytest.fail("helm is not on PATH: run `make tools` (or `make test`, which installs it into .tools/)")
    return found


def render(values: list[str]) -> list[dict]:
    out = subprocess.run([helm(), "template", "ff", str(CHART), "--namespace", "ff-system", *values],
                         capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("name", sorted(VALUES))
def test_lint_template_and_schema_validation(name):
    lint = subprocess.run([helm(), "lint", "--strict", str(CHART), *VALUES[name]], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(VALUES[name])
    for version in K8S_VERSIONS:
        for doc in docs:
            if doc["apiVersion"] not in NOT_IN_K8S_SCHEMAS:
                kubernetes_validate.validate(doc, version, strict=True)  # raises on any schema violation
    text = yaml.safe_dump_all(docs, sort_keys=True)
    golden = GOLDEN / f"chart-{name}.yaml"
    if os.environ.get("FF_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden.name} changed; if deliberate, rerun with FF_UPDATE_GOLDEN=1"


def kinds(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_rbac_has_no_wildcards_and_only_the_verbs_used():
    for name, values in VALUES.items():
        for doc in render(values):
            for rule in doc.get("rules", []):
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule.get(field, []), f"{name}: wildcard in {doc['metadata']['name']}"
                if doc["metadata"]["name"].endswith("-operator"):
                    for group in rule["apiGroups"]:
                        for resource in rule["resources"]:
                            assert set(rule["verbs"]) <= OPERATOR_VERBS[group, resource], (group, resource)
    default = render([])
    assert [r["metadata"]["name"] for r in kinds(default, "ClusterRole")] == ["ff-flops-fit-operator", "ff-flops-fit-user"]
    namespaced = render(VALUES["namespaced"])
    assert sorted(r["metadata"]["namespace"] for r in kinds(namespaced, "Role")) == ["research", "vision"]
    assert [r["metadata"]["name"] for r in kinds(namespaced, "ClusterRole")] == ["ff-flops-fit-user"]
    trainers = [s for s in kinds(namespaced, "ServiceAccount") if s["metadata"]["name"] == "flops-fit-trainer"]
    assert sorted(s["metadata"]["namespace"] for s in trainers) == ["research", "vision"]
    assert all(s["automountServiceAccountToken"] is False for s in trainers)
    bound = {s["name"] for b in kinds(namespaced, "RoleBinding") + kinds(default, "ClusterRoleBinding") for s in b["subjects"]}
    assert bound == {"flops-fit-operator"}  # the trainer's account has no rights


def test_operator_deployment_is_locked_down_and_watched():
    docs = render([])
    deployment = kinds(docs, "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"] and "--all-namespaces" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert "--namespace=research" in kinds(render(VALUES["namespaced"]), "Deployment")[0]["spec"]["template"]["spec"][
        "containers"][0]["args"]


def test_metrics_are_served_behind_a_service_and_scraped_by_a_service_monitor_if_asked():
    """The port the operator serves /metrics on (FF_METRICS_PORT, ff_operator.metrics) is the container port the
    Service targets and the ServiceMonitor scrapes; the NetworkPolicy lets scrapes in; all of it can be off."""
    docs = render(VALUES["monitored"])
    container = kinds(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    (port,) = [p for p in container["ports"] if p["name"] == "metrics"]
    assert env["FF_METRICS_PORT"] == str(port["containerPort"]) == "9090"
    (service,) = [s for s in kinds(docs, "Service") if s["metadata"]["name"].endswith("-metrics")]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = kinds(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (monitor,) = kinds(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (policy,) = kinds(docs, "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert policy["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    assert not kinds(render([]), "ServiceMonitor")  # off by default: not every cluster has the CRD
    off = render(["--set", "operator.metrics.enabled=false", "--set", "networkPolicy.enabled=true"])
    assert not [s for s in kinds(off, "Service") if s["metadata"]["name"].endswith("-metrics")]
    assert "FF_METRICS_PORT" not in str(kinds(off, "Deployment")[0]) and kinds(off, "NetworkPolicy")[0]["spec"][
        "ingress"] == []


def test_replicas_run_with_kopf_peering_and_its_crds_and_rights():
    """operator.replicas > 1: no --standalone but --peering, a rolling update, kopf's peering CRDs, the rights on
    the peering objects, and where the operator creates them (the watched namespaces, or cluster-wide)."""
    for values, plural in ((["--set", "operator.replicas=2"], "clusterkopfpeerings"),
                           (VALUES["replicated"], "kopfpeerings")):
        docs = render(values)
        deployment = kinds(docs, "Deployment")[0]
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        assert "--standalone" not in args and "--peering=ff-flops-fit" in args
        assert {c["metadata"]["name"] for c in kinds(docs, "CustomResourceDefinition")} >= {
            "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
        rules = [r for role in kinds(docs, "ClusterRole") + kinds(docs, "Role") for r in role["rules"]
                 if r["apiGroups"] == ["kopf.dev"]]
        assert rules and all(r["resources"] == [plural] for r in rules)
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["FF_PEERING_LIFETIME"] == "15"
        assert env.get("FF_PEERING_NAMESPACES") == ("research" if plural == "kopfpeerings" else None)
    single = render([])
    assert not [c for c in kinds(single, "CustomResourceDefinition") if c["spec"]["group"] == "kopf.dev"]


def test_the_crd_is_the_generated_one_kept_on_uninstall_and_optional():
    crd = kinds(render([]), "CustomResourceDefinition")[0]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    generated = yaml.safe_load((REPO / "crds" / "scalingsweeps.flopsfit.dev.yaml").read_text())
    assert crd["spec"] == generated["spec"]
    assert kinds(render(["--set", "crds.install=false"]), "CustomResourceDefinition") == []


@pytest.mark.parametrize("bad, message", [
    (["--set", "operator.healthPort=80"], "minimum"),
    (["--set", "operator.watchNamespaces={Bad_NS}"], "pattern"),
    (["--set", "operator.image.pullPolicy=Sometimes"], "operator/image/pullPolicy"),
    (["--set", "unknownKey=1"], "unknownKey"),
])
def test_values_schema_rejects_bad_values(bad, message):
    result = subprocess.run([helm(), "template", "ff", str(CHART), *bad], capture_output=True, text=True)
    assert result.returncode != 0 and message in result.stderr, result.stderr
