"""Is `ffctl suggest` worth following? Spend the same FLOPs three ways on a synthetic truth and compare the
interval of N_opt at a far target.

Truth: Hoffmann et al.'s fitted L(N, D) = 1.69 + 406.4/N^0.34 + 410.7/D^0.28 with 1% log-normal noise. Start:
a 2-budget sweep (1e18 and 3e18 FLOPs, 5 sizes each, centred on the true optimum, from a family of sizes a
factor 1.6 apart). Target: 100x the largest budget (3e20). Spend: what the common heuristic costs, doubling
the largest budget with 5 runs (3e19 FLOPs). Strategies: (1) the suggestions (`ff_client.fit.suggest`, the
parametric approach, candidates placed on the family's sizes nearest the fitted optimum), (2) doubling the
largest budget, (3) random budgets (log-uniform between C1/2 and what the rest of the spend buys, 5 sizes near the
fitted optimum shifted at random) while the spend lasts. The new runs' losses come from the truth. Reported over
seeds: the median width of the 95% interval of N_opt (high/low), the ratio suggestions / doubling, and how often
each interval covers the true N_opt. Target (issue 16): ratio <= 0.7, coverage >= 85%.
Usage: python benchmarks/suggest_value.py [--seeds 20] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from ff_client.fit import suggest as core  # noqa: E402
from ff_client.fit.approach import Settings  # noqa: E402
from ff_client.fit.approaches import APPROACHES  # noqa: E402
from ff_client.fit.approaches.parametric import fit_parametric  # noqa: E402
from ff_client.fit.points import Point  # noqa: E402
from synthetic import CHINCHILLA, optimum  # noqa: E402

START = (1e18, 3e18)
TARGET = 100 * START[-1]
NOISE = 0.01
FAMILY = [float(n) for n in np.geomspace(1e6, 1e10, 21)]  # sizes a factor 1.58 apart
PARAMETRIC = next(a for a in APPROACHES if a.name == "parametric")


def true_loss(n: float, d: float, truth=CHINCHILLA) -> float:
    return truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]


def trained(runs, rng) -> tuple[Point, ...]:
    """The runs (budget, N, D) with losses from the truth and the noise."""
    return tuple(Point(n, d, true_loss(n, d) * math.exp(NOISE * rng.standard_normal()), c, 6 * n * d,
                       f"c{c:.2g}-n{n:.3g}") for c, n, d in runs)


def start(rng) -> tuple[Point, ...]:
    runs = [(c, n, c / (6 * n)) for c in START for n in core.sizes_near(FAMILY, optimum(CHINCHILLA, c)[0], 5)]
    return trained(runs, rng)


def near_fitted(surface, budget: float, shift: int = 0) -> list[tuple[float, float, float]]:
    chosen = core.sizes_near(FAMILY, surface.predict(budget)["n_opt"], 5)
    i = FAMILY.index(chosen[0]) + shift
    i = min(max(i, 0), len(FAMILY) - 5)
    return [(budget, n, budget / (6 * n)) for n in FAMILY[i : i + 5]]


def one_seed(seed: int, resamples: int, scoring_resamples: int = 100,
             strategies: tuple[str, ...] = ("suggested", "doubling", "random")) -> dict[str, tuple[float, bool, float]]:
    """{strategy: (N_opt interval high/low, covers the truth, FLOPs spent)} for each of strategies, and "start"
    (the 2-budget start's interval, nothing spent)."""
    rng = np.random.default_rng(seed)
    settings = Settings(resamples=resamples, seed=seed, workers=1)
    points = start(rng)
    surface = fit_parametric(points)
    spend = 5 * 2 * START[-1]  # what doubling costs: five runs at twice the largest budget, 3e19 FLOPs
    before = core.width(points, PARAMETRIC, TARGET, settings)
    place = core.near_optimum(points, surface, FAMILY)
    scoring = Settings(resamples=scoring_resamples, seed=seed, workers=1)
    scored = [core.score(points, c, PARAMETRIC, surface, TARGET, scoring)
              for c in core.candidates(points, place, fewer=True)]
    chosen = core.choose(scored, before, spend, lambda c, picked: core.score(
        points, core.combined(c, picked), PARAMETRIC, surface, TARGET, scoring))
    plans = {
        "suggested": [run for s in chosen for run in s.candidate.points],
        "doubling": near_fitted(surface, 2 * START[-1]),
    }
    random_runs, used = [], 0.0
    while spend - used >= 5 * START[0] / 2:  # another budget of 5 runs still fits
        top = min(10 * START[-1], (spend - used) / 5)
        budget = float(math.exp(rng.uniform(math.log(START[0] / 2), math.log(top))))
        runs = near_fitted(surface, budget, int(rng.integers(-2, 3)))
        random_runs += runs
        used += sum(6 * n * d for _, n, d in runs)
    plans["random"] = random_runs
    truth = optimum(CHINCHILLA, TARGET)[0]
    out = {"start": (before.n_ratio if before.fitted else math.inf, before.covers(truth), 0.0)}
    for name in strategies:
        runs = plans[name]
        grown = points + trained(runs, np.random.default_rng(10_000 + seed))
        width = core.width(grown, PARAMETRIC, TARGET, settings)
        out[name] = (width.n_ratio if width.fitted else math.inf, width.covers(truth),
                     sum(6 * n * d for _, n, d in runs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    results = [one_seed(seed, args.bootstrap) for seed in range(args.seeds)]
    print("| strategy | median N_opt interval (high/low) | coverage | median FLOPs spent |")
    print("|---|---|---|---|")
    medians = {}
    for name in ("suggested", "doubling", "random"):
        widths = [r[name][0] for r in results]
        medians[name] = statistics.median(widths)
        coverage = sum(r[name][1] for r in results) / len(results)
        spent = statistics.median(r[name][2] for r in results)
        print(f"| {name} | {medians[name]:.3g} | {coverage:.0%} | {spent:.3g} |")
    print(f"suggested / doubling: {medians['suggested'] / medians['doubling']:.2f} (median widths, {args.seeds} seeds)")


if __name__ == "__main__":
    main()
