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
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from ff_client.isoflop import IsoflopFit, fit_isoflop
from ff_client.parametric import ParametricFit, fit_parametric
from ff_client.points import Point

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
    for c in targets:
        stats.update({f"{k}@{c:.6g}": v for k, v in fit.predict(c).items()})
    return stats


def parametric_stats(fit: ParametricFit | None, targets: tuple[float, ...]) -> dict[str, float] | None:
    if fit is None:
        return None
    stats = {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a, "b": fit.b}
    for c in targets:
        stats.update({f"{k}@{c:.6g}": v for k, v in fit.predict(c).items()})
    return stats


def _resample(groups: list[list[Point]], rng: np.random.Generator) -> list[Point]:
    return [group[i] for group in groups for i in rng.integers(0, len(group), len(group))]


def _guarded(fit, stats, sample, targets, **kwargs) -> dict | None:
    """A replicate's numbers, or None when its fit breaks down numerically (it is counted as failed)."""
    try:
        with np.errstate(all="raise"):
            return stats(fit(sample, **kwargs), targets)
    except (FloatingPointError, ZeroDivisionError, OverflowError, ValueError, np.linalg.LinAlgError):
        return None


def _chunk(args) -> tuple[list, list]:
    groups, seed, count, targets, start = args
    rng = np.random.default_rng(seed)
    iso, par = [], []
    for _ in range(count):
        sample = _resample(groups, rng)
        iso.append(_guarded(fit_isoflop, isoflop_stats, sample, targets))
        par.append(_guarded(fit_parametric, parametric_stats, sample, targets, start=start) if start else None)
    return iso, par


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


def bootstrap(points, isoflop: IsoflopFit, parametric: ParametricFit | None, targets: tuple[float, ...],
              resamples: int, seed: int = 0, workers: int | None = None) -> dict:
    """{"isoflop": {name: Interval}, "parametric": {...}, "failed": {approach: count}}."""
    by_budget: dict[float, list[Point]] = defaultdict(list)
    for p in points:
        by_budget[p.budget].append(p)
    groups = [by_budget[b] for b in sorted(by_budget)]
    start = parametric.theta if parametric is not None else None
    counts = [min(CHUNK, resamples - i) for i in range(0, resamples, CHUNK)]
    seeds = np.random.SeedSequence(seed).spawn(len(counts))
    jobs = [(groups, s, n, targets, start) for s, n in zip(seeds, counts)]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            results = list(pool.map(_chunk, jobs))
    else:
        results = [_chunk(job) for job in jobs]
    iso = [r for chunk in results for r in chunk[0]]
    par = [r for chunk in results for r in chunk[1]]
    iso_intervals, iso_failed = _intervals(isoflop_stats(isoflop, targets), iso)
    par_intervals, par_failed = _intervals(parametric_stats(parametric, targets), par)
    return {"isoflop": iso_intervals, "parametric": par_intervals,
            "failed": {"isoflop": iso_failed, "parametric": par_failed if parametric else 0}}
