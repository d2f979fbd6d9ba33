"""The CRD: generated from ff_core's models, committed, structural, with the rules the issue names."""

from __future__ import annotations

import yaml

from ff_core.spec import SweepSpec
from ff_operator.crd import CHART_CRD_PATH, CRD_PATH, IMMUTABLE, crd_manifest, render


def test_committed_crd_equals_the_models():
    assert CRD_PATH.read_text() == render(), "the models changed: run `python -m ff_operator.crd --write`"
    assert CHART_CRD_PATH.read_text() == render(), "the chart's CRD is stale: run `python -m ff_operator.crd --write`"


def _nodes(schema, path="spec"):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural_and_mirrors_every_field():
    version = yaml.safe_load(CRD_PATH.read_text())["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, node in _nodes(spec):
        # structural: a type everywhere, but where any value is kept (training.learningRate: a number or a law)
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, f"{path} has no type"
        assert not {"$ref", "anyOf", "oneOf", "allOf", "$defs"} & set(node), path
        if node.get("type") == "object":
            assert "properties" in node or "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
    # every field of the pydantic models is in the schema, by its wire name
    assert set(spec["properties"]) == {f.alias or n for n, f in SweepSpec.model_fields.items()}
    training = spec["properties"]["training"]["properties"]
    assert training["globalBatchTokens"]["minimum"] == 0 and training["globalBatchTokens"]["exclusiveMinimum"] is True
    assert spec["properties"]["execution"]["properties"]["parallelism"]["minimum"] == 1
    assert spec["properties"]["execution"]["properties"]["failurePolicy"]["enum"] == ["LetFinish", "StopActive"]
    assert spec["properties"]["budgets"]["minItems"] == 1 and spec["properties"]["sizes"]["minItems"] == 1
    assert spec["properties"]["model"]["properties"]["plugin"]["pattern"].startswith("^")


def test_rules_status_and_columns():
    crd = crd_manifest()
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["sweep"] and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Done", "Total", "Running", "Queued", "Failed", "Age"]
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert "<= 2000" in rules[0]["rule"]
    assert {f for f in IMMUTABLE if any(f"self.{f} == oldSelf.{f}" in r["rule"] for r in rules)} == set(IMMUTABLE)
