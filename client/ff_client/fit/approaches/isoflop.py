"""Approach 2 of Hoffmann et al. (2022): isoFLOP parabolas, their minima, and power laws in C.

Per compute budget C, the loss of the sweep's models is fitted by a parabola in ln N; its vertex gives
N_opt(C) and L_opt(C), and D_opt(C) = C / (r N_opt) with r the budget's FLOPs per parameter-token (6 for 6ND).
Then N_opt = k C^a, D_opt = k' C^b and L_opt = k'' C^c are straight lines fitted in log-log space.

The parabola is local. One parabola over every point of a budget is biased when the budget spans a wide
range of sizes around a skewed curve (the far points pull the vertex; with a fixed model family the pull
changes from budget to budget, and so bends the exponent). So the window starts at the lowest point and its
two neighbours and grows one point at a time, on the side with fewer points so far, while every point in
it stays within a tolerance of the window's parabola: 3x the sweep's own noise (ff_client.fit.noise), at
least 0.1% in loss. On published-style sweeps (a few sizes around the optimum, within the noise of a
parabola) the window is every point, which is Hoffmann et al.'s estimator. A shape-free minimum (PCHIP
interpolation of log-loss over ln N, as Porian et al. 2024 use) is reported beside it as a cross-check.
A vertex outside the window's range of N (an off-centre sweep) or a parabola that opens downward (too flat
or too noisy to locate) is reported and left out of the power laws.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from ff_client.fit.approach import FitData, Result, Settings
from ff_client.fit.laws import PowerLaw, fit_power_law, law_lines
from ff_client.fit.noise import sweep_noise
from ff_client.fit.points import Point

MIN_TOLERANCE = 1e-3  # the local window's tolerance is never below 0.1% of the loss
MIN_BUDGETS = 3  # interior minima a power law in C is fitted through


@dataclass(frozen=True)
class IsoflopCurve:
    budget: float
    points: tuple[Point, ...]
    coefficients: tuple[float, float, float] | None  # loss = c2 x^2 + c1 x + c0, x = ln N
    n_opt: float | None
    d_opt: float | None
    l_opt: float | None
    interior: bool
    problem: str | None
    used: int = 0                            # points in the local window the parabola was fitted to
    window: tuple[float, float] | None = None  # its range of N
    n_opt_shape_free: float | None = None    # the PCHIP cross-check's minimum

    def loss_at(self, n_params: np.ndarray) -> np.ndarray:
        return np.polyval(self.coefficients, np.log(n_params))


@dataclass(frozen=True)
class IsoflopFit:
    curves: tuple[IsoflopCurve, ...]
    n_opt: PowerLaw | None
    d_opt: PowerLaw | None
    l_opt: PowerLaw | None
    warnings: tuple[str, ...]

    def laws(self) -> list[PowerLaw]:
        return [law for law in (self.n_opt, self.d_opt, self.l_opt) if law is not None]

    def predict(self, compute: float) -> dict[str, float] | None:
        if self.n_opt is None:
            return None
        return {"n_opt": float(self.n_opt(compute)), "d_opt": float(self.d_opt(compute)),
                "l_opt": float(self.l_opt(compute))}


def local_window(x: np.ndarray, y: np.ndarray, tolerance: float) -> tuple[int, int]:
    """[lo, hi] (inclusive) of the points, sorted by x, that the budget's parabola is fitted to (module doc)."""
    best, last = int(np.argmin(y)), len(x) - 1
    lo, hi = max(best - 1, 0), min(best + 1, last)
    while len(set(x[lo:hi + 1])) < 3:  # an edge minimum, or repeated sizes: three distinct sizes to start
        lo, hi = (lo, hi + 1) if hi < last and (lo == 0 or best - lo > hi - best) else (lo - 1, hi)

    def fits(a: int, b: int) -> bool:
        coefficients = np.polyfit(x[a:b + 1], y[a:b + 1], 2)
        return bool(np.all(np.abs(np.polyval(coefficients, x[a:b + 1]) / y[a:b + 1] - 1) <= tolerance))

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


def shape_free_minimum(x: np.ndarray, y: np.ndarray) -> float:
    """N at the minimum of a monotone-preserving (PCHIP) interpolation of log-loss over ln N."""
    sizes = np.unique(x)
    mean_log_loss = np.array([np.log(y[x == s]).mean() for s in sizes])
    grid = np.linspace(sizes[0], sizes[-1], 512)
    return math.exp(grid[int(np.argmin(PchipInterpolator(sizes, mean_log_loss)(grid)))])


