"""A store never mixes what it should not: the same sweep rerun with another learning rate is set aside,
not pooled; every plan that trained there is kept; records carry what their id hashes."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from conftest import TINY
from ff_client.cli import main
from ff_client.fit.points import load_observations
from ff_core.errors import StoreError
from ff_core.layout import plan_key, result_key, sweep_key
from ff_core.plan import identity_id, plan_sweep, recipe_hash
from ff_core.results import ResultRecord
from ff_core.spec import parse_sweep
from ff_core.store import FileStore, anchored


def _manifest(learning_rate: float) -> dict:
    manifest = copy.deepcopy(TINY)
    manifest["spec"]["budgets"] = [6.0e8, 1.2e9, 2.4e9]
    manifest["spec"]["training"]["learningRate"] = learning_rate
    return manifest


def _train(store: FileStore, manifest: dict, worse: float = 1.0) -> list[str]:
    """Write the records a run of this manifest leaves (losses from a known law), and its plan, as `ffctl run`."""
    plan = plan_sweep(parse_sweep(manifest))
    store.put_json(sweep_key("unit"), manifest)
    store.put_json(plan_key("unit", plan.hash), manifest)
    for e in plan.experiments:
        loss = worse * (1.7 + 400 / e.n_params ** 0.34 + 410 / e.tokens ** 0.28)
        store.put_json(result_key("unit", e.id), ResultRecord(
            sweep="unit", experiment=e.id, budget=e.budget, size=e.size, knobs=e.knobs, identity=e.identity,
            n_params=e.n_params, n_params_non_embedding=e.n_params, tokens=e.tokens, flops={"6nd": e.flops},
            status="completed", final_loss=loss, eval_loss=loss, loss_curve=[], tokens_per_second=1.0,
            wall_seconds=1.0, world_size=1, device="cpu", seed=0, versions={}).model_dump(mode="json"))
    return [e.id for e in plan.experiments]


def test_ids_are_the_hash_of_the_identity_records_carry():
    plan = plan_sweep(parse_sweep(_manifest(3e-3)))
    assert all(identity_id(e.identity) == e.id for e in plan.experiments)
    assert len({recipe_hash(e.identity) for e in plan.experiments}) == 1  # one recipe, many points
    other = plan_sweep(parse_sweep(_manifest(1e-3)))
    assert {recipe_hash(e.identity) for e in other.experiments} != {recipe_hash(e.identity) for e in plan.experiments}


def test_a_rerun_with_another_learning_rate_is_set_aside_not_pooled(tmp_path):
    store = FileStore(tmp_path / "store")
    first = _train(store, _manifest(3e-3))
    second = _train(store, _manifest(1e-3), worse=1.05)  # the latest run: the current plan
    assert len(store.list("unit/plans/")) == 2  # both plans kept
    observations = load_observations(FileStore(tmp_path / "store" / "unit"))
    assert {p.label for p in observations.points} == set(second)
    aside = {e.label: e.reason for e in observations.excluded}
    assert set(aside) == set(first) and "training.learning_rate 0.003 vs 0.001" in aside[first[0]]
    recipe = recipe_hash(plan_sweep(parse_sweep(_manifest(3e-3))).experiments[0].identity)
    assert f"--recipe {recipe}" in aside[first[0]]
    chosen = load_observations(FileStore(tmp_path / "store" / "unit"), recipe=recipe)
    assert {p.label for p in chosen.points} == set(first)
    with pytest.raises(StoreError, match="--all-recipes would pool 2 recipes at N="):
        load_observations(FileStore(tmp_path / "store" / "unit"), all_recipes=True)


def test_without_a_current_plan_two_recipes_are_refused_naming_the_difference(tmp_path):
    store = FileStore(tmp_path / "store")
    _train(store, _manifest(3e-3))
    _train(store, _manifest(1e-3))
    store.delete(sweep_key("unit"))  # e.g. trained on a cluster: no sweep.json
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "store" / "unit"), "--bootstrap", "0"])
    assert result.exit_code == 1 and "holds results of 2 recipes" in result.output
    assert "training.learning_rate" in result.output and "--recipe HASH" in result.output


def test_an_edited_record_is_excluded(tmp_path):
    store = FileStore(tmp_path / "store")
    ids = _train(store, _manifest(3e-3))
    record = store.get_json(result_key("unit", ids[0]))
    record["identity"]["tokens"] += 1  # no longer what its id hashes
    store.put_json(result_key("unit", ids[0]), record)
    observations = load_observations(FileStore(tmp_path / "store" / "unit"))
    assert {e.label: e.reason for e in observations.excluded}[ids[0]].startswith("its identity does not hash to its id")


def test_a_relative_store_is_anchored_at_the_sweep_files_folder(tmp_path):
    assert anchored("file://./results", tmp_path) == f"file://{tmp_path / 'results'}"
    assert anchored("file://results", tmp_path) == f"file://{tmp_path / 'results'}"
    assert anchored("file:///abs/results", tmp_path) == "file:///abs/results"
    assert anchored("s3://bucket/x", tmp_path) == "s3://bucket/x"
    assert json.dumps(anchored("file://../up", tmp_path / "a")) == json.dumps(f"file://{tmp_path / 'up'}")


def test_a_store_with_planned_points_missing_says_how_many_before_it_fits(tmp_path):
    import shutil

    from conftest import REPO

    store_dir = tmp_path / "store"
    shutil.copytree(REPO / "tests" / "data" / "demo-store", store_dir)
    gone = sorted(p for p in (store_dir / "tiny").iterdir() if p.is_dir())[:2]
    for folder in gone:
        shutil.rmtree(folder)
    observations = load_observations(FileStore(store_dir / "tiny"))
    planned = len(plan_sweep(parse_sweep(json.loads((store_dir / "tiny" / "sweep.json").read_text()), "x")).experiments)
    note, = [n for n in observations.notes if "have no result" in n]
    assert f"2 of the {planned} experiments the stored plan holds have no result" in note
    assert f"the fit sees {planned - 2} of them" in note
