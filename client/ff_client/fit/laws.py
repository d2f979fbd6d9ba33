"""Laws the approaches share: a power law in compute fitted in log space, and the Huber loss with its delta."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The Huber delta on log-loss residuals (Hoffmann et al. 2022 use 1e-3): quadratic below, linear above,
# so a point far off the fit pulls with a bounded force.
HUBER_DELTA = 1e-3


def huber(residual: np.ndarray, delta: float) -> np.ndarray:
    """The Huber loss of each residual (elementwise; sum it over points)."""
    small = np.abs(residual) <= delta
    return np.where(small, 0.5 * residual**2, delta * (np.abs(residual) - 0.5 * delta))


@dataclass(frozen=True)
class PowerLaw:
    """y = coefficient * C ** exponent, fitted in log space; r2 is the log-space R^2."""

    name: str
    coefficient: float
    exponent: float
    r2: float

    def __call__(self, compute: float | np.ndarray) -> float | np.ndarray:
        return self.coefficient * np.asarray(compute, dtype=float) ** self.exponent


def fit_power_law(name: str, compute: np.ndarray, values: np.ndarray) -> PowerLaw:
    """Least squares of ln(values) on ln(compute)."""
    lx, ly = np.log(compute), np.log(values)
    slope, intercept = np.polyfit(lx, ly, 1)
    residual = ly - (slope * lx + intercept)
    spread = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / spread if spread > 0 else 1.0
    return PowerLaw(name, math.exp(intercept), float(slope), r2)


def law_lines(laws) -> list[str]:
    """A report line per power law in C."""
    return [f"  {law.name} = {law.coefficient:.4g} * C^{law.exponent:.4f}   (R^2 {law.r2:.4f})" for law in laws]
