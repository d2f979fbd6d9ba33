"""Fits recover known truths: Approach 2's exponents and minima, Approach 3's surface."""

from __future__ import annotations

import numpy as np
import pytest

from ff_client.fit.approaches.isoflop import fit_curve, fit_isoflop
from ff_client.fit.approaches.parabola import fit_parabola
from ff_client.fit.approaches.parametric import _objective, fit_parametric, refit_parametric
from synthetic import CHINCHILLA, isoflop_points, optimum

TRUTHS = [
    CHINCHILLA,
    {"E": 0.8, "A": 50.0, "B": 900.0, "alpha": 0.3, "beta": 0.45},
    {"E": 2.0, "A": 2000.0, "B": 100.0, "alpha": 0.5, "beta": 0.25},
]


@pytest.mark.parametrize("truth", TRUTHS, ids=["chinchilla", "data-hungry", "param-hungry"])
@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_isoflop_recovers_exponent(truth, noise):
    """7 sizes over 8x per budget. With 0.3% noise on these near-parabolic curves the local cubic scatters more
    than a parabola would (docs/analysis.md has the measured figures), hence the wider bound with noise."""
    fit = fit_isoflop(isoflop_points(truth, noise=noise, seed=1))
    a_true = truth["beta"] / (truth["alpha"] + truth["beta"])
    bound = 0.02 if noise == 0 else 0.04
    assert fit.n_opt.exponent == pytest.approx(a_true, abs=bound)
    assert fit.d_opt.exponent == pytest.approx(1 - a_true, abs=bound)
    assert all(c.interior for c in fit.curves)
    n_true, _ = optimum(truth, 1e20)
    assert fit.predict(1e20)["n_opt"] == pytest.approx(n_true, rel=0.15)


@pytest.mark.parametrize("truth", TRUTHS, ids=["chinchilla", "data-hungry", "param-hungry"])
@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_parametric_recovers_surface(truth, noise):
    fit = fit_parametric(isoflop_points(truth, noise=noise, seed=2))
    assert fit.alpha == pytest.approx(truth["alpha"], rel=0.05)
    assert fit.beta == pytest.approx(truth["beta"], rel=0.05)
    assert fit.a == pytest.approx(truth["beta"] / (truth["alpha"] + truth["beta"]), abs=0.02)
    assert fit.converged


def test_parametric_gradient_is_exact():
    points = isoflop_points(noise=0.01, seed=3)
    args = (np.log([p.n_params for p in points]), np.log([p.tokens for p in points]),
            np.log([p.loss for p in points]), 1e-3)
    theta = np.array([6.0, 6.2, 0.5, 0.35, 0.3])
    _, grad = _objective(theta, *args)
    step = 1e-6
    numeric = [(_objective(theta + step * e, *args)[0] - _objective(theta - step * e, *args)[0]) / (2 * step)
               for e in np.eye(5)]
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-9)


def test_off_centre_and_flat_curves_are_flagged():
    truth = CHINCHILLA
    n_opt, _ = optimum(truth, 1e20)
    shifted = [p for p in isoflop_points(truth, budgets=(1e20,), per_budget=9, span=60) if p.n_params > 2 * n_opt]
    curve = fit_curve(1e20, shifted)
    assert not curve.interior and "lies below the sizes sampled, the sweep is off-centre" in curve.problem
    bent = [p.__class__(p.n_params, p.tokens, 2.0 - 0.001 * i * i, p.budget, p.flops) for i, p in enumerate(shifted[:4])]
    assert "opens downward" in fit_parabola(1e20, bent, 1e-3).problem
    rng = np.random.default_rng(3)
    flat = [p.__class__(p.n_params, p.tokens, 2.0 * (1 + 0.001 * rng.standard_normal()), p.budget, p.flops)
            for p in isoflop_points(truth, budgets=(1e20,), per_budget=9)]
    flat[4] = flat[4].__class__(flat[4].n_params, flat[4].tokens, 1.99, 1e20, 1e20)  # an interior lowest point
    assert "too flat to locate a minimum" in fit_curve(1e20, flat, noise=0.004).problem
    fit = fit_isoflop(shifted)
    assert fit.n_opt is None and any("left out of the laws in C" in w for w in fit.warnings)


