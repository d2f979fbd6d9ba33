"""Approach 2 of Hoffmann et al. (2022): each budget's isoFLOP minimum, and laws in C through the minima.

Per compute budget C, N_opt(C) is the minimum of a local cubic in ln N fitted to the budget's log-losses;
L_opt(C) is the cubic's value there and D_opt(C) = C / (r N_opt), r the budget's FLOPs per parameter-token
(6 for 6ND). The cubic is local: its window grows from the lowest point and its neighbours while every
point stays within 3x the sweep's noise (ff_client.fit.noise, at least 0.1%), so on a noisy curve it averages
over many points and on a clean, skewed one it stays near the minimum. Then N_opt = k C^a and D_opt = k' C^b
are straight lines in log-log space, and L_opt(C) = E + k'' C^c with a floor E wherever four or more minima
place one (ff_client.fit.laws.fit_floor_law), a pure power law otherwise.

Why a cubic (measured, benchmarks/published_sweeps.py and benchmarks/isoflop_coverage.py): real isoFLOP
curves are skewed in ln N and a parabola's vertex follows the skew: on six published sweeps (Porian et al.
2024) the local parabola missed the published exponent a by 0.013 on average and 0.022 at most, the local
cubic by 0.007 and 0.013. A shape-free (PCHIP) minimum, which Porian et al. use on their smoothed curves,
missed by 0.006 there but interpolates noise: on synthetic sweeps with 0.2-1% noise its a scattered 2x as
far as the cubic's. The local parabola (ff_client.fit.approaches.parabola) is reported as a cross-check.

A budget is left out of the laws, with the reason, when its minimum is not located: fewer than three
sizes, the lowest loss at the smallest or largest size (the sweep is off-centre there), or a curve too flat
to tell from noise (its losses rise from the lowest by at most 2x the sweep's noise, where 4 or more
residual degrees of freedom measure it; 7 draws of pure noise span 2.7x on average). A bootstrap resample
re-locates the minimum of each budget the full data used, wherever it falls in the resample (so a resample
never fails for want of a budget).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ff_client.fit.approach import FitData, Result, Settings
from ff_client.fit.laws import MIN_FLOOR_POINTS, FloorLaw, PowerLaw, fit_floor_law, fit_power_law, law_lines
from ff_client.fit.noise import measured_noise, sweep_noise
from ff_client.fit.points import Point

MIN_TOLERANCE = 1e-3  # a local fit's tolerance is never below 0.1% of the loss
CUBIC = 3  # the degree of the headline's local polynomial in ln N
MIN_SKEW_T = 2.0  # a cubic term within this many standard errors of 0 is dropped (a parabola, Hoffmann's, instead)
MIN_BUDGETS = 3  # located minima a law in C is fitted through
FLAT_RISE = 2.0  # a budget whose losses rise from their lowest by at most this many x the noise is flat


@dataclass(frozen=True)
class IsoflopCurve:
    budget: float
    points: tuple[Point, ...]
    n_opt: float | None
    d_opt: float | None
    l_opt: float | None
    interior: bool  # the minimum is located: it enters the laws
    problem: str | None
    window: tuple[float, float] | None = None  # the range of N of the local cubic
    coefficients: tuple[float, ...] | None = None  # ln loss = polynomial in ln N over the window

    def loss_at(self, n_params: np.ndarray) -> np.ndarray:
        return np.exp(np.polyval(self.coefficients, np.log(n_params)))


@dataclass(frozen=True)
class IsoflopFit:
    curves: tuple[IsoflopCurve, ...]
    n_opt: PowerLaw | None
    d_opt: PowerLaw | None
    l_opt: PowerLaw | FloorLaw | None
    warnings: tuple[str, ...]

    def laws(self) -> list:
        return [law for law in (self.n_opt, self.d_opt, self.l_opt) if law is not None]

    def used(self) -> list[IsoflopCurve]:
        return [c for c in self.curves if c.interior]

    def predict(self, compute: float) -> dict[str, float] | None:
        if self.n_opt is None:
            return None
        return {"n_opt": float(self.n_opt(compute)), "d_opt": float(self.d_opt(compute)),
                "l_opt": float(self.l_opt(compute))}


def by_budget(points) -> dict[float, list[Point]]:
    groups: dict[float, list[Point]] = defaultdict(list)
    for point in points:
        groups[point.budget].append(point)
    return dict(sorted(groups.items()))


def flops_per_param_token(points) -> float:
    return float(np.median([p.flops / (p.n_params * p.tokens) for p in points]))


def curve_tolerance(points) -> float:
    """How far a point may sit from a local fit: 3x the sweep's noise (ff_client.fit.noise), at least 0.1%."""
    return max(3 * sweep_noise(points), MIN_TOLERANCE)


