"""Approach 3 of Hoffmann et al. (2022): the loss surface L(N, D) = E + A / N^alpha + B / D^beta.

Method (as in Hoffmann et al. and Besiroglu et al.'s replication, 2024): parameters are fitted in log
space, theta = (a, b, e, alpha, beta) with A = exp(a), B = exp(b), E = exp(e); the predicted log-loss is
LSE(a - alpha ln N, b - beta ln D, e); the objective is the Huber loss (delta 1e-3) of predicted minus
observed log-loss, summed over points. One local optimiser run from a fixed start is known to stop early,
so the objective is evaluated on a grid of starts, L-BFGS-B (analytic gradient) runs from the best of
them, and the fit counts as converged when the best runs agree.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from ff_client.points import Point

HUBER_DELTA = 1e-3
_BOUNDS = [(-10, 40), (-10, 40), (-5, 3), (0.0, 3.0), (0.0, 3.0)]  # a, b, e, alpha, beta
_GRID = {
    "a": np.linspace(0, 25, 6), "b": np.linspace(0, 25, 6), "e": np.array([-1.0, -0.5, 0.0, 0.5, 1.0]),
    "alpha": np.linspace(0.05, 2.0, 6), "beta": np.linspace(0.05, 2.0, 6),
}
LOCAL_RUNS = 24


@dataclass(frozen=True)
class ParametricFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    converged: bool
    starts: int
    warnings: tuple[str, ...]
    flops_per_param_token: float = 6.0

    def loss(self, n_params, tokens):
        return self.E + self.A / np.asarray(n_params, float) ** self.alpha + self.B / np.asarray(tokens, float) ** self.beta

    @property
    def a(self) -> float:
        """Exponent of N_opt = G (C/r)^a."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt = G^-1 (C/r)^b."""
        return self.alpha / (self.alpha + self.beta)

    def predict(self, compute: float) -> dict[str, float]:
        """The compute-optimal allocation under C = r N D (r = 6 for 6ND)."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        scaled = compute / self.flops_per_param_token
        n_opt, d_opt = g * scaled**self.a, scaled**self.b / g
        return {"n_opt": float(n_opt), "d_opt": float(d_opt), "l_opt": float(self.loss(n_opt, d_opt))}


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float):
    """Huber objective and its gradient with respect to theta = (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])  # (3, points)
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    residual = top + np.log(total) - log_l
    weights /= total  # softmax: d(pred)/d(term_k)
    small = np.abs(residual) <= delta
    value = np.where(small, 0.5 * residual**2, delta * (np.abs(residual) - 0.5 * delta)).sum()
    slope = np.where(small, residual, delta * np.sign(residual))  # d(huber)/d(residual)
    grad = np.array([
        (slope * weights[0]).sum(), (slope * weights[1]).sum(), (slope * weights[2]).sum(),
        -(slope * weights[0] * log_n).sum(), -(slope * weights[1] * log_d).sum(),
    ])
    return value, grad


def _grid_values(log_n, log_d, log_l, delta) -> tuple[np.ndarray, np.ndarray]:
    """Every grid start and its objective, vectorised: (starts, 5) and (starts,)."""
    starts = np.array(list(itertools.product(*_GRID.values())))
    a, b, e, alpha, beta = (starts[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, (len(starts), len(log_n)))])
    residual = np.logaddexp.reduce(terms, axis=0) - log_l
    huber = np.where(np.abs(residual) <= delta, 0.5 * residual**2, delta * (np.abs(residual) - 0.5 * delta))
    return starts, huber.sum(axis=1)


def fit_parametric(points: list[Point] | tuple[Point, ...], delta: float = HUBER_DELTA) -> ParametricFit | None:
    """Fit the loss surface; None when there are fewer points than parameters."""
    if len(points) < 6:
        return None
    log_n = np.log([p.n_params for p in points])
    log_d = np.log([p.tokens for p in points])
    log_l = np.log([p.loss for p in points])
    starts, values = _grid_values(log_n, log_d, log_l, delta)
    runs = []
    for start in starts[np.argsort(values)[:LOCAL_RUNS]]:
        result = minimize(_objective, start, args=(log_n, log_d, log_l, delta), jac=True, method="L-BFGS-B",
                          bounds=_BOUNDS, options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
        runs.append(result)
    runs.sort(key=lambda r: r.fun)
    best = runs[0]
    a, b, e, alpha, beta = best.x
    warnings = []
    agree = [r for r in runs[:5] if abs(r.fun - best.fun) <= 1e-6 * max(1.0, abs(best.fun)) + 1e-12]
    converged = bool(best.success) and len(agree) >= 2
    if not converged:
        warnings.append("parametric fit: the best local runs disagree; treat its parameters with caution")
    for name, value, (low, high) in zip(("a", "b", "e", "alpha", "beta"), best.x, _BOUNDS):
        if math.isclose(value, low, abs_tol=1e-6) or math.isclose(value, high, abs_tol=1e-6):
            warnings.append(f"parametric fit: {name} sits on its bound ({value:.3g}); the data do not pin it down")
    ratio = float(np.median([p.flops / (p.n_params * p.tokens) for p in points]))
    return ParametricFit(math.exp(e), math.exp(a), math.exp(b), float(alpha), float(beta), float(best.fun),
                         converged, len(starts), tuple(warnings), ratio)
