"""Over-training and downstream error: Gadre et al. (2024)'s two laws, fitted to small runs and backtested on
held-out large ones (`ffctl overtrain --data FILE`).

The loss law: L(N, D) = E + A N^-eta + B D^-eta, one exponent for both terms. With C = 6ND and the token
multiplier M = D/N it is Gadre's L(C, M) = E + (a M^(eta/2) + b M^(-eta/2)) C^(-eta/2): at a fixed M the reducible
loss is a power law in C with exponent eta/2 whatever M is, and M only shifts it. So runs at M = 20 and one small
run far past it pin the law down for every M; a law fitted at M = 20 alone cannot tell A from B, and a power law
in C alone (the naive reading) puts every M on one curve and misses over-trained runs.

The error law: average top-1 error from loss, Err(L) = eps - k exp(-gamma L) (Gadre's, a power law in
perplexity); or for an accuracy-like metric a sigmoid, Err(L) = lo + (hi - lo) / (1 + exp(-s (L - L0))).

Each fit is least squares in the quantity itself (as Gadre's curve_fit), from a grid of starts. Intervals are a
parametric bootstrap: each fitted run's loss (and error) drawn again from its own standard error (columns loss_se,
error_se: the evaluation's noise), both laws refitted, every target predicted again; without those columns the
residuals are resampled, and with fewer than 2 degrees of freedom there is no interval (said). A target's error is
predicted from its predicted loss, as Gadre do; the error law at its measured loss is given too.

Pure: runs in, numbers out. Data: name, n_params, tokens, loss (required); loss_se, error, error_se, use.
`use` is fit (both laws), fit-error (the error law only), target (held out and predicted) or empty (not used);
without a `use` column, the runs of the largest size are the targets and every other run is fitted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ff_client.fit.datafile import DataFileError, number, read_rows
from ff_client.fit.estimate import MAX_FAILED_SHARE, Estimate, percentile_estimate
from ff_client.text import aligned
from ff_core.errors import FlopsFitError

REQUIRED = ("n_params", "tokens", "loss")
USES = ("fit", "fit-error", "target", "")
RESAMPLES = 400
ERROR_LAWS = ("exponential", "sigmoid")
LOSS_PARAMETERS = 4  # E, A, B, eta


@dataclass(frozen=True)
class Run:
    name: str
    n_params: float
    tokens: float
    loss: float
    use: str
    loss_se: float | None = None
    error: float | None = None
    error_se: float | None = None

    @property
    def multiplier(self) -> float:
        return self.tokens / self.n_params

    @property
    def flops(self) -> float:
        return 6.0 * self.n_params * self.tokens


def load_runs(path: str | Path) -> list[Run]:
    """The runs of a file; a malformed value, an unknown `use` or a run named twice is an error naming the row."""
    path = Path(path)
    rows = read_rows(path, REQUIRED)
    runs, names = [], {}
    for row, values in enumerate(rows, start=1):
        missing = [c for c in REQUIRED if values.get(c) in (None, "")]
        if missing:
            raise DataFileError(f"{path}: row {row} has no {', '.join(missing)}")
        n, d, loss = (number(path, row, c, values[c]) for c in REQUIRED)
        use = str(values.get("use") or "").strip()
        if use not in USES:
            raise DataFileError(f"{path}: row {row}, column 'use': {use!r}; use one of fit, fit-error, target, or "
                                "leave it empty (not used)")
        name = str(values.get("name") or f"N={n:.3g} D={d:.3g}")
        if name in names:
            raise DataFileError(f"{path}: rows {names[name]} and {row} are both named {name!r}; name each run once")
        names[name] = row
        optional = {c: number(path, row, c, values[c]) if values.get(c) not in (None, "") else None
                    for c in ("loss_se", "error", "error_se")}
        runs.append(Run(name, n, d, loss, use, **optional))
    if not runs:
        raise DataFileError(f"{path}: no rows")
    if not any("use" in values for values in rows):  # no column: hold out the largest size
        largest = max(r.n_params for r in runs)
        runs = [Run(r.name, r.n_params, r.tokens, r.loss, "target" if r.n_params == largest else "fit", r.loss_se,
                    r.error, r.error_se) for r in runs]
    return runs


def runs_from_records(records) -> list[Run]:
    """A sweep's ladder runs (ff_core.results.ResultRecord with identity.ladder) as runs: the largest size is the
    target, every other size fitted; `error` is the eval plugin's last `error` (or 1 - `accuracy`) when it has one."""
    largest = max(r.n_params for r in records)
    runs = []
    for r in sorted(records, key=lambda r: (r.n_params, r.tokens)):
        last = r.task_metrics[-1].metrics if r.task_metrics else {}
        error = last.get("error", 1.0 - last["accuracy"] if "accuracy" in last else None)
        runs.append(Run(f"{r.size} M={r.identity['ladder']:g}", float(r.n_params), float(r.tokens),
                        float(r.eval_loss), "target" if r.n_params == largest else "fit",
                        error=error if error is not None and error > 0 else None))
    return runs