def local_window(x: np.ndarray, y: np.ndarray, tolerance: float, degree: int) -> tuple[int, int]:
    """[lo, hi] (inclusive) of the points, sorted by x (ln N), that a budget's local polynomial is fitted to:
    from the lowest point and its neighbours (degree + 1 distinct sizes), one point at a time on the side with
    fewer points so far, while every point stays within `tolerance` of the window's polynomial in y (log-loss,
    so the tolerance is relative)."""
    best, last = int(np.argmin(y)), len(x) - 1
    lo, hi = max(best - 1, 0), min(best + 1, last)
    while len(set(x[lo:hi + 1])) < min(degree + 1, len(set(x))):  # grow toward the side with fewer points
        lo, hi = (lo, hi + 1) if hi < last and (lo == 0 or best - lo > hi - best) else (lo - 1, hi)

    def fits(a: int, b: int) -> bool:  # repeated sizes (a resample) fit no more terms than distinct sizes allow
        coefficients = np.polyfit(x[a:b + 1], y[a:b + 1], min(degree, len(set(x[a:b + 1])) - 1))
        return bool(np.all(np.abs(np.polyval(coefficients, x[a:b + 1]) - y[a:b + 1]) <= tolerance))

    left, right = lo > 0, hi < last
    while left or right:
        if left and (not right or best - lo <= hi - best):
            left = fits(lo - 1, hi)
            lo -= left
            left = left and lo > 0
        else:
            right = fits(lo, hi + 1)
            hi += right
            right = right and hi < last
    return lo, hi


