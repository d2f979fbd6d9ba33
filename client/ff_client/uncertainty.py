"""Bootstrap intervals for every reported number, by resampling experiments.

Each resample draws, within every compute budget, as many experiments as the budget has, with
replacement (a stratified bootstrap: every isoFLOP curve keeps its size), and refits both approaches;
the parametric refit starts from the full-data optimum. Intervals are the 2.5th and 97.5th percentiles
of the replicates. Resamples come in fixed chunks, each with its own child of one SeedSequence, so the
intervals depend on the seed and count only, never on how many processes computed them.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from ff_client.constrained import ConstrainedFit, constrained_stats, fit_data_constrained
from ff_client.envelope import EnvelopeFit, KaplanFit, fit_kaplan, fit_training_curves
from ff_client.isoflop import IsoflopFit, fit_isoflop
from ff_client.parametric import ParametricFit, fit_parametric
from ff_client.points import Point
from ff_core.results import ResultRecord

CHUNK = 25
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    value: float
    low: float | None = None
    high: float | None = None

    def to_json(self) -> dict:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def isoflop_stats(fit: IsoflopFit, targets: tuple[float, ...]) -> dict[str, float] | None:
    """The numbers Approach 2 reports, flat: exponents, coefficients and predictions at each target."""
    if fit.n_opt is None:
        return None
    stats = {"a": fit.n_opt.exponent, "b": fit.d_opt.exponent, "l_exponent": fit.l_opt.exponent,
             "n_coefficient": fit.n_opt.coefficient, "d_coefficient": fit.d_opt.coefficient,
             "l_coefficient": fit.l_opt.coefficient}
    return stats | _predictions(fit, targets)


def parametric_stats(fit: ParametricFit | None, targets: tuple[float, ...]) -> dict[str, float] | None:
    if fit is None:
        return None
    stats = {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a, "b": fit.b}
    return stats | _predictions(fit, targets)


def curves_stats(fit: EnvelopeFit | None, targets: tuple[float, ...]) -> dict[str, float] | None:
    if fit is None:
        return None
    return {"a": fit.n_opt.exponent, "b": fit.d_opt.exponent, "l_exponent": fit.l_opt.exponent} | _predictions(fit, targets)


def kaplan_stats(fit: KaplanFit | None, targets: tuple[float, ...] = ()) -> dict[str, float] | None:
    if fit is None:
        return None
    return {"alpha_n": fit.alpha_n, "n_c": fit.n_c, "alpha_d": fit.alpha_d, "d_c": fit.d_c}


def _predictions(fit, targets: tuple[float, ...]) -> dict[str, float]:
    return {f"{k}@{c:.6g}": v for c in targets for k, v in fit.predict(c).items()}


def _guarded(compute) -> dict | None:
    """A replicate's numbers, or None when its fit breaks down numerically (it is counted as failed)."""
    try:
        with np.errstate(all="raise"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a poorly conditioned parabola: judged by its result
            return compute()
    except (FloatingPointError, ZeroDivisionError, OverflowError, ValueError, np.linalg.LinAlgError):
        return None


@dataclass(frozen=True)
class _Job:
    groups: list[list[Point]]
    records: dict[str, ResultRecord]  # by experiment id, for Approach 1's curves
    seed: np.random.SeedSequence
    count: int
    targets: tuple[float, ...]
    start: tuple[float, ...] | None  # the full-data parametric optimum
    delta: float
    constrained: ConstrainedFit | None = None  # the full-data data-constrained fit, when there is one


def _replicate(job: _Job, sample: list[Point]) -> dict[str, dict | None]:
    t = job.targets
    out = {"isoflop": _guarded(lambda: isoflop_stats(fit_isoflop(sample), t)),
           "kaplan": _guarded(lambda: kaplan_stats(fit_kaplan(tuple(sample))))}
    if job.start is not None:
        out["parametric"] = _guarded(lambda: parametric_stats(fit_parametric(sample, job.delta, job.start), t))
    if job.constrained is not None:
        out["constrained"] = _guarded(lambda: constrained_stats(fit_data_constrained(sample, job.delta, job.constrained)))
    if job.records:
        picked = tuple(job.records[p.label] for p in sample if p.label in job.records)
        out["curves"] = _guarded(lambda: curves_stats(fit_training_curves(picked), t))
    return out


def _chunk(job: _Job) -> list[dict]:
    rng = np.random.default_rng(job.seed)
    return [_replicate(job, [g[i] for g in job.groups for i in rng.integers(0, len(g), len(g))])
            for _ in range(job.count)]


def _intervals(central: dict[str, float] | None, replicates: list[dict | None]) -> tuple[dict[str, Interval], int]:
    """Percentile intervals for each number; a replicate whose fit failed is counted, not used."""
    good = [r for r in replicates if r is not None and all(math.isfinite(v) for v in r.values())]
    if central is None:
        return {}, len(replicates) - len(good)
    tail = 100 * (1 - LEVEL) / 2
    out = {}
    for name, value in central.items():
        values = np.array([r[name] for r in good if name in r])
        if len(values) >= 10:
            low, high = np.percentile(values, [tail, 100 - tail])
            out[name] = Interval(value, float(low), float(high))
        else:
            out[name] = Interval(value)
    return out, len(replicates) - len(good)


def correlations(replicates: list[dict | None], names=("E", "A", "B", "alpha", "beta")) -> dict[str, float]:
    """Pearson correlations between parameters across bootstrap replicates (lmfit reports these)."""
    rows = np.array([[r[n] for n in names] for r in replicates if r is not None])
    if len(rows) < 10:
        return {}
    matrix = np.corrcoef(np.log(np.abs(rows)), rowvar=False)
    return {f"{names[i]},{names[j]}": float(matrix[i, j]) for i in range(len(names)) for j in range(i + 1, len(names))}


def bootstrap(points, central: dict[str, dict | None], targets: tuple[float, ...], resamples: int, seed: int = 0,
              workers: int | None = None, start: tuple[float, ...] | None = None, delta: float = 1e-3,
              records: tuple[ResultRecord, ...] = (), constrained: ConstrainedFit | None = None) -> dict:
    """{"intervals": {approach: {name: Interval}}, "failed": {approach: count}, "correlations": {...}}.

    `central` holds each approach's numbers from the full data (None where it was not fitted).
    """
    by_budget: dict[float, list[Point]] = defaultdict(list)
    for p in points:
        by_budget[p.budget].append(p)
    groups = [by_budget[b] for b in sorted(by_budget)]
    by_id = {r.experiment: r for r in records} if central.get("curves") else {}
    counts = [min(CHUNK, resamples - i) for i in range(0, resamples, CHUNK)]
    jobs = [_Job(groups, by_id, s, n, targets, start, delta, constrained)
            for s, n in zip(np.random.SeedSequence(seed).spawn(len(counts)), counts)]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            replicates = [r for chunk in pool.map(_chunk, jobs) for r in chunk]
    else:
        replicates = [r for job in jobs for r in _chunk(job)]
    intervals, failed = {}, {}
    for approach, numbers in central.items():
        if numbers is None:
            continue
        intervals[approach], failed[approach] = _intervals(numbers, [r.get(approach) for r in replicates])
    return {"intervals": intervals, "failed": failed,
            "correlations": correlations([r.get("parametric") for r in replicates]) if central.get("parametric") else {}}