def test_single_local_run_stops_early_but_our_fit_does_not():
    """The known failure (Besiroglu et al. 2024): one L-BFGS-B run from a fixed start stops short."""
    from scipy.optimize import minimize

    points = isoflop_points(noise=0.005, seed=11)
    data = (np.log([p.n_params for p in points]), np.log([p.tokens for p in points]), np.log([p.loss for p in points]))
    single = minimize(_objective, np.array([5.0, 5.0, 0.0, 0.5, 0.5]), args=(*data, 1e-3), jac=True, method="L-BFGS-B")
    ours = fit_parametric(points)
    assert single.fun > 1.2 * ours.objective  # stopped early, well above the optimum
    assert abs(ours.alpha - 0.34) < abs(single.x[3] - 0.34)
    assert ours.converged


def test_planted_outliers_are_flagged_and_kept_unless_asked():
    from ff_client.fit.analysis import Settings, analyze
    from ff_client.fit.points import Observations

    points = isoflop_points(noise=0.002, seed=4)
    planted = {3, 17}
    noisy = tuple(p if i not in planted else p.__class__(p.n_params, p.tokens, p.loss * 1.08, p.budget, p.flops, f"bad{i}")
                  for i, p in enumerate(points))
    kept = analyze(Observations("s", noisy), Settings(resamples=0))
    assert {f.point.label for f in kept.outliers} == {"bad3", "bad17"} and not kept.excluded
    assert len(kept.points) == len(points) and any("bad3: far off the parametric fit" in w for w in kept.warnings)
    assert "## Flagged outliers" in kept.text() and {o["label"] for o in kept.to_json()["outliers"]} == {"bad3", "bad17"}
    result = analyze(Observations("s", noisy), Settings(resamples=0, exclude_outliers=True))
    assert {e.label for e in result.excluded} == {"bad3", "bad17"}
    assert all("outlier" in e.reason for e in result.excluded) and len(result.points) == len(points) - 2
    clean = analyze(Observations("s", tuple(points)), Settings(resamples=0))
    assert not clean.excluded and not clean.outliers


def test_far_from_optimum_runs_are_kept_and_the_truth_recovered():
    """A sweep that follows the law exactly, with heavy-tailed noise (Student t, 3 dof) and sizes 30x either
    side of the optimum: every point is a legitimate run. The default keeps them all and recovers the surface;
    the residual rule (the old default, now --exclude-outliers) throws legitimate runs away."""
    from ff_client.fit.analysis import Settings, analyze
    from ff_client.fit.points import Observations

    rng = np.random.default_rng(7)
    points = isoflop_points(span=900, per_budget=13, noise=0.0)
    noisy = tuple(p.__class__(p.n_params, p.tokens, p.loss * np.exp(0.002 * rng.standard_t(3)), p.budget, p.flops,
                              f"p{i}") for i, p in enumerate(points))
    default = analyze(Observations("s", noisy), Settings(resamples=0))
    assert not default.excluded and len(default.points) == len(points)
    surface = default.fit("parametric")
    assert surface.alpha == pytest.approx(CHINCHILLA["alpha"], rel=0.05)
    assert surface.beta == pytest.approx(CHINCHILLA["beta"], rel=0.05)
    naive = analyze(Observations("s", noisy), Settings(resamples=0, exclude_outliers=True))
    assert len(naive.excluded) >= 2  # legitimate runs, dropped by the residual rule


