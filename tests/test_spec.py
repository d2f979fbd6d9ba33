"""Sweep validation: a good spec loads; each bad one fails with a message naming the field and the fix."""

from __future__ import annotations

import copy

import pytest

from ff_core.errors import SpecError
from ff_core.spec import load_sweep, parse_sweep


def test_good_spec_round_trips(tiny_manifest, write_sweep):
    sweep = load_sweep(write_sweep(tiny_manifest))
    assert sweep.name == "unit"
    assert sweep.spec.training.global_batch_sequences == 16
    assert sweep.spec.sizes[0].n_params == 7920
    again = parse_sweep(sweep.to_manifest())
    assert again == sweep
    assert again.to_manifest()["spec"]["training"]["globalBatchTokens"] == 512  # camelCase on the wire


def _mutate(manifest: dict, path: str, value) -> dict:
    manifest = copy.deepcopy(manifest)
    node = manifest
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return manifest


_DELETE = object()

BAD = [
    ("kind", "Sweep", "kind: Input should be 'ScalingSweep'"),
    ("apiVersion", "v1", "apiVersion: Input should be 'flopsfit.dev/v1alpha1'"),
    ("metadata.name", "My_Sweep", "metadata.name: 'My_Sweep' must be lowercase letters"),
    ("metadata.name", "x" * 41, "at most 40 characters"),
    ("spec.budgets", [], "spec.budgets: List should have at least 1 item"),
    ("spec.budgets.0", -1.0, "budgets[0] is -1; every budget must be > 0 FLOPs"),
    ("spec.budgets", [1e9, 1e9], "budgets repeat a value"),
    ("spec.sizes", [], "spec.sizes: List should have at least 1 item"),
    ("spec.sizes.1.name", "xs", "size names repeat: xs"),
    ("spec.sizes.0.nParams", 0, "spec.sizes[0].nParams: Input should be greater than 0"),
    ("spec.model.plugin", "ff_plugins.gpt.GPT", 'spec.model.plugin: \'ff_plugins.gpt.GPT\' is not an import path; write it as "package.module:Name"'),
    ("spec.data", _DELETE, "spec.data: required field is missing"),
    ("spec.trainig", {}, "spec.trainig: unknown field; remove it or check its spelling"),
    ("spec.training.globalBatchTokens", 500, "globalBatchTokens (500) must be a multiple of sequenceLength (32)"),
    ("spec.training.learningRate", 0, "spec.training.learningRate: Input should be greater than 0"),
    ("spec.training.learningRate", True, "spec.training.learningRate: a number is expected, not true"),
    ("spec.budgets.1", False, "spec.budgets: a number is expected, not false"),
    ("spec.training.seed", True, "spec.training.seed: a number is expected, not true"),
    ("spec.training.schedule", "step", "spec.training.schedule: Input should be 'cosine', 'linear', 'constant' or 'wsd'"),
    ("spec.tokensPerParam", {"min": 50, "max": 10}, "spec.tokensPerParam: min (50) must be below max (10)"),
    ("spec.pointsPerBudget", 2, "spec.pointsPerBudget: Input should be greater than or equal to 3"),
    ("spec.storage", {"uri": "gs://bucket"}, "spec.storage.uri: 'gs://bucket' must start with file:// or s3://"),
]


@pytest.mark.parametrize("path,value,message", BAD,  # ids the same in every process (pytest-xdist compares them)
                         ids=[(f"{p}=<deleted>" if v is _DELETE else f"{p}={v!r}")[:40] for p, v, _ in BAD])
def test_bad_spec_names_field_and_fix(tiny_manifest, path, value, message):
    with pytest.raises(SpecError) as info:
        parse_sweep(_mutate(tiny_manifest, path, value), "sweep.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("sweep.yaml: invalid sweep")


def test_unreadable_and_non_yaml_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read the sweep file"):
        load_sweep(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_sweep(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(SpecError, match="expected a ScalingSweep manifest"):
        load_sweep(scalar)


def test_yaml_exponent_without_dot_is_accepted(tiny_manifest, write_sweep, tmp_path):
    # YAML 1.1 reads `1e9` as a string; users write budgets that way, so it must still mean 1e9 FLOPs.
    path = tmp_path / "s.yaml"
    text = write_sweep(tiny_manifest).read_text().replace("- 600000000.0", "- 6e8")
    path.write_text(text)
    assert load_sweep(path).spec.budgets[0] == 6e8
