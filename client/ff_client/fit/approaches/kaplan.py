"""Kaplan-style fits (Kaplan et al. 2020): L(N) = (N_c / N)^alpha_N and L(D) = (D_c / D)^alpha_D.

Each is fitted in log space to the lower envelope of the final losses (the points that no smaller model,
or no shorter run, beats). They predict no compute-optimal allocation, so they add no table rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ff_client.fit.approach import FitData, Result, Settings
from ff_client.fit.laws import fit_power_law
from ff_client.fit.points import Point


def lower_envelope(points, key) -> list[Point]:
    """Points that no point with a smaller or equal `key` beats on loss."""
    kept, best = [], np.inf
    for p in sorted(points, key=lambda p: (key(p), p.loss)):
        if p.loss < best:
            kept.append(p)
            best = p.loss
    return kept


@dataclass(frozen=True)
class KaplanFit:
    alpha_n: float
    n_c: float
    r2_n: float
    alpha_d: float
    d_c: float
    r2_d: float


def fit_loss_law(points, key) -> tuple[float, float, float] | None:
    """(alpha, x_c, R^2) of L = (x_c / x)^alpha on the lower envelope in `key` (N or D); None below 3 points."""
    envelope = lower_envelope(points, key)
    if len(envelope) < 3:
        return None
    law = fit_power_law("L", np.array([key(p) for p in envelope]), np.array([p.loss for p in envelope]))
    alpha = -law.exponent  # L = k x^-alpha = (x_c / x)^alpha, so x_c = k^(1/alpha)
    return alpha, law.coefficient ** (1 / alpha), law.r2


def fit_kaplan(points: tuple[Point, ...]) -> KaplanFit | None:
    """L(N) and L(D) power laws on the lower envelopes; None with fewer than 3 envelope points on either."""
    by_n = fit_loss_law(points, lambda p: p.n_params)
    by_d = fit_loss_law(points, lambda p: p.tokens)
    if by_n is None or by_d is None:
        return None
    return KaplanFit(*by_n, *by_d)


class Kaplan:
    name = json_key = "kaplan"
    listed = False
    allocates, style = False, None

    def fit(self, data: FitData, settings: Settings) -> KaplanFit | None:
        return fit_kaplan(tuple(data.points))

    def refit(self, data: FitData, central: KaplanFit, settings: Settings) -> KaplanFit | None:
        return fit_kaplan(tuple(data.points))

    def parameters(self, fit: KaplanFit) -> dict[str, float]:
        return {"alpha_n": fit.alpha_n, "n_c": fit.n_c, "alpha_d": fit.alpha_d, "d_c": fit.d_c}

    def predict(self, fit: KaplanFit, compute: float) -> None:
        return None

    def warnings(self, result: Result) -> list[str]:
        return []

    def section(self, result: Result) -> list[str]:
        lines = ["## Kaplan-style: L(N) = (N_c/N)^alpha_N, L(D) = (D_c/D)^alpha_D on the lower envelopes"]
        k = result.fit
        if k is None:
            return lines + ["  not fitted: fewer than 3 envelope points"]
        lines.append(f"  R^2 of L(N) {k.r2_n:.4f}, of L(D) {k.r2_d:.4f}")
        return lines + result.parameter_lines()

    def to_json(self, result: Result) -> dict:
        return {"parameters": result.parameters_json(), "r2": {"L(N)": result.fit.r2_n, "L(D)": result.fit.r2_d}}


APPROACH = Kaplan()
