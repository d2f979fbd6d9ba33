"""`ffctl compare`: two recipes in compute-equivalent terms, recovered from synthetic sweeps of known truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ff_client.cli import main
from ff_client.fit.analysis import Settings, analyze
from ff_client.fit.compare import compare
from ff_client.fit.points import Observations
from synthetic import CHINCHILLA, isoflop_points

SETTINGS = Settings(resamples=120, seed=0, workers=2)
FACTOR = 1.3  # recipe B is worth 1.3x the compute of recipe A


def better_by(truth: dict, factor: float) -> dict:
    """The surface L_B(N, D) = L_A(kN, kD), k = sqrt(factor): at compute C, B's optimal loss is A's at factor x C."""
    k = np.sqrt(factor)
    return truth | {"A": truth["A"] * k ** -truth["alpha"], "B": truth["B"] * k ** -truth["beta"]}


def sweep(name: str, truth: dict, seed: int) -> Observations:
    points = isoflop_points(truth, budgets=(1e18, 1e19, 1e20, 1e21), per_budget=7, noise=0.003, seed=seed)
    return Observations(name, tuple(points))


@pytest.fixture(scope="module")
def recipe_a():
    return analyze(sweep("A", CHINCHILLA, 1), SETTINGS)


def test_a_known_compute_multiplier_is_recovered(recipe_a):
    b = analyze(sweep("B", better_by(CHINCHILLA, FACTOR), 2), SETTINGS)
    result = compare(recipe_a, b, targets=(1e19, 1e21, 1e22))
    for c in (1e19, 1e21):  # within the sweeps' budgets
        m = result.multiplier[c]
        assert m.value == pytest.approx(FACTOR, rel=0.06)
        assert m.low <= FACTOR <= m.high  # the truth inside the interval
        assert result.gap[c].value > 0  # A's loss is higher at equal compute
    far = result.multiplier[1e22]  # 10x beyond the largest budget: wider, still covering the truth
    assert far.low <= FACTOR <= far.high and far.high - far.low > result.multiplier[1e21].high - result.multiplier[1e21].low
    assert result.exponent_difference.low <= 0 <= result.exponent_difference.high  # same exponents


def test_identical_sweeps_give_a_multiplier_of_one(recipe_a):
    result = compare(recipe_a, recipe_a, targets=(1e19, 1e21))
    for c in (1e19, 1e21):
        assert result.multiplier[c].value == pytest.approx(1.0, rel=1e-6)
        assert result.multiplier[c].low <= 1.0 <= result.multiplier[c].high
        assert result.gap[c].value == pytest.approx(0.0, abs=1e-12)


def test_a_changed_exponent_is_recovered(recipe_a):
    steeper = CHINCHILLA | {"alpha": 0.40}  # B's N_opt exponent a = beta / (alpha + beta) is lower
    b = analyze(sweep("B", steeper, 3), SETTINGS)
    truth = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"]) - 0.28 / (0.40 + 0.28)
    d = compare(recipe_a, b, targets=(1e20,)).exponent_difference
    assert d.value == pytest.approx(truth, abs=0.02) and d.low <= truth <= d.high


def test_compare_command_on_two_points_files(tmp_path):
    for name, truth, seed in (("a", CHINCHILLA, 1), ("b", better_by(CHINCHILLA, FACTOR), 2)):
        rows = ["n_params,tokens,loss,budget"] + [f"{p.n_params},{p.tokens},{p.loss},{p.budget}"
                                                   for p in sweep(name, truth, seed).points]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--target-flops",
                                       "1e21", "--bootstrap", "60", "--json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"][0]["flops"] == 1e21
    assert data["rows"][0]["multiplier"]["value"] == pytest.approx(FACTOR, rel=0.06)
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"compare.md", "compare.json", "compare.png"}
    text = CliRunner().invoke(main, ["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--bootstrap", "0"])
    assert text.exit_code == 0 and "| FLOPs | multiplier | loss gap |" in text.stdout
    missing = CliRunner().invoke(main, ["compare", str(tmp_path / "a.csv"), str(tmp_path / "nope.csv")])
    assert missing.exit_code != 0 and "nope.csv" in missing.output


def test_published_recipes_cross_over_inside_the_measured_range():
    """Porian et al.'s cosine-decay and tuned constant-rate sweeps: their own per-budget optima say cosine needs
    ~1.5x the compute at 1e17 and ~0.5x at 1.28e19, crossing over near 5e17. The fitted laws said 1.63 and
    0.24 (they bend the frontier); the measured rows say what the sweeps measured."""
    from conftest import REPO
    from ff_client.fit.datafile import load_points

    folder = REPO / "benchmarks" / "published"
    cosine, tuned = (analyze(load_points(folder / f"porian-rw-{n}.csv"), Settings(resamples=60, workers=2))
                     for n in ("cosine", "tuned"))
    result = compare(cosine, tuned)
    assert all(result.basis[c] == "measured" for c in result.targets)
    assert result.multiplier[1e17].value == pytest.approx(1.5, abs=0.1)
    assert result.multiplier[1.28e19].value == pytest.approx(0.53, abs=0.05)
    m = result.multiplier[1e17]
    assert m.low <= m.value <= m.high
    (low, high, at), = result.crossovers
    assert low <= at <= high and 3e17 < at < 1e18
    assert "crossover: the better recipe changes between" in result.text()
    assert result.to_json()["crossovers"][0]["between"] == [low, high]


def test_sweeps_with_no_budget_in_common_warn_and_say_how_far_they_extrapolate(recipe_a):
    far = analyze(Observations("far", tuple(isoflop_points(budgets=(1e24, 1e25, 1e26, 1e27), noise=0.003, seed=4))),
                  SETTINGS)
    result = compare(recipe_a, far)
    assert all(result.basis[c] == "law" for c in result.targets)
    assert any("share no compute budget" in w for w in result.warnings)
    assert all(result.reach[c] > 10 for c in result.targets)
    assert any("extrapolate" in w and "beyond the measured budgets" in w for w in result.warnings)
    assert "beyond the data" in result.text()
