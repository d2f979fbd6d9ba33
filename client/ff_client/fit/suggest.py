"""Which runs to add next: candidate additions to a sweep, each scored by how much it is expected to narrow the
interval of N_opt at a target compute, per FLOP spent.

A candidate is a set of new (N, D) points: a new budget (above the largest, or between two), or more points
per budget. Its value is estimated by simulation: its losses are drawn from the current parametric surface
L(N, D) with the sweep's own noise (ff_client.fit.noise), added to the data, and the chosen approach is fitted
and bootstrapped again; the expected interval is the median over the draws. Without a spending limit the
best addition is the one that narrows most per FLOP; within one, additions are chosen one after another,
each the affordable one whose expected interval, on top of those already chosen, is narrowest.
`suggest` does all of it and returns a Suggestion (its text rows and its JSON). Pure: no store, no click;
`ffctl suggest` (cli/suggest.py) is its edge.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from ff_client.fit.approach import Approach, FitData, Settings
from ff_client.fit.bootstrap import bootstrap, numbers
from ff_client.fit.estimate import LEVEL
from ff_client.fit.noise import sweep_noise
from ff_client.fit.points import Point
from ff_core.errors import FlopsFitError
from ff_core.flops import gpu_hours, training_flops

SIMULATIONS = 5  # noise draws per candidate


@dataclass(frozen=True)
class Width:
    """The interval at the target: N_opt's as a ratio high / low, L_opt's as high - low (None: not fitted)."""

    n_ratio: float | None
    l_range: float | None
    n_opt: float | None = None
    n_interval: tuple[float, float] | None = None

    @property
    def fitted(self) -> bool:
        return self.n_ratio is not None and math.isfinite(self.n_ratio)

    def covers(self, n_opt: float) -> bool:
        return self.n_interval is not None and self.n_interval[0] <= n_opt <= self.n_interval[1]


@dataclass(frozen=True)
class Candidate:
    name: str
    points: tuple[tuple[float, float, float], ...]  # (budget, N, D) of each new run
    budgets: tuple[float, ...] = ()  # what a grown sweep adds to spec.budgets
    points_per_budget: int | None = None  # or the new spec.pointsPerBudget

    @property
    def flops(self) -> float:
        return sum(training_flops(n, d) for _, n, d in self.points)


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    width: Width

    def gain(self, before: Width) -> float:
        """Narrowing of ln(N_opt's interval ratio) per FLOP (0 when it does not narrow it)."""
        if not (before.fitted and self.width.fitted):
            return 0.0
        return max(0.0, math.log(before.n_ratio) - math.log(self.width.n_ratio)) / self.candidate.flops


def width(points: tuple[Point, ...], approach: Approach, target: float, settings: Settings) -> Width:
    """The bootstrap interval of N_opt and L_opt at `target` from these points with this approach."""
    data = FitData(points)
    fit = approach.fit(data, settings)
    central = numbers(approach, fit, (target,))
    if central is None or target not in central.predictions:
        return Width(None, None)
    spread = bootstrap(data, {approach.name: (approach, fit, central)}, (target,), settings)[approach.name]
    n, loss = spread.predictions[target]["n_opt"], spread.predictions[target]["l_opt"]
    if n.low is None or loss.low is None or n.low <= 0:
        return Width(None, None, n.value)
    return Width(n.high / n.low, loss.high - loss.low, n.value, (n.low, n.high))


def sizes_near(sizes: list[float], n_opt: float, count: int) -> list[float]:
    """The `count` consecutive sizes (ascending) whose middle is closest to n_opt in log N."""
    sizes = sorted(sizes)
    if len(sizes) <= count:
        return sizes
    start = min(range(len(sizes) - count + 1), key=lambda i: abs(math.log(sizes[i + count // 2] / n_opt)))
    return sizes[start : start + count]


def near_optimum(points: tuple[Point, ...], surface, sizes: list[float] | None = None):
    """Where new runs go without a sweep file: at a new budget, as many sizes as the sweep puts in a budget,
    those closest to the surface's N_opt there; with more points per budget, one size more on each side of
    every budget. `sizes` defaults to the sizes the sweep trained. Returns place(budgets, points_per_budget)."""
    per_budget = Counter(p.budget for p in points).most_common(1)[0][1]
    sizes = sorted(set(sizes or [p.n_params for p in points]))
    ratio = training_flops(1, 1)

    def place(budgets: tuple[float, ...], points_per_budget: int | None, count: int | None = None
              ) -> tuple[tuple[float, float, float], ...]:
        out = [(c, n, c / (ratio * n)) for c in budgets
               for n in sizes_near(sizes, surface.predict(c)["n_opt"], count or per_budget)]
        if points_per_budget:
            for b in sorted({p.budget for p in points}):
                trained = sorted(p.n_params for p in points if p.budget == b)
                out += [(b, n, b / (ratio * n)) for n in [m for m in sizes if m < trained[0]][-1:]
                        + [m for m in sizes if m > trained[-1]][:1]]
        return tuple(out)

    return place


def candidates(points: tuple[Point, ...], place, fewer: bool = False) -> list[Candidate]:
    """New budgets above the largest (x1.5, x2, x4, x10), below the smallest (/2, /4) and between neighbouring
    ones, and two more points per budget; `place(budgets, points_per_budget[, count])` says which runs each adds
    (near_optimum, or a sweep's plan). With `fewer` (placement near the optimum only: a sweep's plan puts
    pointsPerBudget runs in every budget), also new budgets x2 to x10 with 3 runs each: fewer points further out."""
    budgets = sorted({p.budget for p in points})
    per_budget = Counter(p.budget for p in points).most_common(1)[0][1]
    out = [Candidate(f"budget {c:.3g} (x{c / budgets[-1]:g} the largest)", place((c,), None), budgets=(c,))
           for c in (budgets[-1] * k for k in (1.5, 2, 4, 10))]
    out += [Candidate(f"budget {c:.3g} (/{budgets[0] / c:g} the smallest)", place((c,), None), budgets=(c,))
            for c in (budgets[0] / k for k in (2, 4))]
    if fewer and per_budget > 3:
        out += [Candidate(f"budget {c:.3g} (x{c / budgets[-1]:g} the largest, 3 runs)", place((c,), None, 3),
                          budgets=(c,)) for c in (budgets[-1] * k for k in (2, 3, 4, 6, 10))]
    for low, high in zip(budgets, budgets[1:]):
        c = math.sqrt(low * high)
        out.append(Candidate(f"budget {c:.3g} (between {low:.3g} and {high:.3g})", place((c,), None), budgets=(c,)))
    out.append(Candidate(f"pointsPerBudget {per_budget} -> {per_budget + 2}", place((), per_budget + 2),
                         points_per_budget=per_budget + 2))
    return [c for c in out if c.points]


def simulate(points: tuple[Point, ...], candidate: Candidate, surface, sigma: float, rng: np.random.Generator
             ) -> tuple[Point, ...]:
    """The points plus the candidate's runs, their losses drawn from the surface with log-normal noise."""
    new = tuple(Point(n, d, float(surface.loss(n, d)) * math.exp(rng.normal(0.0, sigma)), budget,
                      training_flops(n, d), f"simulated {candidate.name}") for budget, n, d in candidate.points)
    return points + new


def score(points: tuple[Point, ...], candidate: Candidate, approach: Approach, surface, target: float,
          settings: Settings, simulations: int = SIMULATIONS) -> Scored:
    """The expected interval after adding the candidate: the median over noise draws."""
    sigma = max(sweep_noise(points), 1e-4)
    rng = np.random.default_rng(settings.seed)
    draws = [width(simulate(points, candidate, surface, sigma, rng), approach, target,
                   replace(settings, seed=settings.seed + i)) for i in range(simulations)]
    fitted = [w for w in draws if w.fitted]
    if len(fitted) <= simulations // 2:
        return Scored(candidate, Width(None, None))
    return Scored(candidate, Width(float(np.median([w.n_ratio for w in fitted])),
                                  float(np.median([w.l_range for w in fitted])),
                                  float(np.median([w.n_opt for w in fitted]))))


def choose(scored: list[Scored], before: Width, spend: float | None, rescore=None) -> list[Scored]:
    """Without a spend: the single candidate that narrows N_opt's interval most per FLOP. Within `spend` FLOPs:
    sequentially, the affordable candidate whose expected interval (on top of those already chosen, scored by
    `rescore(candidate)` when given) is narrowest, while the interval still narrows."""
    ranked = sorted((s for s in scored if s.gain(before) > 0), key=lambda s: -s.gain(before))
    if spend is None:
        return ranked[:1]
    chosen: list[Scored] = []
    current, pool = before, [s for s in scored if s.width.fitted]
    while True:
        used = sum(s.candidate.flops for s in chosen)
        affordable = [s for s in pool if s not in chosen and used + s.candidate.flops <= spend]
        options = [(s, rescore(s.candidate, chosen) if chosen and rescore is not None else s) for s in affordable]
        options = [(s, w) for s, w in options if w.width.fitted and w.width.n_ratio < current.n_ratio]
        if not options:
            return chosen
        base, best = min(options, key=lambda option: option[1].width.n_ratio)
        chosen.append(base)
        current = best.width


def combined(candidate: Candidate, chosen: list[Scored]) -> Candidate:
    """The candidate's runs together with those already chosen, to score what adding it would do next."""
    return Candidate(candidate.name, tuple(run for s in chosen for run in s.candidate.points) + candidate.points,
                     candidate.budgets, candidate.points_per_budget)


@dataclass(frozen=True)
class Suggestion:
    """What `suggest` found: the interval now, every candidate scored (best narrowing per FLOP first), the
    additions chosen (none when the interval already meets target_width: `sufficient`)."""

    target: float
    approach: str
    before: Width
    scored: tuple[Scored, ...] = ()
    chosen: tuple[Scored, ...] = ()
    target_width: float | None = None

    @property
    def sufficient(self) -> bool:
        return self.target_width is not None and self.before.n_ratio <= self.target_width

    @property
    def reaches_width(self) -> bool:
        return self.target_width is None or any(s.width.n_ratio <= self.target_width for s in self.chosen)

    def now(self) -> str:
        """The interval the sweep gives today, in one line."""
        b = self.before
        return (f"now: N_opt at C={self.target:.3g} is {b.n_opt:.3g}, its {LEVEL:.0%} interval a factor "
                f"{b.n_ratio:.3g} wide (high/low); L_opt's {b.l_range:.3g} wide")

    def rows(self, gpu_flops: float, mfu: float) -> list[tuple[str, ...]]:
        """The candidates' table, its header first."""
        before = self.before
        rows = [("candidate", "runs", "FLOPs", "GPU-hours", "N_opt interval (x)", "L_opt interval", "narrowing/EFLOP")]
        for s in self.scored:
            w = s.width
            rows.append((s.candidate.name, str(len(s.candidate.points)), f"{s.candidate.flops:.3g}",
                         f"{gpu_hours(s.candidate.flops, gpu_flops, mfu):.3g}",
                         f"{before.n_ratio:.3g} -> {w.n_ratio:.3g}" if w.fitted else "not fitted",
                         f"{before.l_range:.3g} -> {w.l_range:.3g}" if w.fitted else "-",
                         f"{s.gain(before) * 1e18:.3g}"))
        return rows

    def to_json(self, gpu_flops: float, mfu: float) -> dict:
        def candidate(s: Scored) -> dict:
            return {"name": s.candidate.name, "runs": [list(run) for run in s.candidate.points],
                    "flops": s.candidate.flops, "gpu_hours": gpu_hours(s.candidate.flops, gpu_flops, mfu),
                    "budgets": list(s.candidate.budgets), "points_per_budget": s.candidate.points_per_budget,
                    "n_ratio": s.width.n_ratio if s.width.fitted else None,
                    "l_range": s.width.l_range if s.width.fitted else None,
                    "narrowing_per_eflop": s.gain(self.before) * 1e18}

        return {"target_flops": self.target, "approach": self.approach,
                "now": {"n_opt": self.before.n_opt, "n_ratio": self.before.n_ratio, "l_range": self.before.l_range},
                "target_width": self.target_width, "sufficient": self.sufficient,
                "candidates": [candidate(s) for s in self.scored],
                "suggested": [s.candidate.name for s in self.chosen],
                "suggested_flops": sum(s.candidate.flops for s in self.chosen)}


def suggest(points: tuple[Point, ...], target: float, approach: Approach, settings: Settings,
            spend: float | None = None, target_width: float | None = None, place=None) -> Suggestion:
    """Score every candidate addition and choose (within `spend` FLOPs, or the single best); `place` says
    which runs a candidate adds (a sweep's planner; default: near the surface's optimum, with the fewer-runs
    candidates too). Raises FlopsFitError when there is no surface to simulate from or no interval to narrow."""
    from ff_client.fit.approaches.parametric import fit_parametric

    surface = fit_parametric(points)
    if surface is None:
        raise FlopsFitError("the parametric surface L(N, D) could not be fitted: nothing to simulate new runs from")
    before = width(points, approach, target, settings)
    if not before.fitted:
        raise FlopsFitError(f"approach {approach.name} gives no interval of N_opt at C={target:.3g} from these "
                            "points; try --approach parametric, or add budgets first")
    found = Suggestion(target, approach.name, before, target_width=target_width)
    if found.sufficient:
        return found
    fewer = place is None
    place = place or near_optimum(points, surface)
    scored = [score(points, c, approach, surface, target, settings) for c in candidates(points, place, fewer=fewer)]
    chosen = choose(scored, before, spend, lambda c, picked: score(
        points, combined(c, picked), approach, surface, target, settings))
    return replace(found, scored=tuple(sorted(scored, key=lambda s: -s.gain(before))), chosen=tuple(chosen))
