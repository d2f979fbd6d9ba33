"""Fits recover known truths: Approach 2's exponents and minima, Approach 3's surface."""

from __future__ import annotations

import numpy as np
import pytest

from ff_client.isoflop import fit_curve, fit_isoflop
from ff_client.parametric import _objective, fit_parametric
from synthetic import CHINCHILLA, isoflop_points, optimum

TRUTHS = [
    CHINCHILLA,
    {"E": 0.8, "A": 50.0, "B": 900.0, "alpha": 0.3, "beta": 0.45},
    {"E": 2.0, "A": 2000.0, "B": 100.0, "alpha": 0.5, "beta": 0.25},
]


@pytest.mark.parametrize("truth", TRUTHS, ids=["chinchilla", "data-hungry", "param-hungry"])
@pytest.mark.parametrize("noise", [0.0, 0.003])
def test_isoflop_recovers_exponent(truth, noise):
    fit = fit_isoflop(isoflop_points(truth, noise=noise, seed=1))
    a_true = truth["beta"] / (truth["alpha"] + truth["beta"])
    assert fit.n_opt.exponent == pytest.approx(a_true, abs=0.02)
    assert fit.d_opt.exponent == pytest.approx(1 - a_true, abs=0.02)
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
    assert not curve.interior and "below the smallest N sampled: the sweep is off-centre" in curve.problem
    flat = [p.__class__(p.n_params, p.tokens, 2.0 - 0.001 * i * i, p.budget, p.flops) for i, p in enumerate(shifted[:4])]
    assert "opens downward" in fit_curve(1e20, flat).problem
    fit = fit_isoflop(shifted)
    assert fit.n_opt is None and any("left out of the power laws" in w for w in fit.warnings)
