"""Outliers: points far off the parametric fit, by a robust residual rule (Iglewicz and Hoaglin's modified z).

They are flagged, not dropped: the parametric fit's Huber loss already bounds their pull, and on real
sweeps the points far off a fitted law are mostly legitimate runs far from the optimum (large models on few
tokens, small early budgets) where the law's form fits less well; dropping them shifts the exponents.
`ffctl analyze --exclude-outliers` drops them. Runs that broke are excluded by ff_client.fit.plausibility.

Residuals are in log-loss. z = 0.6745 (r - median r) / MAD; a point with |z| > 3.5 is flagged. The MAD is
floored at 1e-3 (0.1% in loss) so that an almost perfect fit does not flag points for noise-sized misses,
and the rule needs at least 12 points: with few more points than the surface's 5 parameters, residuals
say nothing about which point is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ff_client.fit.approaches.parametric import ParametricFit
from ff_client.fit.points import Point

THRESHOLD = 3.5
MAD_FLOOR = 1e-3
MIN_POINTS = 12


@dataclass(frozen=True)
class Flag:
    """A point far off the parametric fit, and whether it was excluded (--exclude-outliers)."""

    point: Point
    z: float
    excluded: bool = False

    def reason(self) -> str:
        p = self.point
        return (f"far off the parametric fit (modified z {self.z:+.1f}, N={p.n_params:.3g}, D={p.tokens:.3g}, "
                f"loss {p.loss:.4g}); " + ("excluded (--exclude-outliers)" if self.excluded else "kept"))

    def text(self) -> str:
        return f"{self.point.label}: {self.reason()}"

    def to_json(self) -> dict:
        p = self.point
        return {"label": p.label, "z": self.z, "n_params": p.n_params, "tokens": p.tokens, "loss": p.loss,
                "excluded": self.excluded}


def flag_outliers(points: tuple[Point, ...], fit: ParametricFit) -> list[tuple[Point, float]]:
    """(point, modified z) for each point the rule flags (none below MIN_POINTS points)."""
    if len(points) < MIN_POINTS:
        return []
    predicted = fit.loss([p.n_params for p in points], [p.tokens for p in points])
    residual = np.log([p.loss for p in points]) - np.log(predicted)
    centre = np.median(residual)
    mad = max(float(np.median(np.abs(residual - centre))), MAD_FLOOR)
    z = 0.6745 * (residual - centre) / mad
    return [(p, float(zi)) for p, zi in zip(points, z) if abs(zi) > THRESHOLD]