def fit_curve(budget: float, points: list[Point], tolerance: float = MIN_TOLERANCE) -> IsoflopCurve:
    """The local parabola of one budget and its vertex (None with a reason when it cannot be located)."""
    points = sorted(points, key=lambda p: p.n_params)
    sizes = len({p.n_params for p in points})
    if sizes < 3:
        return IsoflopCurve(budget, tuple(points), None, None, None, None, False,
                            f"{sizes} distinct size(s); a parabola needs 3")
    x = np.log([p.n_params for p in points])
    y = np.array([p.loss for p in points])
    lo, hi = local_window(x, y, tolerance)
    used, window = hi - lo + 1, (math.exp(x[lo]), math.exp(x[hi]))
    shape_free = shape_free_minimum(x, y)
    c2, c1, c0 = np.polyfit(x[lo:hi + 1], y[lo:hi + 1], 2)
    if c2 <= 0:
        return IsoflopCurve(budget, tuple(points), (c2, c1, c0), None, None, None, False,
                            "the parabola opens downward: the curve is too flat or noisy to locate a minimum",
                            used, window, shape_free)
    x_opt = -c1 / (2 * c2)
    n_opt = math.exp(x_opt)
    flops_per_param_token = float(np.median([p.flops / (p.n_params * p.tokens) for p in points]))
    d_opt = budget / (flops_per_param_token * n_opt)
    l_opt = float(np.polyval((c2, c1, c0), x_opt))
    interior = bool(x[lo] < x_opt < x[hi])
    problem = None
    if not interior:
        side = "below the smallest" if x_opt <= x[lo] else "above the largest"
        problem = (f"the minimum (N={n_opt:.3g}) lies {side} N sampled: the sweep is off-centre; "
                   "add sizes on that side or move the tokensPerParam window")
    return IsoflopCurve(budget, tuple(points), (c2, c1, c0), n_opt, d_opt, l_opt, interior, problem, used, window,
                        shape_free)


def fit_isoflop(points: list[Point] | tuple[Point, ...]) -> IsoflopFit:
    """Approach 2 over all budgets; power laws from the budgets whose minimum is interior."""
    groups: dict[float, list[Point]] = defaultdict(list)
    for point in points:
        groups[point.budget].append(point)
    tolerance = max(3 * sweep_noise(points), MIN_TOLERANCE)
    curves = tuple(fit_curve(budget, group, tolerance) for budget, group in sorted(groups.items()))
    warnings = [f"budget {c.budget:.3g}: {c.problem}; left out of the power laws" for c in curves if c.problem]
    usable = [c for c in curves if c.interior]
    if len(usable) < MIN_BUDGETS:
        warnings.append(f"only {len(usable)} budget(s) with an interior minimum; N_opt(C) needs {MIN_BUDGETS} or more "
                        "(through two minima any power law fits exactly, and nothing checks it)")
        return IsoflopFit(curves, None, None, None, tuple(warnings))
    compute = np.array([c.budget for c in usable])
    laws = [fit_power_law(name, compute, np.array([getattr(c, name) for c in usable]))
            for name in ("n_opt", "d_opt", "l_opt")]
    return IsoflopFit(curves, *laws, tuple(warnings))


class Isoflop:
    """Approach 2 as a unit of the analysis: the parabolas, their minima's power laws, predictions."""

    name = json_key = "isoflop"
    listed = True

    def fit(self, data: FitData, settings: Settings) -> IsoflopFit:
        return fit_isoflop(data.points)

    def refit(self, data: FitData, central: IsoflopFit, settings: Settings) -> IsoflopFit:
        return fit_isoflop(data.points)

    def parameters(self, fit: IsoflopFit) -> dict[str, float] | None:
        if fit.n_opt is None:
            return None
        return {"a": fit.n_opt.exponent, "b": fit.d_opt.exponent, "l_exponent": fit.l_opt.exponent,
                "n_coefficient": fit.n_opt.coefficient, "d_coefficient": fit.d_opt.coefficient,
                "l_coefficient": fit.l_opt.coefficient}

    def predict(self, fit: IsoflopFit, compute: float) -> dict[str, float] | None:
        return fit.predict(compute)

    def warnings(self, result: Result) -> list[str]:
        """The fit's own, and each budget whose shape-free minimum falls outside the interval of N_opt there."""
        found = list(result.fit.warnings)
        bands = {r.flops: r.n_opt for r in result.rows if r.n_opt.low is not None}
        for c in result.fit.curves:
            band = bands.get(c.budget)
            if c.interior and c.n_opt_shape_free and band and not band.low <= c.n_opt_shape_free <= band.high:
                found.append(f"budget {c.budget:.3g}: the shape-free minimum (N={c.n_opt_shape_free:.3g}) is outside "
                             f"the interval of N_opt [{band.low:.3g}, {band.high:.3g}]; the isoFLOP curve is skewed "
                             "or sparse there: add sizes near its minimum")
        return found

    def section(self, result: Result) -> list[str]:
        lines = ["## Approach 2: isoFLOP parabolas (Hoffmann et al. 2022)"]
        for curve in result.fit.curves:
            where = f"N_opt {curve.n_opt:.3g}, L_opt {curve.l_opt:.4f}" if curve.n_opt else "no minimum"
            flag = "" if curve.interior else "  (excluded from the power laws)"
            shape_free = f"; shape-free N_opt {curve.n_opt_shape_free:.3g}" if curve.n_opt_shape_free else ""
            lines.append(f"  C {curve.budget:.3g}: {len(curve.points)} points ({curve.used} in the local parabola), "
                         f"{where}{shape_free}{flag}")
        return lines + law_lines(result.fit.laws()) + result.parameter_lines()

    def to_json(self, result: Result) -> dict:
        fit = result.fit
        return {"parameters": result.parameters_json(), "r2": {law.name: law.r2 for law in fit.laws()},
                "curves": [{"budget": c.budget, "points": len(c.points), "points_used": c.used, "n_opt": c.n_opt,
                            "d_opt": c.d_opt, "l_opt": c.l_opt, "n_opt_shape_free": c.n_opt_shape_free,
                            "interior": c.interior, "problem": c.problem} for c in fit.curves],
                "predictions": result.rows_json()}


APPROACH = Isoflop()
