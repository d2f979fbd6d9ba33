"""Laws the approaches share: a power law in compute fitted in log space (with or without a floor), and the Huber
loss with its delta."""

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
    """A report line per law in C."""
    return [f"  {law.name} = {law_text(law)}   (R^2 {law.r2:.4f})" for law in laws]


def law_text(law) -> str:
    floor = f"{law.floor:.4g} + " if isinstance(law, FloorLaw) else ""
    return f"{floor}{law.coefficient:.4g} * C^{law.exponent:.4f}"


@dataclass(frozen=True)
class FloorLaw:
    """y = floor + coefficient * C ** exponent (exponent < 0): a loss that falls toward an irreducible floor E,
    the form Hoffmann et al. (2022) and Marin use for L_opt(C); r2 is the log-space R^2."""

    name: str
    floor: float
    coefficient: float
    exponent: float
    r2: float

    def __call__(self, compute: float | np.ndarray) -> float | np.ndarray:
        return self.floor + self.coefficient * np.asarray(compute, dtype=float) ** self.exponent


MIN_FLOOR_POINTS = 4  # three parameters: a floor through three minima would fit them exactly
FLOOR_SUPPORT = (0.02, 0.98)  # a fitted floor at these fractions of the lowest value or beyond sits on a bound


def _floor_fit(lx: np.ndarray, ly: np.ndarray, floor: float) -> tuple[float, float, float]:
    """(ln-space sum of squares, slope, intercept) of ln(y - floor) on ln(C) for a fixed floor, scored in ln y."""
    slope, intercept = np.polyfit(lx, np.log(np.exp(ly) - floor), 1)
    residual = ly - np.log(floor + np.exp(intercept + slope * lx))
    return float((residual**2).sum()), float(slope), float(intercept)


def fit_floor_law(name: str, compute: np.ndarray, values: np.ndarray, supported_only: bool = True) -> FloorLaw | None:
    """The floor E by a bounded search over E in [0, min y), the power law of y - E fitted in log space at each E
    (a profile fit); None below MIN_FLOOR_POINTS points, or (supported_only) where E sits on either bound:
    the data then show no floor, or cannot place one. A resample refits the form its full-data fit had
    (supported_only=False)."""
    from scipy.optimize import minimize_scalar

    if len(compute) < MIN_FLOOR_POINTS:
        return None
    scale = float(np.exp(np.log(compute).mean()))  # C / its geometric mean keeps the intercept near 0
    lx, ly, lowest = np.log(compute / scale), np.log(values), float(np.min(values))
    found = minimize_scalar(lambda u: _floor_fit(lx, ly, u * lowest)[0], bounds=(0.0, 0.999),
                            method="bounded", options={"xatol": 1e-6})
    share = float(found.x)
    if supported_only and not FLOOR_SUPPORT[0] < share < FLOOR_SUPPORT[1]:
        return None
    sse, slope, intercept = _floor_fit(lx, ly, share * lowest)
    if not (math.isfinite(sse) and slope < 0):
        raise ValueError("the floor fit found no falling law")
    spread = float(((ly - ly.mean()) ** 2).sum())
    return FloorLaw(name, share * lowest, math.exp(intercept) * scale ** -slope, slope,
                    1.0 - sse / spread if spread > 0 else 1.0)
