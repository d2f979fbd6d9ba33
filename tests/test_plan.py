"""Planning: deterministic ids and order, D from the budget, the window, and notes for thin budgets."""

from __future__ import annotations

import re

import pytest

from ff_core.errors import SpecError
from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep


def test_same_spec_same_plan_and_ids(tiny_manifest):
    first = plan_sweep(parse_sweep(tiny_manifest))
    second = plan_sweep(parse_sweep(tiny_manifest))
    assert first == second
    assert [e.index for e in first.experiments] == list(range(len(first.experiments)))
    for e in first.experiments:
        assert re.fullmatch(r"e[0-9a-f]{11}", e.id)


def test_ids_are_pinned(tiny_manifest):
    # Ids are a contract (Job names, store keys): changing how they are computed must be deliberate.
    ids = [e.id for e in plan_sweep(parse_sweep(tiny_manifest)).experiments]
    assert len(set(ids)) == len(ids) == 6
    assert ids == ["ec491e45f979", "ec0e70a245ef", "e3d7522285a4", "eaeab21690d1", "eacf39f67b62", "e7173e850540"]


def test_ids_ignore_logging_but_follow_training(tiny_manifest):
    base = [e.id for e in plan_sweep(parse_sweep(tiny_manifest)).experiments]
    tiny_manifest["spec"]["training"]["logPoints"] = 20
    tiny_manifest["metadata"]["name"] = "renamed"
    assert [e.id for e in plan_sweep(parse_sweep(tiny_manifest)).experiments] == base
    tiny_manifest["spec"]["training"]["learningRate"] = 1e-3
    assert not set(e.id for e in plan_sweep(parse_sweep(tiny_manifest)).experiments) & set(base)


def test_tokens_follow_budget_and_whole_batches(tiny_manifest):
    plan = plan_sweep(parse_sweep(tiny_manifest))
    assert [e.budget for e in plan.experiments] == sorted(e.budget for e in plan.experiments)
    for e in plan.experiments:
        assert e.tokens % 512 == 0 and e.steps == e.tokens // 512
        assert e.flops == pytest.approx(6 * e.n_params * e.tokens)
        assert e.flops == pytest.approx(e.budget, rel=0.5 * 512 / e.tokens + 1e-9)  # within half a batch


def test_flops_per_token_override(tiny_manifest):
    tiny_manifest["spec"]["sizes"][0]["flopsPerToken"] = 1.0e5
    plan = plan_sweep(parse_sweep(tiny_manifest))
    xs = [e for e in plan.experiments if e.size == "xs"][0]
    assert xs.flops == pytest.approx(1.0e5 * xs.tokens)
    assert xs.tokens == round(6e8 / 1e5 / 512) * 512


def test_window_selects_centred_run_and_explains_thin_budgets(tiny_manifest):
    tiny_manifest["spec"]["tokensPerParam"] = {"min": 0.5, "max": 200}
    plan = plan_sweep(parse_sweep(tiny_manifest))
    assert all(0.5 <= e.tokens_per_param <= 200 for e in plan.experiments)
    assert any("fewer than the 3 an isoFLOP parabola needs" in n and "outside [0.5, 200]" in n for n in plan.notes)


def test_centred_selection_when_more_sizes_fit(tiny_manifest):
    sizes = tiny_manifest["spec"]["sizes"]
    sizes.append({"name": "l", "knobs": {"d_model": 40, "n_layers": 2, "n_heads": 2}, "nParams": 50000})
    sizes.append({"name": "xl", "knobs": {"d_model": 48, "n_layers": 2, "n_heads": 2}, "nParams": 70000})
    tiny_manifest["spec"]["tokensPerParam"] = {"min": 0.01, "max": 1000}
    plan = plan_sweep(parse_sweep(tiny_manifest))
    at = [e for e in plan.experiments if e.budget == 1.2e9]
    assert len(at) == 3
    names = [e.size for e in at]
    assert names == sorted(names, key=["xs", "s", "m", "l", "xl"].index)  # consecutive in N


def test_missing_nparams_says_how_to_fill(tiny_manifest):
    del tiny_manifest["spec"]["sizes"][1]["nParams"]
    with pytest.raises(SpecError, match=r"sizes\[1\] \(s\): nParams is missing; run `ffctl plan SWEEP --write`"):
        plan_sweep(parse_sweep(tiny_manifest))