def _skewed(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether the cubic term of a fit in ln N stands MIN_SKEW_T standard errors from 0 (judged on 6 or more
    points)."""
    if len(x) <= CUBIC + 2:
        return True  # too few points to judge: a skewed curve is what real sweeps show (module doc)
    cubic, cov = np.polyfit(x, y, CUBIC, cov=True)
    return bool(abs(cubic[0]) >= MIN_SKEW_T * math.sqrt(max(cov[0, 0], 0.0)))


def cubic_minimum(x: np.ndarray, y: np.ndarray, tolerance: float) -> tuple[float, float, tuple, tuple]:
    """(ln N, loss, the window's range of N, the polynomial's coefficients) at the minimum of the local cubic in
    ln N over its window (exact: the roots of its derivative, and the window's ends); fewer distinct sizes fit
    a lower degree."""
    log_y = np.log(y)
    lo, hi = local_window(x, log_y, tolerance, CUBIC)
    xs, ys = x[lo:hi + 1], log_y[lo:hi + 1]
    degree = min(CUBIC, len(set(xs)) - 1)
    if degree == CUBIC and not _skewed(xs, ys):
        degree = 2  # no skew the noise lets one see: the cubic term would only add variance
    if degree < 1:
        return float(xs[0]), float(math.exp(ys.mean())), (math.exp(xs[0]), math.exp(xs[0])), (float(ys.mean()),)
    coefficients = np.polyfit(xs, ys, degree)
    roots = np.roots(np.polyder(coefficients))
    inside = [r.real for r in roots if abs(r.imag) < 1e-12 and xs[0] <= r.real <= xs[-1]]
    candidates = np.array([xs[0], xs[-1], *inside])
    values = np.polyval(coefficients, candidates)
    best = int(np.argmin(values))
    return (float(candidates[best]), float(math.exp(values[best])), (math.exp(xs[0]), math.exp(xs[-1])),
            tuple(float(c) for c in coefficients))


def _problem(x: np.ndarray, y: np.ndarray, noise: float | None) -> str | None:
    """Why a budget's minimum is not located (module doc), or None."""
    sizes = np.unique(x)
    if len(sizes) < 3:
        return f"{len(sizes)} distinct size(s); a minimum needs a size on each side"
    mean = np.array([y[x == s].mean() for s in sizes])
    best = int(np.argmin(mean))
    if best in (0, len(sizes) - 1):
        side, where = ("smallest", "below") if best == 0 else ("largest", "above")
        return (f"the lowest loss is at the {side} size (N={math.exp(sizes[best]):.3g}): the minimum lies {where} the "
                "sizes sampled, the sweep is off-centre; add sizes on that side or move the tokensPerParam window")
    rise = max(mean[:best].max(), mean[best + 1:].max()) / mean[best] - 1
    if noise is not None and rise <= noise * FLAT_RISE:
        return (f"the curve rises by at most {rise:.2%} from its lowest point, within {FLAT_RISE:g}x the sweep's noise "
                f"({noise:.2%}): too flat to locate a minimum; widen the range of sizes")
    return None


def fit_curve(budget: float, points: list[Point], tolerance: float = MIN_TOLERANCE, noise: float | None = None,
              located: bool = False) -> IsoflopCurve:
    """One budget's minimum of its local cubic (window `tolerance`, curve_tolerance); `noise` (measured_noise)
    judges flatness; `located` (a resample of a budget the full data located) skips the checks."""
    points = sorted(points, key=lambda p: p.n_params)
    x = np.log([p.n_params for p in points])
    y = np.array([p.loss for p in points])
    problem = None if located else _problem(x, y, noise)
    if problem and len(np.unique(x)) < 3:
        return IsoflopCurve(budget, tuple(points), None, None, None, False, problem)
    x_opt, l_opt, window, coefficients = cubic_minimum(x, y, tolerance)
    n_opt = math.exp(x_opt)
    d_opt = budget / (flops_per_param_token(points) * n_opt)
    return IsoflopCurve(budget, tuple(points), n_opt, d_opt, l_opt, problem is None, problem, window, coefficients)


def fit_isoflop(points, budgets: tuple[float, ...] | None = None, floor: bool | None = None) -> IsoflopFit:
    """Approach 2 over all budgets; the laws through the budgets whose minimum is located. A resample passes the
    full-data fit's `budgets` and L_opt form (`floor`)."""
    groups = by_budget(points)
    tolerance, noise = curve_tolerance(points), measured_noise(points)
    located = budgets or ()
    curves = tuple(fit_curve(b, g, tolerance, noise, located=b in located) for b, g in groups.items())
    if budgets is not None:
        curves = tuple(c for c in curves if c.budget in budgets)
    warnings = [f"budget {c.budget:.3g}: {c.problem}; left out of the laws in C" for c in curves if c.problem]
    usable = [c for c in curves if c.interior]
    if len(usable) < MIN_BUDGETS:
        warnings.append(f"only {len(usable)} budget(s) with a located minimum; N_opt(C) needs {MIN_BUDGETS} or more "
                        "(through two minima any power law fits exactly, and nothing checks it)")
        return IsoflopFit(curves, None, None, None, tuple(warnings))
    compute = np.array([c.budget for c in usable])
    n_law, d_law = (fit_power_law(q, compute, np.array([getattr(c, q) for c in usable])) for q in ("n_opt", "d_opt"))
    losses = np.array([c.l_opt for c in usable])
    l_law = fit_floor_law("l_opt", compute, losses, supported_only=floor is None) if floor is not False else None
    if l_law is None:
        l_law = fit_power_law("l_opt", compute, losses)
        if floor is None:
            why = ("the minima place no floor E (it fits at 0 or at the lowest loss)" if len(usable) >= MIN_FLOOR_POINTS
                   else f"{len(usable)} minima cannot place a floor E (it needs {MIN_FLOOR_POINTS})")
            warnings.append(f"L_opt(C): {why}; L_opt is a pure power law, which falls without limit beyond the data "
                            "(the parametric surface's L_opt flattens toward its E)")
    return IsoflopFit(curves, n_law, d_law, l_law, tuple(warnings))


class Isoflop:
    """Approach 2 as a unit of the analysis: the budgets' minima (local cubics), their laws in C, predictions."""

    name = json_key = "isoflop"
    listed = True
    allocates, style = True, ("C0", "-")

    def l_opt_law(self, parameters: dict[str, float], flops_per_param_token: float):
        """L_opt(C) from its reported parameters (a replicate's, or the central fit's): the power law in C."""
        floor = parameters.get("l_floor", 0.0)
        return lambda c: floor + parameters["l_coefficient"] * c ** parameters["l_exponent"]

    def fit(self, data: FitData, settings: Settings) -> IsoflopFit:
        return fit_isoflop(data.points)

    def refit(self, data: FitData, central: IsoflopFit, settings: Settings) -> IsoflopFit:
        return fit_isoflop(data.points, tuple(c.budget for c in central.used()), isinstance(central.l_opt, FloorLaw))

    def parameters(self, fit: IsoflopFit) -> dict[str, float] | None:
        if fit.n_opt is None:
            return None
        found = {"a": fit.n_opt.exponent, "b": fit.d_opt.exponent, "l_exponent": fit.l_opt.exponent,
                 "n_coefficient": fit.n_opt.coefficient, "d_coefficient": fit.d_opt.coefficient,
                 "l_coefficient": fit.l_opt.coefficient}
        return found | ({"l_floor": fit.l_opt.floor} if isinstance(fit.l_opt, FloorLaw) else {})

    def predict(self, fit: IsoflopFit, compute: float) -> dict[str, float] | None:
        return fit.predict(compute)

    def warnings(self, result: Result) -> list[str]:
        return list(result.fit.warnings)

    def section(self, result: Result) -> list[str]:
        lines = ["## Approach 2: isoFLOP minima (local cubic in ln N; Hoffmann et al. 2022)"]
        for curve in result.fit.curves:
            where = f"N_opt {curve.n_opt:.3g}, L_opt {curve.l_opt:.4f}" if curve.n_opt else "no minimum"
            flag = "" if curve.interior else "  (left out of the laws)"
            used = sum(curve.window[0] <= p.n_params <= curve.window[1] for p in curve.points) if curve.window else 0
            lines.append(f"  C {curve.budget:.3g}: {used} of {len(curve.points)} points in the local cubic, "
                         f"{where}{flag}")
        return lines + law_lines(result.fit.laws()) + result.parameter_lines()

    def to_json(self, result: Result) -> dict:
        fit = result.fit
        return {"parameters": result.parameters_json(), "r2": {law.name: law.r2 for law in fit.laws()},
                "curves": [{"budget": c.budget, "points": len(c.points), "n_opt": c.n_opt, "d_opt": c.d_opt,
                            "l_opt": c.l_opt, "interior": c.interior, "problem": c.problem} for c in fit.curves],
                "predictions": result.rows_json()}


APPROACH = Isoflop()
