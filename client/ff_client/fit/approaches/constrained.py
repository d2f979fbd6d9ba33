"""The data-constrained scaling law of Muennighoff et al. (2023), for runs that repeat their data.

With U unique tokens seen for D tokens in all, repeated data is worth less than fresh data:
    D' = U + U R*_D (1 - exp(-R_D / R*_D)),   R_D = D / U - 1 (repetitions beyond the first epoch),
and the loss follows L = E + A / N^alpha + B / D'^beta. R*_D (how many repetitions are worth having) is
profiled: for each value on a log grid the surface is fitted as in Approach 3, and the best is kept.
Only the data term is modelled (the paper's excess-parameter term R*_N is left out).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ff_client.fit.approach import FitData, Result, Settings
from ff_client.fit.approaches.parametric import ParametricFit, fit_parametric, surface_parameters
from ff_client.fit.laws import HUBER_DELTA

R_STAR_GRID = np.geomspace(0.3, 300, 31)


@dataclass(frozen=True)
class ConstrainedFit:
    r_star: float
    surface: ParametricFit  # fitted on effective tokens D'
    repeated_points: int


def effective_tokens(tokens: float, unique: float, r_star: float) -> float:
    if unique >= tokens:
        return tokens
    repetitions = tokens / unique - 1
    return unique + unique * r_star * (1 - np.exp(-repetitions / r_star))


def fit_data_constrained(points, delta: float = HUBER_DELTA,
                         start: ConstrainedFit | None = None) -> ConstrainedFit | None:
    """None unless some points repeat their data (unique_tokens < tokens) and there are 6 or more points.

    `start` (the full-data fit, for bootstrap resamples) narrows the profile to 0.5x..2x its R*_D and
    warm-starts every surface fit from its optimum.
    """
    known = [p for p in points if p.unique_tokens is not None]
    repeated = sum(p.unique_tokens < p.tokens for p in known)
    if repeated == 0 or len(known) < 6:
        return None
    grid = R_STAR_GRID if start is None else start.r_star * np.geomspace(0.5, 2, 5)
    best: ConstrainedFit | None = None
    for r_star in grid:
        shifted = [replace(p, tokens=effective_tokens(p.tokens, p.unique_tokens, r_star)) for p in known]
        warm = start.surface.theta if start else (best.surface.theta if best else None)
        fit = fit_parametric(shifted, delta, warm)
        if fit is not None and (best is None or fit.objective < best.surface.objective):
            best = ConstrainedFit(float(r_star), fit, repeated)
    return best


class DataConstrained:
    """The data-constrained law as a unit of the analysis; it reports parameters, no allocation."""

    name, json_key = "constrained", "data_constrained"
    listed = False
    allocates, style = False, None

    def fit(self, data: FitData, settings: Settings) -> ConstrainedFit | None:
        return fit_data_constrained(data.points, settings.delta)

    def refit(self, data: FitData, central: ConstrainedFit, settings: Settings) -> ConstrainedFit | None:
        return fit_data_constrained(data.points, settings.delta, central)

    def parameters(self, fit: ConstrainedFit) -> dict[str, float]:
        return {"r_star_d": fit.r_star} | surface_parameters(fit.surface)

    def predict(self, fit: ConstrainedFit, compute: float) -> None:
        return None

    def warnings(self, result: Result) -> list[str]:
        fit = result.fit
        if fit.r_star in (R_STAR_GRID[0], R_STAR_GRID[-1]):
            return [f"data-constrained fit: R*_D sits at the edge of its grid ({fit.r_star:.3g}); "
                    "the data do not pin it down (too few or too little repetition)"]
        return []

    def section(self, result: Result) -> list[str]:
        fit = result.fit
        if fit is None:
            return []
        return ["## Data-constrained (Muennighoff et al. 2023): D' = U + U R*(1 - exp(-(D/U - 1)/R*))",
                f"  {fit.repeated_points} points repeat their data; R*_D profiled on a log grid; "
                f"Huber objective {fit.surface.objective:.4g}"] + result.parameter_lines()

    def to_json(self, result: Result) -> dict:
        return {"parameters": result.parameters_json(), "objective": result.fit.surface.objective,
                "repeated_points": result.fit.repeated_points}


APPROACH = DataConstrained()