def test_broken_runs_are_excluded_and_named(tmp_path):
    """Diverged, non-finite, untrained and non-monotone runs (worse than the same size on fewer tokens) never
    enter a fit."""
    from dataclasses import replace

    from ff_client.fit.analysis import Settings, analyze
    from ff_client.fit.points import load_observations
    from ff_core.store import FileStore
    from synthetic import record_for

    points = isoflop_points(noise=0.002, seed=6)
    store = FileStore(tmp_path / "store")
    for i, p in enumerate(points):
        store.put_json(f"synth/e{i:011d}/result.json", record_for(replace(p, label=f"e{i:011d}")))
    small, largest = points[0], max(p.budget for p in points)  # the smallest size of the smallest budget ...
    broken = replace(small, budget=largest, flops=largest, tokens=largest / (6 * small.n_params),  # ... on 1000x the
                     loss=small.loss * 1.10, label="ebroken00001")  # tokens, and 10% worse: that run broke
    store.put_json("synth/ebroken00001/result.json", record_for(broken))
    store.put_json("synth/ediverged001/result.json", record_for(replace(points[0], label="ediverged001"), status="diverged"))
    flat = record_for(replace(points[2], label="eflat0000001"))
    flat["untrained_loss"], flat["eval_loss"] = 5.545, 5.6  # no better than a uniform guess over 256 bytes
    store.put_json("synth/eflat0000001/result.json", flat)
    nan = record_for(replace(points[1], label="enan00000001"))
    nan["eval_loss"] = float("nan")
    store.put_json("synth/enan00000001/result.json", nan)
    result = analyze(load_observations(store), Settings(resamples=0))
    reasons = {e.label: e.reason for e in result.excluded}
    assert set(reasons) == {"ebroken00001", "ediverged001", "enan00000001", "eflat0000001"}
    assert "no better than an untrained model's (5.545)" in reasons["eflat0000001"]
    assert "worse than the same size" in reasons["ebroken00001"] and "diverged" in reasons["ediverged001"]
    assert "not a positive finite number" in reasons["enan00000001"]
    assert len(result.points) == len(points)


def test_local_fits_recover_the_exponent_where_one_parabola_over_all_points_is_biased():
    """A fixed model family spanning every budget's optimum 30x either side (the sweep is off-centre by a
    different amount at each budget) on a skewed, data-hungry surface: one parabola over all points of a
    budget is pulled by the far points, and the pull changes with the budget, so the exponent a is off by
    ~0.04. The local cubic (the headline) and the local parabola (its cross-check) recover a within 0.02."""
    from ff_client.fit.approaches.isoflop import MIN_TOLERANCE, fit_isoflop
    from ff_client.fit.approaches.parabola import fit_parabolas
    from ff_client.fit.laws import fit_power_law
    from ff_client.fit.points import Point

    truth = TRUTHS[1]
    a_true = truth["beta"] / (truth["alpha"] + truth["beta"])
    budgets = (1e18, 1e19, 1e20, 1e21)
    sizes = np.geomspace(optimum(truth, budgets[0])[0] / 30, optimum(truth, budgets[-1])[0] * 30, 16)
    points = [Point(float(n), c / (6 * n), truth["E"] + truth["A"] / n ** truth["alpha"]
                    + truth["B"] / (c / (6 * n)) ** truth["beta"], c, c) for c in budgets for n in sizes]
    local = fit_isoflop(points)
    everything = fit_isoflop_all_points(points, budgets)
    assert abs(fit_power_law("n", np.array(budgets), everything).exponent - a_true) > 0.03  # the bias
    assert local.n_opt.exponent == pytest.approx(a_true, abs=0.02)
    parabolas = fit_parabolas(points)
    assert parabolas.n_opt.exponent == pytest.approx(a_true, abs=0.02)
    assert any(c.used < len(c.points) for c in parabolas.curves)
    assert MIN_TOLERANCE == 1e-3


def fit_isoflop_all_points(points, budgets) -> np.ndarray:
    """N_opt per budget from one parabola in ln N over every point (the estimator the local one replaces)."""
    out = []
    for c in budgets:
        x = np.log([p.n_params for p in points if p.budget == c])
        c2, c1, _ = np.polyfit(x, [p.loss for p in points if p.budget == c], 2)
        out.append(np.exp(-c1 / (2 * c2)))
    return np.array(out)


def test_on_published_style_sweeps_the_local_parabola_is_hoffmanns():
    """Sizes around each budget's optimum (8x span), 0.3% noise: the window is every point, so the estimate is
    the published one (one parabola per budget) to the last digit."""
    from ff_client.fit.approaches.parabola import fit_parabolas

    points = isoflop_points(per_budget=9, noise=0.003, seed=12)
    fit = fit_parabolas(points)
    assert all(c.used == len(c.points) == 9 for c in fit.curves)
    budgets = sorted({p.budget for p in points})
    assert [c.n_opt for c in fit.curves] == pytest.approx(list(fit_isoflop_all_points(points, budgets)), rel=1e-12)


