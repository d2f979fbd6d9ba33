"""Bootstrap intervals for every reported number, by resampling experiments.

Each resample draws, within every compute budget, as many experiments as the budget has, with
replacement (a stratified bootstrap: every isoFLOP curve keeps its size), and refits every approach that
reported numbers on the full data, each from its own warm start (the parametric surface from the
full-data optimum). Intervals are the 2.5th and 97.5th percentiles of the replicates. Resamples come in
fixed chunks, each with its own child of one SeedSequence, so the intervals depend on the seed and count
only, never on how many processes computed them.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ff_client.fit.approach import QUANTITIES, Approach, FitData, Settings
from ff_client.fit.estimate import MAX_FAILED_SHARE, Estimate, percentile_estimate
from ff_client.fit.points import Point
from ff_core.results import ResultRecord

CHUNK = 25


@dataclass(frozen=True)
class Numbers:
    """What one fit reports: its parameters, and its predictions at each target compute budget."""

    parameters: dict[str, float]
    predictions: dict[float, dict[str, float]]

    def finite(self) -> bool:
        values = [*self.parameters.values(), *(v for p in self.predictions.values() for v in p.values())]
        return all(math.isfinite(v) for v in values)


def numbers(approach: Approach, fit: Any, targets: tuple[float, ...]) -> Numbers | None:
    """The numbers of a fit, or None when there is no fit or it located nothing to report."""
    if fit is None:
        return None
    parameters = approach.parameters(fit)
    if parameters is None:
        return None
    predictions = {c: p for c in targets if (p := approach.predict(fit, c)) is not None}
    return Numbers(parameters, predictions)


def _guarded(compute, *args) -> Numbers | None:
    """compute(*args)'s result (a replicate's numbers, or a chunk's fits), or None when it breaks down
    numerically (a replicate counted as failed)."""
    try:
        with np.errstate(all="raise"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a poorly conditioned parabola: judged by its result
            return compute(*args)
    except (FloatingPointError, ZeroDivisionError, OverflowError, ValueError, np.linalg.LinAlgError):
        return None


@dataclass(frozen=True)
class _Job:
    groups: list[list[Point]]
    records: dict[str, ResultRecord]  # by experiment id, for the approaches that read loss curves
    central: tuple[tuple[Approach, Any], ...]  # each approach to refit, with its full-data fit
    seed: np.random.SeedSequence
    count: int
    targets: tuple[float, ...]
    settings: Settings


def _refits(approach: Approach, fit: Any, data: list[FitData], job: _Job) -> list[Numbers | None]:
    """One approach's numbers for each resample of a chunk: side by side where the approach can (refit_many),
    one by one where it cannot, or where one resample's numerical failure stopped the side-by-side fit."""
    many = getattr(approach, "refit_many", None)
    if many is not None:
        fits = _guarded(many, data, fit, job.settings)
        if fits is not None:
            return [_guarded(numbers, approach, f, job.targets) for f in fits]
    return [_guarded(lambda d: numbers(approach, approach.refit(d, fit, job.settings), job.targets), d) for d in data]


def _chunk(job: _Job) -> list[list[Numbers | None]]:
    """Each resample's numbers from every approach: [resample][approach]."""
    rng = np.random.default_rng(job.seed)
    samples = [[g[i] for g in job.groups for i in rng.integers(0, len(g), len(g))] for _ in range(job.count)]
    data = [FitData(tuple(s), tuple(job.records[p.label] for p in s if p.label in job.records)) for s in samples]
    by_approach = [_refits(approach, fit, data, job) for approach, fit in job.central]
    return [list(row) for row in zip(*by_approach)]


@dataclass(frozen=True)
class Intervals:
    """One approach's numbers as estimates with intervals, and what the bootstrap saw."""

    parameters: dict[str, Estimate]
    predictions: dict[float, dict[str, Estimate]]
    failed: int
    replicates: tuple[dict[str, float], ...]  # the good replicates' parameters


def intervals(central: Numbers, replicates: list[Numbers | None]) -> Intervals:
    """Percentile intervals for each number; a replicate whose fit failed is counted, not used. When more than
    MAX_FAILED_SHARE of them failed, the survivors are a biased sample: no interval at all."""
    good = [r for r in replicates if r is not None and r.finite()]
    failed = len(replicates) - len(good)
    if failed > MAX_FAILED_SHARE * len(replicates):
        good = []
    parameters = {k: percentile_estimate(v, [r.parameters[k] for r in good]) for k, v in central.parameters.items()}
    predictions = {c: {q: percentile_estimate(v[q], [r.predictions[c][q] for r in good]) for q in QUANTITIES}
                   for c, v in central.predictions.items()}
    return Intervals(parameters, predictions, failed, tuple(r.parameters for r in good))


def bootstrap(data: FitData, central: dict[str, tuple[Approach, Any, Numbers]], targets: tuple[float, ...],
              settings: Settings) -> dict[str, Intervals]:
    """Intervals per approach name; `central` holds each approach with its full-data fit and numbers."""
    by_budget: dict[float, list[Point]] = defaultdict(list)
    for p in data.points:
        by_budget[p.budget].append(p)
    groups = [by_budget[b] for b in sorted(by_budget)]
    by_id = {r.experiment: r for r in data.records}
    refit = tuple((approach, fit) for approach, fit, _ in central.values())
    counts = [min(CHUNK, settings.resamples - i) for i in range(0, settings.resamples, CHUNK)]
    jobs = [_Job(groups, by_id, refit, s, n, targets, settings)
            for s, n in zip(np.random.SeedSequence(settings.seed).spawn(len(counts)), counts)]
    workers = settings.workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            replicates = [r for chunk in pool.map(_chunk, jobs) for r in chunk]
    else:
        replicates = [r for job in jobs for r in _chunk(job)]
    return {name: intervals(numbers_, [r[i] for r in replicates])
            for i, (name, (_, _, numbers_)) in enumerate(central.items())}
