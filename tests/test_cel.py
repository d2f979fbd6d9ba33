"""The CRD's CEL rules, compiled and evaluated (cel-python) as the API server would on create and update:
examples pass, an oversized sweep is refused, plan-defining fields cannot change, execution can."""

from __future__ import annotations

import copy
from pathlib import Path

import celpy
import pytest

from conftest import TINY
from ff_core.crd import IMMUTABLE, MAX_EXPERIMENTS, crd_manifest
from ff_core.spec import load_sweep

REPO = Path(__file__).resolve().parents[1]


def rules(node: dict, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str, str]]:
    """Every x-kubernetes-validations rule in a schema, with the property path it applies to."""
    found = [(path, v["rule"], v.get("message", "")) for v in node.get("x-kubernetes-validations", [])]
    for name, sub in node.get("properties", {}).items():
        found += rules(sub, path + (name,))
    if "items" in node:
        found += rules(node["items"], path + ("[]",))
    return found


RULES = rules(crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
ENV = celpy.Environment()


def violations(new: dict, old: dict | None = None) -> list[str]:
    """Messages of the rules `new` breaks; transition rules (oldSelf) only on update, as Kubernetes does."""
    broken = []
    for path, rule, message in RULES:
        assert "[]" not in path, "rules inside lists are not evaluated here"
        if "oldSelf" in rule and old is None:
            continue
        here, before = new, old
        for key in path:
            here, before = here.get(key, {}), (before or {}).get(key, {})
        variables = {"self": here} | ({"oldSelf": before} if old is not None else {})
        if not ENV.program(ENV.compile(rule)).evaluate(celpy.json_to_cel(variables)):
            broken.append(message)
    return broken


def manifest(**spec) -> dict:
    body = copy.deepcopy(TINY) | {"metadata": {"name": "unit"}}
    body["spec"] |= spec
    return body


def test_rules_exist_and_compile():
    assert len(RULES) == 3 + len(IMMUTABLE) + 2 + 1  # + the podTemplate's reserved prefix (labels, annotations), learningRate
    for _, rule, _ in RULES:
        ENV.compile(rule)


@pytest.mark.parametrize("path", sorted(REPO.glob("examples/*.yaml")), ids=lambda p: p.name)
def test_every_example_passes_on_create_and_on_a_no_op_update(path):
    body = load_sweep(str(path)).to_manifest()
    assert violations(body) == [] and violations(body, body) == []


def test_an_oversized_sweep_is_refused():
    points = TINY["spec"]["pointsPerBudget"]
    fits = [float(10**9 + i) for i in range(MAX_EXPERIMENTS // points)]
    assert violations(manifest(budgets=fits)) == []
    too_many = violations(manifest(budgets=fits + [1e12]))
    assert too_many and too_many[0].startswith(f"the sweep would plan more than {MAX_EXPERIMENTS}")


@pytest.mark.parametrize("field, value", [("budgets", [6e8]), ("pointsPerBudget", 4),
                                          ("training", {"globalBatchTokens": 1024}), ("flops", {"plugin": "a.b:C"})])
def test_plan_defining_fields_cannot_change(field, value):
    old, new = manifest(), manifest(**{field: value})
    assert violations(new, old) == [f"spec.{field} defines the plan and cannot change; create a new sweep instead"]


def test_execution_may_change():
    old, new = manifest(), manifest(execution={"parallelism": 8, "suspend": True})
    assert violations(new, old) == []


def test_packing_needs_experiments_of_one_gpu():
    assert violations(manifest(execution={"experimentsPerGPU": 4, "gpusPerExperiment": 1})) == []
    refused = violations(manifest(execution={"experimentsPerGPU": 4, "gpusPerExperiment": 2}))
    assert refused == ["experimentsPerGPU packs experiments of one GPU each; set gpusPerExperiment 1 (or 0) and "
                       "nodesPerExperiment 1, or experimentsPerGPU 1"]


def test_a_pod_template_may_not_use_the_operators_prefix():
    topology = {"kueue.x-k8s.io/podset-required-topology": "cloud.google.com/gce-topology-block"}
    fine = manifest(execution={"podTemplate": {"metadata": {"labels": {"team": "llm"}, "annotations": topology}}})
    assert violations(fine) == []
    for field in ("labels", "annotations"):
        refused = violations(manifest(execution={"podTemplate": {"metadata": {field: {"flopsfit.dev/sweep": "x"}}}}))
        assert refused == [f"podTemplate {field}: the flopsfit.dev/ prefix is the operator's own; use another prefix"]


def test_multikueue_needs_a_queue():
    assert violations(manifest(execution={"managedBy": "kueue.x-k8s.io/multikueue", "queueName": "q"})) == []
    assert violations(manifest(execution={"managedBy": "kueue.x-k8s.io/multikueue"})) == [
        "execution.managedBy needs execution.queueName: MultiKueue dispatches only queued Jobs"]


@pytest.mark.parametrize("rate, allowed", [
    (3e-3, True), (1, True), (1.5, False), (0, False), ("fast", False),
    ({"law": "power", "c": 0.5, "nExponent": -0.3, "dExponent": 0.1}, True), ({"c": 2, "nExponent": -1}, True),
    ({"law": "cosine", "c": 0.5}, False), ({"c": -1.0}, False), ({"nExponent": -0.3}, False),
    ({"c": 1.0, "nExponent": "steep"}, False), ({"c": 0.5, "nExponentSlope": -0.2}, True),
    ({"c": 0.5, "nExponentSlope": "moving"}, False), ({"c": 1.0, "warmup": 3}, False), ([3e-3], False)])
def test_a_learning_rate_is_a_number_or_a_law(rate, allowed):
    """The CRD keeps training.learningRate as any value (its two forms); CEL refuses what is neither, before any
    Job, as the operator's own validation would."""
    body = manifest()
    body["spec"]["training"] = dict(body["spec"]["training"], learningRate=rate)
    message = "training.learningRate is a number in (0, 1] or a law"
    assert (not any(message in m for m in violations(body))) == allowed
