"""Coverage of the nominal 95% bootstrap intervals of Approach 2 (and its parabola cross-check) and Approach 3.

A known law L(N, D) = E + A/N^alpha + B/D^beta; isoFLOP designs like the published ones (5 budgets a decade
apart, 6-15 sizes per budget, centred on the true optimum or off-centre by up to 2x, spans 8x-300x,
0.3-1% multiplicative noise), on Chinchilla's surface and on a data-hungry one whose isoFLOP curves are
more skewed. Per design, --trials independent sweeps, each with --resamples stratified bootstrap
resamples; a row gives, per interval, the share of trials whose interval held the truth, the median
error of the central value and the trials with no interval. Target: >= 90% for every interval.
Usage: python benchmarks/isoflop_coverage.py [--trials 40] [--resamples 200] [--parametric-trials 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import CHINCHILLA, optimum  # noqa: E402

from ff_client.fit.approach import FitData, Settings  # noqa: E402
from ff_client.fit.approaches import isoflop, parabola, parametric  # noqa: E402
from ff_client.fit.bootstrap import bootstrap, numbers  # noqa: E402
from ff_client.fit.points import Point  # noqa: E402

DATA_HUNGRY = {"E": 0.8, "A": 50.0, "B": 900.0, "alpha": 0.3, "beta": 0.45}
BUDGETS = (1e18, 1e19, 1e20, 1e21, 1e22)
# (label, truth, sizes per budget, span, offset of the sizes' centre from the optimum, noise)
DESIGNS = [
    ("chinchilla, centred, 9 x 30x, 0.3%", CHINCHILLA, 9, 30, 1.0, 0.003),
    ("chinchilla, off-centre 1.7x, 7 x 30x, 0.3%", CHINCHILLA, 7, 30, 1.7, 0.003),
    ("chinchilla, off-centre 2x, 15 x 300x, 0.5%", CHINCHILLA, 15, 300, 2.0, 0.005),
    ("chinchilla, centred, 6 x 8x, 1%", CHINCHILLA, 6, 8, 1.0, 0.01),
    ("data-hungry, off-centre 1.5x, 9 x 100x, 0.3%", DATA_HUNGRY, 9, 100, 1.5, 0.003),
    ("data-hungry, centred, 12 x 50x, 1%", DATA_HUNGRY, 12, 50, 1.0, 0.01),
]


def sweep(truth: dict, per_budget: int, span: float, offset: float, noise: float, seed: int) -> list[Point]:
    rng, points = np.random.default_rng(seed), []
    for c in BUDGETS:
        n_opt, _ = optimum(truth, c)
        for n in n_opt * offset * np.geomspace(1 / np.sqrt(span), np.sqrt(span), per_budget):
            d = c / (6 * n)
            loss = truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]
            points.append(Point(float(n), float(d), float(loss * np.exp(noise * rng.standard_normal())), c, c))
    return points


def truths(truth: dict) -> dict[tuple[str, str], float]:
    a = truth["beta"] / (truth["alpha"] + truth["beta"])
    found = {(name, "a"): a for name in ("isoflop", "parabola", "parametric")}  # b = 1 - a: the same coverage
    return found | {("parametric", k): truth[k] for k in ("alpha", "beta", "E")}


def trial(points, approaches, resamples: int, seed: int) -> dict:
    data = FitData(tuple(points))
    central = {}
    for a in approaches:
        fit = a.fit(data, Settings())
        found = numbers(a, fit, ())
        if found is not None:
            central[a.name] = (a, fit, found)
    return bootstrap(data, central, (), Settings(resamples=resamples, seed=seed)) if central else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--parametric-trials", type=int, default=20, help="Approach 3's fits are slower")
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    print("| design | interval | coverage | median error | no interval |")
    print("|---|---|---|---|---|")
    for label, truth, per_budget, span, offset, noise in DESIGNS:
        held, errors, missing, seen = {}, {}, {}, {}
        for t in range(args.trials):
            points = sweep(truth, per_budget, span, offset, noise, seed=1000 + t)
            approaches = [isoflop.APPROACH, parabola.APPROACH]
            if t < args.parametric_trials:
                approaches.append(parametric.APPROACH)
            spread = trial(points, approaches, args.resamples, seed=t)
            for (name, parameter), value in truths(truth).items():
                if name not in {a.name for a in approaches}:
                    continue
                key = (name, parameter)
                seen[key] = seen.get(key, 0) + 1
                estimate = spread[name].parameters.get(parameter) if name in spread else None
                if estimate is None or estimate.low is None:
                    missing[key] = missing.get(key, 0) + 1
                    continue
                held[key] = held.get(key, 0) + (estimate.low <= value <= estimate.high)
                errors.setdefault(key, []).append(estimate.value - value)
        for key in seen:
            answered = seen[key] - missing.get(key, 0)
            coverage = f"{held.get(key, 0) / answered:.0%} of {answered}" if answered else "-"
            error = f"{np.median(errors[key]):+.4f}" if key in errors else "-"
            print(f"| {label} | {key[0]} {key[1]} | {coverage} | {error} | {missing.get(key, 0)} |")


if __name__ == "__main__":
    main()
