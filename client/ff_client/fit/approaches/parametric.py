"""Approach 3 of Hoffmann et al. (2022): the loss surface L(N, D) = E + A / N^alpha + B / D^beta.

Method (as in Hoffmann et al. and Besiroglu et al.'s replication, 2024): parameters are fitted in log
space, theta = (a, b, e, alpha, beta) with A = exp(a), B = exp(b), E = exp(e); the predicted log-loss is
LSE(a - alpha ln N, b - beta ln D, e); the objective is the Huber loss (delta 1e-3) of predicted minus
observed log-loss, summed over points. One local optimiser run from a fixed start is known to stop early,
so the objective is evaluated on a grid of starts (vectorised), a Levenberg-Marquardt refinement of the
Huber objective (analytic Jacobian) runs from the best of them, L-BFGS-B polishes the winner, and the fit
counts as converged when the two best runs agree. Bootstrap resamples refine from the full-data optimum.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize

from ff_client.fit.approach import FitData, Result, Settings
from ff_client.fit.laws import HUBER_DELTA, huber
from ff_client.fit.points import Point
from ff_core.flops import FLOPS_PER_PARAM_TOKEN

# a, b, e, alpha, beta; exponents stay positive (at 0 a term becomes a constant, indistinguishable from E)
_BOUNDS = [(-10, 40), (-10, 40), (-5, 3), (0.01, 3.0), (0.01, 3.0)]
_GRID = {
    "a": np.linspace(0, 25, 6), "b": np.linspace(0, 25, 6), "e": np.array([-1.0, -0.5, 0.0, 0.5, 1.0]),
    "alpha": np.linspace(0.05, 2.0, 6), "beta": np.linspace(0.05, 2.0, 6),
}
LOCAL_RUNS = 8  # local runs from the best grid starts; the fit is converged when the best two agree


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
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN
    theta: tuple[float, ...] = ()  # (a, b, e, alpha, beta): the optimiser's coordinates, for warm starts
    support: tuple[int, int] = (0, 0)  # (points, budgets) it was fitted to
    on_bound: tuple[str, ...] = ()  # the optimiser's coordinates that sit on their bounds
    resample: bool = False  # a bootstrap replicate: it predicts wherever its full-data fit does

    def loss(self, n_params, tokens):
        n, d = np.asarray(n_params, float), np.asarray(tokens, float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

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
    value = huber(residual, delta).sum()
    slope = np.where(np.abs(residual) <= delta, residual, delta * np.sign(residual))  # d(huber)/d(residual)
    grad = np.array([
        (slope * weights[0]).sum(), (slope * weights[1]).sum(), (slope * weights[2]).sum(),
        -(slope * weights[0] * log_n).sum(), -(slope * weights[1] * log_d).sum(),
    ])
    return value, grad


def _residual_jacobian(theta, log_n, log_d, log_l):
    """Residuals (predicted - observed log-loss) (problems, points) and their Jacobian (problems, points, 5) in
    theta (problems, 5), for problems fitted side by side (each its own data rows, all the same length)."""
    a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, log_n.shape)])  # (3, problems, points)
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    weights /= total
    jac = np.stack([weights[0], weights[1], weights[2], -weights[0] * log_n, -weights[1] * log_d], axis=2)
    return top + np.log(total) - log_l, jac


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps, solvable) for a stack of 5x5 systems; a singular one leaves its problem where it is."""
    try:
        return np.linalg.solve(matrix, rhs[..., None])[..., 0], np.ones(len(rhs), bool)
    except np.linalg.LinAlgError:
        steps, ok = np.zeros_like(rhs), np.ones(len(rhs), bool)
        for i in range(len(rhs)):
            try:
                steps[i] = np.linalg.solve(matrix[i], rhs[i])
            except np.linalg.LinAlgError:
                ok[i] = False
        return steps, ok


