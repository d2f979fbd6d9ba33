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

from ff_client.parametric import ParametricFit, fit_parametric
from ff_client.points import Point

R_STAR_GRID = np.geomspace(0.3, 300, 31)


@dataclass(frozen=True)
class ConstrainedFit:
    r_star: float
    surface: ParametricFit  # fitted on effective tokens D'
    repeated_points: int

    def predict(self, compute: float) -> dict[str, float]:
        """With fresh data (no repetition) the law is the surface's own allocation."""
        return self.surface.predict(compute)


def effective_tokens(tokens: float, unique: float, r_star: float) -> float:
    if unique >= tokens:
        return tokens
    repetitions = tokens / unique - 1
    return unique + unique * r_star * (1 - np.exp(-repetitions / r_star))


def fit_data_constrained(points, delta: float = 1e-3, start: ConstrainedFit | None = None) -> ConstrainedFit | None:
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


def constrained_stats(fit: ConstrainedFit | None, targets: tuple[float, ...] = ()) -> dict[str, float] | None:
    if fit is None:
        return None
    s = fit.surface
    return {"r_star_d": fit.r_star, "E": s.E, "A": s.A, "B": s.B, "alpha": s.alpha, "beta": s.beta}