# --- the laws ---------------------------------------------------------------------------------------------------

def loss_law(theta: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """theta = (E, ln A, ln B, eta)."""
    e, ln_a, ln_b, eta = theta
    return e + np.exp(ln_a - eta * np.log(n)) + np.exp(ln_b - eta * np.log(d))


def error_law(kind: str, theta: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """exponential: theta = (eps, ln k, gamma); sigmoid: theta = (lo, hi, s, L0)."""
    if kind == "exponential":
        eps, ln_k, gamma = theta
        return eps - np.exp(ln_k - gamma * loss)
    lo, hi, s, l0 = theta
    return lo + (hi - lo) / (1.0 + np.exp(-s * (loss - l0)))


LOSS_STARTS = [(e, a, b, eta) for e in (0.0, 1.0, 2.0) for a in (2.0, 5.0, 8.0) for b in (2.0, 5.0, 8.0)
               for eta in (0.1, 0.3)]
LOSS_BOUNDS = ([0.0, -50.0, -50.0, 0.01], [20.0, 100.0, 100.0, 2.0])
ERROR_BOUNDS = {"exponential": ([0.0, -50.0, 0.0], [1.5, 50.0, 20.0]),
                "sigmoid": ([0.0, 0.0, 0.01, 0.0], [1.0, 1.0, 50.0, 20.0])}


def _error_starts(kind: str, losses: np.ndarray, errors: np.ndarray) -> list[tuple[float, ...]]:
    if kind == "exponential":
        return [(eps, k, g) for eps in (0.8, 1.0) for k in (0.0, 1.0, 3.0) for g in (0.5, 1.0, 2.0)]
    middle = float(np.median(losses))
    return [(max(0.0, float(errors.min()) - 0.05), min(1.0, float(errors.max()) + 0.05), s, middle + shift)
            for s in (1.0, 3.0) for shift in (-0.5, 0.0, 0.5)]


def _best_fit(residuals: Callable[[np.ndarray], np.ndarray], starts: Sequence, bounds) -> np.ndarray | None:
    from scipy.optimize import least_squares  # here: ffctl imports this module for its options, scipy takes 0.35 s

    best, best_cost = None, math.inf
    for start in starts:
        lo, hi = np.array(bounds[0]), np.array(bounds[1])
        try:
            fit = least_squares(residuals, np.clip(np.array(start, float), lo + 1e-9, hi - 1e-9), bounds=bounds)
        except (ValueError, FloatingPointError):
            continue
        if fit.success and np.all(np.isfinite(fit.x)) and fit.cost < best_cost:
            best, best_cost = fit.x, fit.cost
    return best


def fit_loss_law(runs: Sequence[Run], starts: Sequence = LOSS_STARTS) -> np.ndarray | None:
    return _fit_loss(np.array([r.n_params for r in runs]), np.array([r.tokens for r in runs]),
                     np.array([r.loss for r in runs]), starts)


def _fit_loss(n: np.ndarray, d: np.ndarray, loss: np.ndarray, starts: Sequence) -> np.ndarray | None:
    with np.errstate(over="ignore", invalid="ignore"):
        return _best_fit(lambda t: loss_law(t, n, d) - loss, starts, LOSS_BOUNDS)


def fit_error_law(kind: str, losses: np.ndarray, errors: np.ndarray, starts: Sequence | None = None):
    with np.errstate(over="ignore", invalid="ignore"):
        return _best_fit(lambda t: error_law(kind, t, losses) - errors,
                         starts or _error_starts(kind, losses, errors), ERROR_BOUNDS[kind])


# --- the analysis -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    run: Run
    loss: Estimate
    error: Estimate | None  # from the predicted loss
    error_at_measured: float | None  # the error law at the run's measured loss

    @property
    def loss_relative_error(self) -> float:
        return abs(self.loss.value - self.run.loss) / self.run.loss

    @property
    def error_relative_error(self) -> float | None:
        if self.error is None or self.run.error is None:
            return None
        return abs(self.error.value - self.run.error) / self.run.error

    def to_json(self) -> dict:
        return {"name": self.run.name, "nParams": self.run.n_params, "tokens": self.run.tokens,
                "multiplier": self.run.multiplier, "loss": self.run.loss, "predictedLoss": self.loss.to_json(),
                "lossRelativeError": self.loss_relative_error, "error": self.run.error,
                "predictedError": self.error.to_json() if self.error else None,
                "errorRelativeError": self.error_relative_error, "errorAtMeasuredLoss": self.error_at_measured}


@dataclass(frozen=True)
class Overtraining:
    loss_fit: tuple[Run, ...]
    error_fit: tuple[Run, ...]
    parameters: dict[str, Estimate]  # E, A, B, eta, alphaC (= eta / 2)
    error_kind: str | None
    error_parameters: dict[str, Estimate]
    predictions: tuple[Prediction, ...]
    interval_source: str  # what the intervals resample, or why there are none
    unused: int
    error_note: str = ""  # why there is no error law although runs have an error

    def text(self) -> str:
        p = self.parameters
        lines = [f"## the loss law L(N, D) = E + A N^-eta + B D^-eta, from {len(self.loss_fit)} runs "
                 f"(M = D/N {_range(r.multiplier for r in self.loss_fit)})",
                 *(f"{name}: {p[name].text()}" for name in ("E", "A", "B", "eta")),
                 f"alpha_C = eta/2, the exponent of C at any fixed M: {p['alphaC'].text()}"]
        if self.error_kind:
            lines += ["", f"## the error law ({self.error_kind}), from {len(self.error_fit)} runs "
                      f"(loss {_range(r.loss for r in self.error_fit)})",
                      *(f"{name}: {value.text()}" for name, value in self.error_parameters.items())]
        if self.predictions:
            rows = [("target", "N", "M", "loss", "predicted", "rel. error")]
            rows += [(q.run.name, f"{q.run.n_params:.3g}", f"{q.run.multiplier:.4g}", f"{q.run.loss:.4f}",
                      q.loss.text(), f"{q.loss_relative_error:.2%}") for q in self.predictions]
            lines += ["", "## backtest: held-out runs, predicted by the laws of the fitted ones", aligned(rows)]
            if self.error_kind:
                rows = [("target", "error", "predicted (from predicted loss)", "rel. error", "at measured loss")]
                rows += [(q.run.name, _maybe(q.run.error), q.error.text() if q.error else "-",
                          "-" if q.error_relative_error is None else f"{q.error_relative_error:.2%}",
                          _maybe(q.error_at_measured)) for q in self.predictions]
                lines += [aligned(rows)]
                outside = [q.run.name for q in self.predictions if q.error and not 0 <= q.error.value <= 1]
                if outside:
                    lines.append(f"outside [0, 1]: {', '.join(outside)}: the {self.error_kind} law does not hold that "
                                 "far from its fitted losses" + ("; try --error-law sigmoid"
                                                                 if self.error_kind == "exponential" else ""))
        if self.error_note:
            lines += ["", f"error law: {self.error_note}"]
        lines += ["", f"intervals: {self.interval_source}"]
        if self.unused:
            lines.append(f"{self.unused} run(s) with no `use` neither fitted nor predicted")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"lossLaw": {k: v.to_json() for k, v in self.parameters.items()},
                "lossFit": [r.name for r in self.loss_fit], "errorFit": [r.name for r in self.error_fit],
                "errorLaw": {"kind": self.error_kind, **{k: v.to_json() for k, v in self.error_parameters.items()}}
                if self.error_kind else None,
                "predictions": [q.to_json() for q in self.predictions], "intervals": self.interval_source}


def _range(values) -> str:
    values = sorted(values)
    return f"{values[0]:.3g}" if values[0] == values[-1] else f"{values[0]:.3g} to {values[-1]:.3g}"


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


ERROR_NAMES = {"exponential": ("eps", "k", "gamma"), "sigmoid": ("lo", "hi", "s", "L0")}


def analyze_overtraining(runs: Sequence[Run], error_kind: str = "exponential", seed: int = 0,
                         resamples: int = RESAMPLES) -> Overtraining:
    """Both laws from the fitted runs, each target predicted, with intervals; too few runs is an error saying how
    many each law needs."""
    if error_kind not in ERROR_LAWS:
        raise FlopsFitError(f"error law {error_kind!r}: use one of {', '.join(ERROR_LAWS)}")
    loss_fit = [r for r in runs if r.use == "fit"]
    if len(loss_fit) < LOSS_PARAMETERS + 1:
        raise FlopsFitError(f"the loss law has {LOSS_PARAMETERS} parameters and needs {LOSS_PARAMETERS + 1} or more "
                            f"runs with use=fit; there are {len(loss_fit)}")
    if len({r.n_params for r in loss_fit}) < 2 or len({round(math.log(r.multiplier), 3) for r in loss_fit}) < 2:
        raise FlopsFitError("the loss law needs fitted runs at 2 or more sizes and 2 or more token multipliers M = "
                            "D/N (one run far past M = 20 tells A from B)")
    theta = fit_loss_law(loss_fit)
    if theta is None:
        raise FlopsFitError("the loss law did not converge from any start; check the losses are of one eval set")
    with_error = [r for r in runs if r.use in ("fit", "fit-error") and r.error is not None]
    kind = error_kind if len(with_error) >= len(ERROR_NAMES[error_kind]) + 1 else None
    phi, note = None, ""
    if with_error and not kind:
        note = (f"not fitted: {len(with_error)} fitted run(s) have an error; the {error_kind} law needs "
                f"{len(ERROR_NAMES[error_kind]) + 1} or more (use fit or fit-error)")
    if kind:
        phi = fit_error_law(kind, np.array([r.loss for r in with_error]), np.array([r.error for r in with_error]))
        note = "" if phi is not None else f"not fitted: the {error_kind} law did not converge from any start"
        kind = kind if phi is not None else None
    targets = [r for r in runs if r.use == "target"]
    draws, source = _bootstrap(loss_fit, with_error if kind else [], targets, theta, phi, kind, seed, resamples)
    parameters = _loss_parameters(theta, draws)
    error_parameters = _error_parameters(kind, phi, draws) if kind else {}
    predictions = []
    for i, t in enumerate(targets):
        loss = float(loss_law(theta, np.array([t.n_params]), np.array([t.tokens]))[0])
        loss_estimate = percentile_estimate(loss, [d["targets"][i][0] for d in draws])
        error = error_at = None
        if kind:
            error = percentile_estimate(float(error_law(kind, phi, np.array([loss]))[0]),
                                        [d["targets"][i][1] for d in draws])
            error_at = float(error_law(kind, phi, np.array([t.loss]))[0])
        predictions.append(Prediction(t, loss_estimate, error, error_at))
    return Overtraining(tuple(loss_fit), tuple(with_error) if kind else (), parameters, kind, error_parameters,
                        tuple(predictions), source, sum(r.use == "" for r in runs), note)


def _bootstrap(loss_fit, error_fit, targets, theta, phi, kind, seed, resamples) -> tuple[list[dict], str]:
    """Refits with every fitted run's values drawn again: from its standard error when the file gives one for
    every fitted run, else from the resampled residuals; none below 2 degrees of freedom."""
    rng = np.random.default_rng(seed)
    n, d = np.array([r.n_params for r in loss_fit]), np.array([r.tokens for r in loss_fit])
    loss = np.array([r.loss for r in loss_fit])
    fitted = loss_law(theta, n, d)
    given = all(r.loss_se is not None for r in loss_fit)
    if given:
        spread = ("the evaluation's noise: each fitted run's loss (and error) drawn from its own loss_se "
                  f"(error_se), {resamples} refits; run-to-run (seed) variance is not in it")
        noise = lambda: rng.normal(0.0, [r.loss_se for r in loss_fit])  # noqa: E731
    elif len(loss_fit) - LOSS_PARAMETERS >= 2:
        residuals = (fitted - loss) * math.sqrt(len(loss) / (len(loss) - LOSS_PARAMETERS))
        spread = f"resampled residuals of the loss law ({resamples} refits); give loss_se for the eval's own noise"
        noise = lambda: rng.choice(residuals, len(loss))  # noqa: E731
    else:
        return [], (f"none: {len(loss_fit)} runs for {LOSS_PARAMETERS} parameters leave fewer than 2 degrees of "
                    "freedom; give loss_se (and error_se) columns for intervals from the evaluation's noise")
    e_loss = np.array([r.loss for r in error_fit])
    e_loss_se = np.array([r.loss_se or 0.0 for r in error_fit])
    e_noise = _error_noise(kind, phi, error_fit, rng) if kind else None
    draws = []
    for _ in range(resamples):
        t = _fit_loss(n, d, (loss if given else fitted) + noise(), [theta])
        if t is None:
            continue
        out = {"theta": t, "targets": []}
        p = None
        if kind:
            p = fit_error_law(kind, e_loss + rng.normal(0.0, e_loss_se), e_noise(), starts=[phi])
            if p is None:
                continue
            out["phi"] = p
        for target in targets:
            predicted = float(loss_law(t, np.array([target.n_params]), np.array([target.tokens]))[0])
            out["targets"].append((predicted, float(error_law(kind, p, np.array([predicted]))[0]) if kind else None))
        draws.append(out)
    if len(draws) < resamples * (1 - MAX_FAILED_SHARE):  # the survivors of a mostly failing bootstrap: no interval
        return [], f"none: {resamples - len(draws)} of {resamples} refits failed"
    return draws, spread


def _error_noise(kind: str, phi: np.ndarray, runs, rng):
    """A draw of the error law's fitted errors: from each run's error_se when every run has one, else its fit
    plus resampled residuals (the error law's scatter: without it, an interval would claim certainty)."""
    losses, errors = np.array([r.loss for r in runs]), np.array([r.error for r in runs])
    if all(r.error_se is not None for r in runs):
        se = np.array([r.error_se for r in runs])
        return lambda: errors + rng.normal(0.0, se)
    fitted = error_law(kind, phi, losses)
    dof = max(len(runs) - len(ERROR_NAMES[kind]), 1)
    residuals = (errors - fitted) * math.sqrt(len(runs) / dof)
    return lambda: fitted + rng.choice(residuals, len(runs))


def _loss_parameters(theta: np.ndarray, draws: list[dict]) -> dict[str, Estimate]:
    e, ln_a, ln_b, eta = theta
    values = {"E": (e, lambda t: t[0]), "A": (math.exp(ln_a), lambda t: math.exp(t[1])),
              "B": (math.exp(ln_b), lambda t: math.exp(t[2])), "eta": (eta, lambda t: t[3]),
              "alphaC": (eta / 2, lambda t: t[3] / 2)}
    return {name: percentile_estimate(float(v), [float(f(d["theta"])) for d in draws])
            for name, (v, f) in values.items()}


def _error_parameters(kind: str, phi: np.ndarray, draws: list[dict]) -> dict[str, Estimate]:
    def shown(k: int, t: np.ndarray) -> float:
        return math.exp(t[k]) if (kind, k) == ("exponential", 1) else float(t[k])

    return {name: percentile_estimate(shown(k, phi), [shown(k, d["phi"]) for d in draws])
            for k, name in enumerate(ERROR_NAMES[kind])}