def test_backtest_scores_the_held_out_budget():
    from ff_client.fit.approach import Settings
    from ff_client.fit.backtest import backtest

    result = backtest(tuple(isoflop_points(noise=0.001, seed=9)))
    assert result["held_out"] == 1e21
    assert abs(result["isoflop"]["n_opt_error"]) < 0.15 and abs(result["parametric"]["l_opt_error"]) < 0.005
    assert backtest(tuple(isoflop_points(budgets=(1e18, 1e19, 1e20)))) is None  # fewer than 4 budgets
    bootstrapped = backtest(tuple(isoflop_points(noise=0.003, seed=9)), Settings(resamples=100, workers=2))
    for approach in ("isoflop", "parametric"):
        low, high = bootstrapped[approach]["n_opt_interval"]
        assert low <= bootstrapped[approach]["n_opt"] <= high
        assert set(bootstrapped[approach]["covered"]) == {"n_opt", "l_opt"}
    assert bootstrapped["parametric"]["covered"]["l_opt"]  # the held-out truth inside the interval


def test_extrapolated_rows_say_how_far_they_reach():
    from ff_client.fit.analysis import Settings, analyze
    from ff_client.fit.points import Observations
    from ff_client.fit.table import to_markdown

    analysis = analyze(Observations("s", tuple(isoflop_points(noise=0.002, seed=4))), Settings(resamples=30, workers=2,
                                                                                                targets=(3e21,)))
    reach = {(r.flops, r.kind): r.reach for r in analysis.rows if r.approach == "isoflop"}
    assert reach[(1e21, "sweep")] == 1 and reach[(1e22, "extrapolated")] == pytest.approx(10)
    assert reach[(1e23, "extrapolated")] == pytest.approx(100)
    assert reach[(3e21, "target")] == pytest.approx(3)
    table = to_markdown(list(analysis.rows))
    assert "| extrapolated x10 |" in table and "| extrapolated x100 |" in table and "| target x3 |" in table
    extrapolated = [r for r in analysis.rows if r.kind == "extrapolated"]
    assert all(r.n_opt.low is not None for r in extrapolated)  # their intervals come from the bootstrap


@pytest.mark.long
def test_nominal_95_intervals_cover_the_truth():
    """Repeated synthetic trials: the bootstrap's 95% intervals must cover the truth in >= 85% of them."""
    from ff_client.fit.approach import FitData, Settings
    from ff_client.fit.approaches import isoflop, parametric
    from ff_client.fit.bootstrap import bootstrap, numbers

    truth = CHINCHILLA
    a_true = truth["beta"] / (truth["alpha"] + truth["beta"])
    covered = {"alpha": 0, "beta": 0, "a3": 0, "a2": 0}
    trials = 30
    for trial in range(trials):
        points = isoflop_points(noise=0.01, seed=100 + trial)
        central = {a.name: (a, fit, numbers(a, fit, ())) for a in (isoflop.APPROACH, parametric.APPROACH)
                   for fit in [a.fit(FitData(tuple(points)), Settings())]}
        boot = bootstrap(FitData(tuple(points)), central, (), Settings(resamples=150, seed=trial, workers=2))
        p, i = boot["parametric"].parameters, boot["isoflop"].parameters
        covered["alpha"] += p["alpha"].low <= truth["alpha"] <= p["alpha"].high
        covered["beta"] += p["beta"].low <= truth["beta"] <= p["beta"].high
        covered["a3"] += p["a"].low <= a_true <= p["a"].high
        covered["a2"] += i["a"].low <= a_true <= i["a"].high
    rates = {k: v / trials for k, v in covered.items()}
    assert all(rate >= 0.85 for rate in rates.values()), rates


