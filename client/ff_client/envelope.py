"""Approach 1 of Hoffmann et al. (2022) and Kaplan-style fits: scaling laws from lower envelopes.

Approach 1: every training curve (loss against tokens, in the result records) becomes loss against
FLOPs C = (FLOPs per token) x tokens; on a log grid of C, the experiment with the lowest loss there gives
N_opt(C) and D_opt(C) = C / (r N_opt); power laws N_opt = k C^a and D_opt = k' C^b are fitted in log space.
Kaplan-style (Kaplan et al. 2020): L(N) = (N_c / N)^alpha_N and L(D) = (D_c / D)^alpha_D, each fitted to the
lower envelope of the final losses (the points that no smaller model, or no shorter run, beats).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ff_client.isoflop import PowerLaw, fit_power_law
from ff_client.points import Point
from ff_core.results import ResultRecord

GRID = 40


@dataclass(frozen=True)
class EnvelopeFit:
    n_opt: PowerLaw
    d_opt: PowerLaw
    l_opt: PowerLaw
    grid: int  # FLOP levels where the envelope was read

    def predict(self, compute: float) -> dict[str, float]:
        return {"n_opt": float(self.n_opt(compute)), "d_opt": float(self.d_opt(compute)),
                "l_opt": float(self.l_opt(compute))}


def fit_training_curves(records: tuple[ResultRecord, ...]) -> EnvelopeFit | None:
    """Approach 1 from the records' loss curves; None with fewer than 2 sizes or too little overlap."""
    curves = []
    for r in records:
        if r.status != "completed" or len(r.loss_curve) < 3:
            continue
        per_token = r.flops.get("planned", r.flops["6nd"]) / r.tokens
        c = np.array([per_token * p.tokens for p in r.loss_curve])
        curves.append((r.n_params, per_token / r.n_params, np.log(c), np.array([p.loss for p in r.loss_curve])))
    if len({n for n, *_ in curves}) < 2:
        return None
    low, high = min(c[0] for _, _, c, _ in curves), max(c[-1] for _, _, c, _ in curves)
    need = min(3, len({n for n, *_ in curves}))
    minima = []
    for log_c in np.linspace(low, high, GRID + 2)[1:-1]:  # inside the range: the ends are covered by few curves
        covering = [(float(np.interp(log_c, c, loss)), n, ratio) for n, ratio, c, loss in curves if c[0] <= log_c <= c[-1]]
        if len({n for _, n, _ in covering}) >= need:  # an envelope of one or two sizes says little
            value, n, ratio = min(covering)
            minima.append((np.exp(log_c), n, np.exp(log_c) / (ratio * n), value))
    if len({m[1] for m in minima}) < 2:
        return None
    compute, n_opt, d_opt, l_opt = (np.array(v) for v in zip(*minima))
    return EnvelopeFit(fit_power_law("n_opt", compute, n_opt), fit_power_law("d_opt", compute, d_opt),
                       fit_power_law("l_opt", compute, l_opt), len(minima))


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