def test_duplicate_knobs_rejected(tiny_manifest):
    tiny_manifest["spec"]["sizes"][1]["knobs"] = dict(tiny_manifest["spec"]["sizes"][0]["knobs"])
    with pytest.raises(SpecError, match="sizes xs and s have the same knobs"):
        plan_sweep(parse_sweep(tiny_manifest))


def test_nothing_planned_is_an_error(tiny_manifest):
    tiny_manifest["spec"]["budgets"] = [1.0e3]
    with pytest.raises(SpecError, match="plans no experiments.*less than one global batch"):
        plan_sweep(parse_sweep(tiny_manifest))


def test_a_learning_rate_law_is_checked_at_every_point(tiny_manifest):
    """A law that gives some planned point a rate outside (0, 1] is refused naming that point; one whose rate
    depends on D cannot drive a WSD sweep (one trunk per size serves every token count)."""
    import copy

    from ff_core.errors import SpecError

    bad = copy.deepcopy(tiny_manifest)
    bad["spec"]["training"]["learningRate"] = {"law": "power", "c": 1.0, "nExponent": 0.5}
    with pytest.raises(SpecError, match=r"gives experiment e[0-9a-f]{11} \(N .*outside \(0, 1\]"):
        plan_sweep(parse_sweep(bad))
    wsd = copy.deepcopy(tiny_manifest)
    wsd["spec"]["training"] |= {"schedule": "wsd", "warmupTokens": 1024,
                                "learningRate": {"law": "power", "c": 0.01, "dExponent": 0.1}}
    with pytest.raises(SpecError, match="cannot depend on D: set learningRate.dExponent 0"):
        parse_sweep(wsd)
    wsd["spec"]["training"]["learningRate"] = {"law": "power", "c": 0.03, "nExponent": -0.2}
    assert len(plan_sweep(parse_sweep(wsd)).experiments) == 6  # a law in N alone is fine


def test_a_ladder_adds_each_sizes_runs_at_its_token_multipliers(tiny_manifest):
    """ladder.tokenMultipliers: each of its sizes also at D = M N (whole batches), after the grid, with ids of
    their own; a point the grid already has is not planned twice; under one batch is a note; unknown sizes and
    repeated multipliers are refused."""
    grid = plan_sweep(parse_sweep(tiny_manifest)).experiments
    tiny_manifest["spec"]["ladder"] = {"tokenMultipliers": [80, 20, 0.001], "sizes": ["xs", "m"]}
    plan = plan_sweep(parse_sweep(tiny_manifest))
    ladder = [e for e in plan.experiments if e.ladder is not None]
    assert plan.experiments[: len(grid)] == tuple(grid)  # the grid's ids are untouched
    assert [(e.size, e.ladder) for e in ladder] == [("xs", 20), ("xs", 80), ("m", 20), ("m", 80)]
    for e in ladder:
        assert e.tokens % 512 == 0 and abs(e.tokens - e.ladder * e.n_params) <= 256 and e.identity["ladder"] == e.ladder
        assert e.budget == pytest.approx(e.flops, rel=1e-6)
    assert len({e.id for e in plan.experiments}) == len(plan.experiments)
    assert any("ladder: xs at M=0.001 is less than one global batch" in n for n in plan.notes)
    same = tiny_manifest["spec"]["ladder"] = {"tokenMultipliers": [grid[0].tokens / grid[0].n_params],
                                              "sizes": [grid[0].size]}
    assert same and len(plan_sweep(parse_sweep(tiny_manifest)).experiments) == len(grid)  # already on the grid
    tiny_manifest["spec"]["ladder"] = {"tokenMultipliers": [20], "sizes": ["xl"]}
    with pytest.raises(SpecError, match="ladder.sizes names xl, not in sizes"):
        parse_sweep(tiny_manifest)
    tiny_manifest["spec"]["ladder"] = {"tokenMultipliers": [20, 20]}
    with pytest.raises(SpecError, match="tokenMultipliers repeat a value"):
        parse_sweep(tiny_manifest)