def _levenberg_marquardt(theta, data: tuple, delta: float, iterations: int = 200):
    """Minimise the Huber objective by damped Gauss-Newton on its reweighted least squares (IRLS), for a stack of
    problems at once: theta (problems, 5), data three (problems, points) arrays; (theta, values) back.

    Each step solves (J'HJ + lambda diag(J'HJ)) s = -J'H r with H the Huber weights min(1, delta/|r|), so J'H r
    is the exact gradient; steps are kept inside the bounds. Every problem keeps its own damping and stops on
    its own (converged, or the damping past 1e8); a problem's answer does not depend on the others it is
    stacked with. About 1 ms per problem alone, some 50x faster than scipy's L-BFGS-B; stacked (the grid's
    best starts, a chunk of bootstrap resamples) the numpy overhead is shared: some 20x less again.
    """
    low, high = np.array([b[0] for b in _BOUNDS]), np.array([b[1] for b in _BOUNDS])
    theta = np.clip(np.array(theta, float), low, high)
    residual, jac = _residual_jacobian(theta, *data)
    value, damping = huber(residual, delta).sum(axis=1), np.full(len(theta), 1e-3)
    active = np.arange(len(theta))
    for _ in range(iterations):
        if not len(active):
            break
        r, j, d = residual[active], jac[active], damping[active]
        h = np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        jt = j.transpose(0, 2, 1)
        gradient = (jt @ (h * r)[:, :, None])[:, :, 0]
        hessian = jt @ (h[:, :, None] * j)
        diagonal = np.diagonal(hessian, axis1=1, axis2=2)
        step, solvable = _solve(hessian + (d[:, None] * (diagonal + 1e-12))[:, :, None] * np.eye(5), -gradient)
        candidate = np.clip(theta[active] + step, low, high)
        new_residual, new_jac = _residual_jacobian(candidate, *(x[active] for x in data))
        new_value = huber(new_residual, delta).sum(axis=1)
        better = solvable & (new_value < value[active])
        converged = better & (value[active] - new_value <= 1e-13 * np.maximum(value[active], 1e-30))
        won = active[better]
        theta[won], residual[won], jac[won], value[won] = (candidate[better], new_residual[better],
                                                           new_jac[better], new_value[better])
        damping[active] = np.where(better, np.maximum(d / 3, 1e-12), d * 4)
        active = active[solvable & ~converged & (damping[active] <= 1e8)]
    return theta, value


def _grid_values(log_n, log_d, log_l, delta) -> tuple[np.ndarray, np.ndarray]:
    """Every grid start and its objective, vectorised: (starts, 5) and (starts,)."""
    starts = np.array(list(itertools.product(*_GRID.values())))
    a, b, e, alpha, beta = (starts[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, (len(starts), len(log_n)))])
    residual = np.logaddexp.reduce(terms, axis=0) - log_l
    return starts, huber(residual, delta).sum(axis=1)


def _local(start: np.ndarray, data: tuple, delta: float):
    return minimize(_objective, start, args=(*data, delta), jac=True, method="L-BFGS-B", bounds=_BOUNDS,
                    options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9})


def fit_parametric(points: list[Point] | tuple[Point, ...], delta: float = HUBER_DELTA,
                   start: tuple[float, ...] | None = None) -> ParametricFit | None:
    """Fit the loss surface; None when there are fewer points than parameters.

    `start` (a previous fit's theta) skips the grid: one local run from there, as bootstrap resamples do.
    """
    if len(points) < 6:
        return None
    data = (np.log([p.n_params for p in points]), np.log([p.tokens for p in points]), np.log([p.loss for p in points]))
    if start is not None:  # bootstrap resample: one refinement from the full-data optimum
        return refit_parametric([points], start, delta)[0]
    starts, values = _grid_values(*data, delta)
    best = starts[np.argsort(values)[:LOCAL_RUNS]]
    thetas, values = _levenberg_marquardt(best, tuple(np.broadcast_to(x, (len(best), len(x))) for x in data), delta)
    runs = sorted(zip(thetas, values.tolist()), key=lambda run: run[1])
    # A gradient-based polish (L-BFGS-B, analytic gradient) from the best run, kept only if it improves.
    polish = _local(runs[0][0], data, delta)
    best = (polish.x, float(polish.fun)) if polish.fun < runs[0][1] else runs[0]
    warnings = []
    converged = abs(runs[1][1] - runs[0][1]) <= 1e-6 * max(abs(runs[0][1]), 1e-12) if len(runs) > 1 else True
    if not converged:
        warnings.append("parametric fit: the best local runs disagree; treat its parameters with caution")
    return _result(points, best[0], best[1], converged, len(starts), warnings)


def refit_parametric(samples: list, start: tuple[float, ...], delta: float = HUBER_DELTA) -> list[ParametricFit]:
    """One refinement from `start` (the full-data optimum) for each sample of points, all of one length (the
    resamples of a stratified bootstrap), fitted side by side."""
    data = tuple(np.log([[getattr(p, field) for p in points] for points in samples])
                 for field in ("n_params", "tokens", "loss"))
    thetas, values = _levenberg_marquardt(np.tile(np.asarray(start, float), (len(samples), 1)), data, delta)
    return [_result(points, theta, float(value), True, 1, []) for points, theta, value in zip(samples, thetas, values)]


def _result(points, theta, value: float, converged: bool, starts: int, warnings: list[str]) -> ParametricFit:
    a, b, e, alpha, beta = theta
    on_bound = tuple(name for name, v, (low, high) in zip(("a", "b", "e", "alpha", "beta"), theta, _BOUNDS)
                     if math.isclose(v, low, abs_tol=1e-6) or math.isclose(v, high, abs_tol=1e-6))
    warnings += [f"parametric fit: {name} sits on its bound ({v:.3g}); the data do not pin it down"
                 for name, v in zip(("a", "b", "e", "alpha", "beta"), theta) if name in on_bound]
    ratio = float(np.median([p.flops / (p.n_params * p.tokens) for p in points]))
    return ParametricFit(math.exp(e), math.exp(a), math.exp(b), float(alpha), float(beta), float(value),
                         converged, starts, tuple(warnings), ratio, tuple(float(v) for v in theta),
                         (len(points), len({p.budget for p in points})), on_bound)


