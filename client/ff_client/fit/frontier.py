"""A sweep's measured compute-optimal frontier: each located budget's isoFLOP minimum, interpolated in log C.

Inside the budgets a sweep measured, its L_opt(C) needs no law: the per-budget minima (Approach 2's, see
ff_client.fit.approaches.isoflop) joined by straight lines in log-log space. Its uncertainty comes from a
stratified bootstrap of the experiments that re-locates each of those budgets' minima, seeded, so two
sweeps' replicates can be paired. Beyond the measured budgets only a fitted law can say anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ff_client.fit.approaches.isoflop import IsoflopFit, by_budget, curve_tolerance, fit_curve

RANGE_SLACK = 1e-9  # relative: a budget at the range's end is inside it


@dataclass(frozen=True)
class Frontier:
    compute: tuple[float, ...]  # the located budgets, ascending
    loss: tuple[float, ...]     # their L_opt

    def covers(self, compute: float) -> bool:
        return self.compute[0] * (1 - RANGE_SLACK) <= compute <= self.compute[-1] * (1 + RANGE_SLACK)

    def loss_at(self, compute: float) -> float:
        return math.exp(float(np.interp(math.log(compute), np.log(self.compute), np.log(self.loss))))

    def compute_for(self, loss: float) -> float | None:
        """The least measured compute at which the frontier reaches `loss` (interpolated), or None when it never
        does within the budgets measured."""
        log_c, log_l, target = np.log(self.compute), np.log(self.loss), math.log(loss)
        if log_l[0] <= target:
            return self.compute[0] if math.isclose(log_l[0], target, abs_tol=1e-12) else None
        for i in range(len(log_c) - 1):
            if log_l[i + 1] <= target <= log_l[i]:  # the first segment that comes down to the target
                if target in (log_l[i], log_l[i + 1]):  # a measured budget itself, exactly
                    return self.compute[i] if target == log_l[i] else self.compute[i + 1]
                share = (log_l[i] - target) / (log_l[i] - log_l[i + 1])
                return math.exp(log_c[i] + share * (log_c[i + 1] - log_c[i]))
        return None


def measured_frontier(fit: IsoflopFit | None) -> Frontier | None:
    """The frontier of a sweep's located minima (two or more), or None."""
    used = fit.used() if fit is not None else []
    if len(used) < 2:
        return None
    return Frontier(tuple(c.budget for c in used), tuple(c.l_opt for c in used))


def frontier_replicates(points, frontier: Frontier, resamples: int, seed: int) -> list[Frontier]:
    """Bootstrap replicates of a frontier: within each of its budgets, as many experiments as it has, drawn with
    replacement, and that budget's minimum re-located."""
    groups = [g for b, g in by_budget(points).items() if b in frontier.compute]
    tolerance = curve_tolerance(points)
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(resamples):
        samples = [[g[i] for i in rng.integers(0, len(g), len(g))] for g in groups]
        replicates.append(Frontier(frontier.compute, tuple(fit_curve(s[0].budget, s, tolerance, located=True).l_opt
                                                           for s in samples)))
    return replicates
