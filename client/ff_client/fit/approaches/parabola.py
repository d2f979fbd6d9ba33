"""The cross-check of Approach 2: each budget's local parabola in ln N, its vertex, and the power laws in C.

Hoffmann et al. (2022) fit one parabola per budget. One parabola over a wide, skewed curve is biased (the
far points pull the vertex), so the parabola is local: its window grows from the lowest point and its two
neighbours while every point stays within the sweep's tolerance of it (isoflop.local_window). A vertex outside the
window's range of N, or a parabola that opens downward, is left out of the laws.

It predicts no table rows (Approach 2's local cubics are the headline); its exponents come with intervals,
and where they and the headline's disagree beyond both intervals the analysis says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ff_client.fit.approach import FitData, Result, Settings
from ff_client.fit.approaches.isoflop import (MIN_BUDGETS, by_budget, curve_tolerance, flops_per_param_token,
                                              local_window)
from ff_client.fit.laws import PowerLaw, fit_power_law, law_lines
from ff_client.fit.points import Point

COMPARED = ("a", "b")  # the exponents checked against the headline's


@dataclass(frozen=True)
class Parabola:
    budget: float
    points: tuple[Point, ...]
    coefficients: tuple[float, float, float] | None  # loss = c2 x^2 + c1 x + c0, x = ln N
    n_opt: float | None
    d_opt: float | None
    l_opt: float | None
    interior: bool
    problem: str | None
    used: int = 0                              # points in the local window
    window: tuple[float, float] | None = None  # its range of N

    def loss_at(self, n_params: np.ndarray) -> np.ndarray:
        return np.polyval(self.coefficients, np.log(n_params))


@dataclass(frozen=True)
class ParabolaFit:
    curves: tuple[Parabola, ...]
    n_opt: PowerLaw | None
    d_opt: PowerLaw | None
    l_opt: PowerLaw | None

    def laws(self) -> list[PowerLaw]:
        return [law for law in (self.n_opt, self.d_opt, self.l_opt) if law is not None]


def fit_parabola(budget: float, points: list[Point], tolerance: float) -> Parabola:
    """The local parabola of one budget and its vertex (None with a reason when it cannot be located)."""
    points = sorted(points, key=lambda p: p.n_params)
    sizes = len({p.n_params for p in points})
    if sizes < 3:
        return Parabola(budget, tuple(points), None, None, None, None, False,
                        f"{sizes} distinct size(s); a parabola needs 3")
    x = np.log([p.n_params for p in points])
    y = np.array([p.loss for p in points])
    lo, hi = local_window(x, np.log(y), tolerance, 2)
    used, window = hi - lo + 1, (math.exp(x[lo]), math.exp(x[hi]))
    c2, c1, c0 = np.polyfit(x[lo:hi + 1], y[lo:hi + 1], 2)
    if c2 <= 0:
        return Parabola(budget, tuple(points), (c2, c1, c0), None, None, None, False,
                        "the parabola opens downward: the curve is too flat or noisy to locate a minimum", used, window)
    x_opt = -c1 / (2 * c2)
    n_opt = math.exp(x_opt)
    interior = bool(x[lo] < x_opt < x[hi])
    problem = None if interior else (f"the vertex (N={n_opt:.3g}) lies outside the sizes of its local parabola "
                                     f"[{window[0]:.3g}, {window[1]:.3g}]")
    return Parabola(budget, tuple(points), (c2, c1, c0), n_opt, budget / (flops_per_param_token(points) * n_opt),
                    float(np.polyval((c2, c1, c0), x_opt)), interior, problem, used, window)


def fit_parabolas(points, budgets: tuple[float, ...] | None = None) -> ParabolaFit:
    """Every budget's parabola; the laws through the interior vertices (a resample: through `budgets`' vertices)."""
    tolerance = curve_tolerance(points)
    curves = tuple(fit_parabola(b, g, tolerance) for b, g in by_budget(points).items())
    if budgets is None:
        usable = [c for c in curves if c.interior]
    else:
        usable = [c for c in curves if c.budget in budgets]
        if len(usable) < len(budgets) or any(c.n_opt is None for c in usable):
            raise ValueError("a resample's parabola opened downward")
    if len(usable) < MIN_BUDGETS:
        return ParabolaFit(curves, None, None, None)
    compute = np.array([c.budget for c in usable])
    laws = [fit_power_law(q, compute, np.array([getattr(c, q) for c in usable])) for q in ("n_opt", "d_opt", "l_opt")]
    return ParabolaFit(curves, *laws)


class LocalParabola:
    """The local parabolas as a unit of the analysis: exponents with intervals, no table rows."""

    name = "parabola"
    json_key = "isoflop_parabola"
    listed = False
    allocates, style = False, None
    checks = "isoflop"  # the approach whose exponents it cross-checks (disagreement)

    def fit(self, data: FitData, settings: Settings) -> ParabolaFit:
        return fit_parabolas(data.points)

    def refit(self, data: FitData, central: ParabolaFit, settings: Settings) -> ParabolaFit:
        return fit_parabolas(data.points, tuple(c.budget for c in central.curves if c.interior))

    def parameters(self, fit: ParabolaFit) -> dict[str, float] | None:
        if fit.n_opt is None:
            return None
        return {"a": fit.n_opt.exponent, "b": fit.d_opt.exponent, "l_exponent": fit.l_opt.exponent}

    def predict(self, fit: ParabolaFit, compute: float) -> None:
        return None

    def warnings(self, result: Result) -> list[str]:
        return []

    def disagreement(self, mine: Result, headline: Result) -> list[str]:
        """A line per exponent whose interval and the headline's do not overlap."""
        found = []
        for name in COMPARED:
            ours, theirs = mine.parameters.get(name), headline.parameters.get(name)
            if ours is None or theirs is None or ours.low is None or theirs.low is None:
                continue
            if ours.high < theirs.low or theirs.high < ours.low:
                found.append(f"Approach 2: the exponent {name} of the local cubics' minima ({theirs.text()}) "
                             f"and of the local parabolas ({ours.text()}) disagree beyond both intervals: the "
                             "isoFLOP curves are skewed in ln N, which moves a parabola's vertex; the cubic's value "
                             "is the headline")
        return found

    def section(self, result: Result) -> list[str]:
        lines = ["## Cross-check: local isoFLOP parabolas (Hoffmann et al. 2022)"]
        for curve in result.fit.curves:
            where = f"N_opt {curve.n_opt:.3g}, L_opt {curve.l_opt:.4f}" if curve.n_opt else "no minimum"
            flag = "" if curve.interior else f"  (left out: {curve.problem})"
            lines.append(f"  C {curve.budget:.3g}: {curve.used} of {len(curve.points)} points in the parabola, "
                         f"{where}{flag}")
        return lines + law_lines(result.fit.laws()) + result.parameter_lines()

    def to_json(self, result: Result) -> dict:
        fit = result.fit
        return {"parameters": result.parameters_json(), "r2": {law.name: law.r2 for law in fit.laws()},
                "curves": [{"budget": c.budget, "points": len(c.points), "points_used": c.used, "n_opt": c.n_opt,
                            "interior": c.interior, "problem": c.problem} for c in fit.curves]}


APPROACH = LocalParabola()