SURFACE = ("E", "A", "B", "alpha", "beta")


MIN_TABLE_SUPPORT = (8, 2)  # points and budgets below which the surface's allocation is not tabulated


def tabulated(fit: ParametricFit) -> bool:
    """Whether the data support the surface's compute-optimal allocation as table rows: 8 or more points (3 more
    than its 5 parameters) over 2 or more budgets, and neither exponent on its bound (a bound, not the
    data, would then set a = beta / (alpha + beta): flat data do that). Otherwise its parameters are reported,
    not a table."""
    enough = all(have >= need for have, need in zip(fit.support, MIN_TABLE_SUPPORT))
    return enough and (fit.resample or not {"alpha", "beta"} & set(fit.on_bound))


def surface_parameters(fit: ParametricFit) -> dict[str, float]:
    return {name: getattr(fit, name) for name in SURFACE}


def correlations(replicates, names=SURFACE) -> dict[str, float]:
    """Pearson correlations between parameters across bootstrap replicates, in log space (lmfit reports these)."""
    rows = np.array([[r[n] for n in names] for r in replicates])
    if len(rows) < 10:
        return {}
    matrix = np.corrcoef(np.log(np.abs(rows)), rowvar=False)
    return {f"{names[i]},{names[j]}": float(matrix[i, j]) for i in range(len(names)) for j in range(i + 1, len(names))}


def _unsupported(fit: ParametricFit) -> str:
    points, budgets = fit.support
    why = (f"an exponent sits on its bound ({', '.join(n for n in fit.on_bound if n in ('alpha', 'beta'))})"
           if {"alpha", "beta"} & set(fit.on_bound) else
           f"5 parameters from {points} points over {budgets} budget(s), where it needs {MIN_TABLE_SUPPORT[0]} "
           f"over {MIN_TABLE_SUPPORT[1]}")
    return f"parametric: its compute-optimal allocation is not tabulated: {why}; its parameters are shown"


class Parametric:
    """Approach 3 as a unit of the analysis; bootstrap replicates refine from the full-data optimum."""

    name = json_key = "parametric"
    listed = True
    allocates, style = True, ("C3", "--")

    def l_opt_law(self, parameters: dict[str, float], flops_per_param_token: float):
        """L_opt(C) from its reported parameters: the surface's minimum along C = k N D."""
        surface = ParametricFit(parameters["E"], parameters["A"], parameters["B"], parameters["alpha"],
                                parameters["beta"], 0.0, True, 0, (), flops_per_param_token)
        return lambda c: surface.predict(c)["l_opt"]

    def fit(self, data: FitData, settings: Settings) -> ParametricFit | None:
        return fit_parametric(data.points, settings.delta)

    def refit(self, data: FitData, central: ParametricFit, settings: Settings) -> ParametricFit | None:
        return self.refit_many([data], central, settings)[0]

    def refit_many(self, data: list[FitData], central: ParametricFit, settings: Settings) -> list[ParametricFit | None]:
        """The resamples of one bootstrap chunk (all of one length), refined side by side."""
        if len(data[0].points) < 6:
            return [None] * len(data)
        fits = refit_parametric([d.points for d in data], central.theta, settings.delta)
        return [replace(fit, resample=True) for fit in fits]

    def parameters(self, fit: ParametricFit) -> dict[str, float]:
        return surface_parameters(fit) | {"a": fit.a, "b": fit.b}

    def predict(self, fit: ParametricFit, compute: float) -> dict[str, float] | None:
        return fit.predict(compute) if tabulated(fit) else None

    def warnings(self, result: Result) -> list[str]:
        return list(result.fit.warnings) + ([] if tabulated(result.fit) else [_unsupported(result.fit)])

    def section(self, result: Result) -> list[str]:
        lines = ["## Approach 3: parametric L(N, D) = E + A/N^alpha + B/D^beta"]
        p = result.fit
        if p is None:
            return lines + ["  not fitted: fewer than 6 points"]
        lines.append(f"  Huber objective {p.objective:.4g} (delta {result.settings.delta:g}, log-loss), "
                     f"{'converged' if p.converged else 'NOT converged'}, {p.starts} grid starts")
        lines += result.parameter_lines()
        strong = sorted(correlations(result.replicates).items(), key=lambda kv: -abs(kv[1]))
        if strong:
            lines.append("  correlations (bootstrap, log-parameters): " +
                         ", ".join(f"C({k}) {v:+.3f}" for k, v in strong if abs(v) >= 0.1))
        return lines

    def to_json(self, result: Result) -> dict:
        return {"parameters": result.parameters_json(), "objective": result.fit.objective,
                "converged": result.fit.converged, "predictions": result.rows_json(),
                "correlations": correlations(result.replicates)}


APPROACH = Parametric()
