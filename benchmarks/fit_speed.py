"""Parametric fit speed: ours against a reference (a 4,500-start grid, scipy L-BFGS-B from every start).

On a 250-point synthetic isoFLOP dataset (Chinchilla's surface, 1% noise): wall time and objective of
our fit (medians of --repeats), of the reference (once; it is slow), and of --resamples bootstrap
resamples with all cores. Targets: our fit <= 2 s with an objective no worse than the reference's;
1,000 resamples <= 20 s.
Usage: python benchmarks/fit_speed.py [--reference-starts 4500] [--resamples 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic import isoflop_points  # noqa: E402

from ff_client.fit.approach import FitData, Settings  # noqa: E402
from ff_client.fit.approaches import isoflop, parametric  # noqa: E402
from ff_client.fit.approaches.parametric import _BOUNDS, _objective, fit_parametric  # noqa: E402
from ff_client.fit.bootstrap import bootstrap, numbers  # noqa: E402


def reference(points, starts: int) -> tuple[float, float]:
    """(seconds, best objective) of L-BFGS-B from every point of a start grid of about `starts` points."""
    grid = itertools.product(np.linspace(0, 25, 6), np.linspace(0, 25, 6), np.linspace(-1, 1, 5),
                             np.linspace(0, 2, 5), np.linspace(0, 2, 5))  # a, b, e, alpha, beta: 4,500
    data = (np.log([p.n_params for p in points]), np.log([p.tokens for p in points]), np.log([p.loss for p in points]))
    began, best = time.perf_counter(), np.inf
    for start in itertools.islice(grid, starts):
        result = minimize(_objective, np.array(start), args=(*data, 1e-3), jac=True, method="L-BFGS-B", bounds=_BOUNDS)
        best = min(best, result.fun)
    return time.perf_counter() - began, float(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-starts", type=int, default=4500)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    budgets = tuple(np.geomspace(1e18, 1e22, 10))
    points = isoflop_points(budgets=budgets, per_budget=25, span=30, noise=0.01, seed=0)  # 250 points
    times, fit = [], None
    for _ in range(args.repeats):
        began = time.perf_counter()
        fit = fit_parametric(points)
        times.append(time.perf_counter() - began)
    ours_s = statistics.median(times)
    began = time.perf_counter()
    data = FitData(tuple(points))
    central = {a.name: (a, f, numbers(a, f, ())) for a, f in ((isoflop.APPROACH, isoflop.fit_isoflop(points)),
                                                              (parametric.APPROACH, fit))}
    boot = bootstrap(data, central, (), Settings(resamples=args.resamples, seed=0))
    boot_s = time.perf_counter() - began
    ref_s, ref_obj = reference(points, args.reference_starts)
    print(f"{len(points)} points; objective = Huber(delta 1e-3) of log-loss residuals, summed")
    print(f"{'method':38} {'seconds':>9} {'objective':>12}")
    print(f"{'ours (grid + LM + polish), median':38} {ours_s:9.3f} {fit.objective:12.6g}")
    print(f"{f'reference ({args.reference_starts} starts x L-BFGS-B)':38} {ref_s:9.1f} {ref_obj:12.6g}")
    print(f"{f'bootstrap, {args.resamples} resamples':38} {boot_s:9.2f}")
    print(f"speed-up {ref_s / ours_s:.0f}x; objective ours/reference {fit.objective / ref_obj:.6f}; "
          f"failed resamples {boot['parametric'].failed}")


if __name__ == "__main__":
    main()
