"""Backtest: hold out the largest budget, fit the rest, and score the prediction of N_opt and L_opt there.

The held-out "truth" is the minimum of the parabola fitted to the held-out budget's own points.
"""

from __future__ import annotations

from ff_client.fit.approaches.isoflop import fit_curve, fit_isoflop
from ff_client.fit.approaches.parametric import fit_parametric
from ff_client.fit.points import Point

MIN_BUDGETS = 4


def backtest(points: tuple[Point, ...]) -> dict | None:
    """{"held_out": C, "observed": {...}, approach: {"n_opt", "l_opt", "n_opt_error", "l_opt_error"}} or None."""
    budgets = sorted({p.budget for p in points})
    if len(budgets) < MIN_BUDGETS:
        return None
    held = budgets[-1]
    train = [p for p in points if p.budget != held]
    observed = fit_curve(held, [p for p in points if p.budget == held])
    if observed.n_opt is None:
        return {"held_out": held, "problem": observed.problem}
    result = {"held_out": held, "observed": {"n_opt": observed.n_opt, "l_opt": observed.l_opt}}
    predictors = {"isoflop": fit_isoflop(train).predict, "parametric": getattr(fit_parametric(train), "predict", None)}
    for approach, predict in predictors.items():
        predicted = predict(held) if predict else None
        if predicted:
            result[approach] = {
                "n_opt": predicted["n_opt"], "l_opt": predicted["l_opt"],
                "n_opt_error": predicted["n_opt"] / observed.n_opt - 1, "l_opt_error": predicted["l_opt"] / observed.l_opt - 1,
            }
    return result