def test_kaplan_laws_recovered_on_the_envelope():
    from ff_client.fit.approaches.kaplan import fit_kaplan, fit_loss_law, lower_envelope
    from ff_client.fit.points import Point

    n_only = [Point(n, 1e12, (8.8e13 / n) ** 0.076, 1.0, 1.0) for n in np.geomspace(1e6, 1e9, 6)]
    n_only.append(Point(3e6, 1e12, 9.0, 1.0, 1.0))  # beaten by a smaller model: off the envelope
    assert len(lower_envelope(n_only, lambda p: p.n_params)) == 6
    alpha, n_c, r2 = fit_loss_law(n_only, lambda p: p.n_params)
    assert alpha == pytest.approx(0.076, rel=1e-6) and n_c == pytest.approx(8.8e13, rel=1e-4) and r2 > 0.9999
    d_only = [Point(1e9, d, (5.4e13 / d) ** 0.095, 1.0, 1.0) for d in np.geomspace(1e8, 1e11, 6)]
    alpha_d, d_c, _ = fit_loss_law(d_only, lambda p: p.tokens)
    assert alpha_d == pytest.approx(0.095, rel=1e-6) and d_c == pytest.approx(5.4e13, rel=1e-4)
    sweep = fit_kaplan(tuple(isoflop_points(noise=0.0)))
    assert sweep.alpha_n > 0 and sweep.alpha_d > 0


def test_approach_1_from_training_curves():
    """Curves that follow the true surface at every token count: their envelope gives a near the truth."""
    from ff_client.fit.approaches.curves import fit_training_curves
    from ff_core.results import ResultRecord

    truth, records = CHINCHILLA, []
    for i, n in enumerate(np.geomspace(1e8, 5e10, 16)):  # spans N_opt over the curves' compute range
        d = 1e23 / (6 * n)
        tokens = np.geomspace(d / 300, d, 60)
        loss = truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / tokens ** truth["beta"]
        records.append(ResultRecord(
            sweep="s", experiment=f"e{i}", budget=1e23, size="s", knobs={}, n_params=int(n), n_params_non_embedding=int(n),
            tokens=int(d), flops={"6nd": 6 * int(n) * int(d)}, status="completed", final_loss=float(loss[-1]),
            eval_loss=float(loss[-1]), loss_curve=[{"step": j, "tokens": int(t), "loss": float(v)} for j, (t, v) in
                                                   enumerate(zip(tokens, loss))],
            tokens_per_second=1, wall_seconds=1, world_size=1, device="cpu", seed=0, versions={}))
    fit = fit_training_curves(tuple(records))
    assert fit.n_opt.exponent == pytest.approx(truth["beta"] / (truth["alpha"] + truth["beta"]), abs=0.05)


def test_data_constrained_recovers_r_star():
    from ff_client.fit.approaches.constrained import effective_tokens, fit_data_constrained
    from ff_client.fit.points import Point

    truth, r_star, rng = CHINCHILLA, 15.0, np.random.default_rng(0)
    points = []
    for p in isoflop_points(truth, noise=0.0):
        unique = p.tokens / rng.choice([1, 2, 4, 16, 64])  # up to 64 epochs
        d_eff = effective_tokens(p.tokens, unique, r_star)
        loss = truth["E"] + truth["A"] / p.n_params ** truth["alpha"] + truth["B"] / d_eff ** truth["beta"]
        points.append(Point(p.n_params, p.tokens, loss, p.budget, p.flops, p.label, unique))
    fit = fit_data_constrained(tuple(points))
    assert fit.repeated_points > 10
    assert fit.r_star == pytest.approx(r_star, rel=0.3)  # the grid's resolution
    assert fit.surface.alpha == pytest.approx(truth["alpha"], rel=0.05)
    fresh = [Point(p.n_params, p.tokens, p.loss, p.budget, p.flops, p.label, p.tokens) for p in points]
    assert fit_data_constrained(tuple(fresh)) is None  # nothing repeats: not applicable


def test_resamples_refined_side_by_side_are_each_refined_as_alone():
    """The bootstrap refines a chunk of resamples as one stack (20x less numpy overhead); each resample's fit is
    bit for bit the fit it gets alone, whatever it is stacked with."""
    points = isoflop_points(noise=0.01, seed=3)
    central = fit_parametric(points)
    rng = np.random.default_rng(0)
    samples = [[points[i] for i in rng.integers(0, len(points), len(points))] for _ in range(12)]
    stacked = refit_parametric(samples, central.theta)
    alone = [refit_parametric([sample], central.theta)[0] for sample in samples]
    assert [f.theta for f in stacked] == [f.theta for f in alone]
    assert [f.objective for f in stacked] == [f.objective for f in alone]
    assert len({f.theta for f in stacked}) == len(samples)  # the resamples differ, and so do their fits
