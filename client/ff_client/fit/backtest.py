"""Backtest: hold out the largest budget, fit the rest, and score the prediction of N_opt and L_opt there.

The held-out "truth" is the held-out budget's own isoFLOP minimum (Approach 2's local-cubic minimum); when
that budget's minimum is not located (at the edge of its sizes, or too flat), there is no truth to score
against and the backtest says so instead of scoring a prediction against an edge.
Each approach's prediction gets its relative error and, with a bootstrap (at most BACKTEST_RESAMPLES
resamples of the remaining budgets), its interval and whether the held-out truth fell inside it: an
approach whose intervals miss the held-out budget is overconfident about extrapolation.
"""

from __future__ import annotations

from dataclasses import replace

from ff_client.fit.approach import FitData, Settings
from ff_client.fit.approaches import APPROACHES
from ff_client.fit.approaches.isoflop import curve_tolerance, fit_curve
from ff_client.fit.bootstrap import bootstrap, numbers
from ff_client.fit.noise import measured_noise
from ff_client.fit.points import Point

MIN_BUDGETS = 4
BACKTEST_RESAMPLES = 200
PREDICTORS = tuple(a for a in APPROACHES if a.allocates)


def backtest(points: tuple[Point, ...], settings: Settings = Settings(resamples=0)) -> dict | None:
    """{"held_out": C, "observed": {...}, approach: {"n_opt", "l_opt", "n_opt_error", "l_opt_error"[,
    "n_opt_interval", "l_opt_interval", "covered": {"n_opt", "l_opt"}]}, "unable": [the approaches the other budgets
    gave no prediction]}, or None below MIN_BUDGETS budgets."""
    budgets = sorted({p.budget for p in points})
    if len(budgets) < MIN_BUDGETS:
        return None
    held = budgets[-1]
    data = FitData(tuple(p for p in points if p.budget != held))
    observed = fit_curve(held, [p for p in points if p.budget == held], curve_tolerance(points), measured_noise(points))
    if not observed.interior:
        return {"held_out": held,
                "problem": f"no backtest: the held-out budget's minimum is not located ({observed.problem})"}
    result = {"held_out": held, "observed": {"n_opt": observed.n_opt, "l_opt": observed.l_opt}}
    central = {}
    for a in PREDICTORS:
        fit = a.fit(data, settings)
        found = numbers(a, fit, (held,))
        if found is not None and held in found.predictions:
            central[a.name] = (a, fit, found)
        else:
            result.setdefault("unable", []).append(a.name)
    resamples = min(settings.resamples, BACKTEST_RESAMPLES)
    spread = bootstrap(data, central, (held,), replace(settings, resamples=resamples)) if resamples and central else {}
    truth = {"n_opt": observed.n_opt, "l_opt": observed.l_opt}
    for name, (_, _, found) in central.items():
        predicted = found.predictions[held]
        entry = {"n_opt": predicted["n_opt"], "l_opt": predicted["l_opt"],
                 "n_opt_error": predicted["n_opt"] / observed.n_opt - 1,
                 "l_opt_error": predicted["l_opt"] / observed.l_opt - 1}
        estimates = spread[name].predictions[held] if name in spread else {}
        if all(estimates.get(q) is not None and estimates[q].low is not None for q in truth):
            entry |= {f"{q}_interval": [estimates[q].low, estimates[q].high] for q in truth}
            entry["covered"] = {q: bool(estimates[q].low <= truth[q] <= estimates[q].high) for q in truth}
        result[name] = entry
    return result
