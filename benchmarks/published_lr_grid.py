"""The learning-rate and batch laws on Step Law's published dense grid, against the published law.

benchmarks/published/steplaw-dense.csv (extract_steplaw.py says how) is analysed as `ffctl transfer --data` does:
each cell's joint optimum (ff_client.fit.jointlaw), then LR* = c N^a D^b at B* and B* = k D^p, with intervals from
--resamples resampled cells. steplaw.json holds the published exponents and their bootstrap's 95% intervals. Per
cell, the optimum is set beside Step Law's own optimal region: the runs within 0.25% of the cell's lowest loss
(their filter). The naive estimates, for contrast: the law through each cell's best grid run, and through the LR*
of each cell's best grid batch.
Usage: python benchmarks/published_lr_grid.py [--resamples 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from ff_client.fit.jointlaw import NEIGHBOURS
from ff_client.fit.lrgrid import analyze_grid, load_lr_grid
from ff_client.fit.lrlaw import parabola_min

HERE = Path(__file__).parent / "published"
REGION = 0.0025  # Step Law's filter: runs within 0.25% of a cell's lowest loss are its optimal region


def law(points: list[tuple[float, float, float]]) -> np.ndarray:
    """[ln c, a, b] of ln LR = ln c + a ln N + b ln D through (N, D, LR) points."""
    design = np.column_stack([np.ones(len(points)), np.log([p[0] for p in points]), np.log([p[1] for p in points])])
    return np.linalg.lstsq(design, np.log([p[2] for p in points]), rcond=None)[0]


def best_batch_lr(runs) -> float:
    """The naive joint optimum: the LR* (local parabola) of the grid batch with the lowest loss."""
    curves = {}
    for r in runs:
        if r.loss is not None:
            curves.setdefault(r.batch, []).append((r.lr, r.loss))
    optima = [parabola_min(sorted(c)) for c in curves.values() if len(c) >= 3]
    return math.exp(min(optima, key=lambda o: o[1])[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    published = json.loads((HERE / "steplaw.json").read_text())
    runs = load_lr_grid(HERE / "steplaw-dense.csv")
    joint = analyze_grid(runs, None, args.seed, args.resamples).joint
    print(f"{len(runs)} runs, {len(joint.cells)} cells, {sum(c.flag is not None for c in joint.cells)} flagged; "
          f"the valley's line through the best batch and {NEIGHBOURS} each side")
    print("| exponent | published [95%] | ours [95%] | error | published value in ours | ours in published |")
    print("|---|---|---|---|---|---|")
    for name, ours in (("a (LR*, of N)", joint.law.a), ("b (LR*, of D)", joint.law.b), ("p (B*, of D)",
                                                                                     joint.batch_law.p)):
        truth = published[name[0]]
        low, high = truth["interval"]
        print(f"| {name} | {truth['value']:+.4f} [{low:+.3f}, {high:+.3f}] | {ours.value:+.4f} "
              f"[{ours.low:+.3f}, {ours.high:+.3f}] | {ours.value - truth['value']:+.4f} | "
              f"{'yes' if ours.low <= truth['value'] <= ours.high else 'NO'} | "
              f"{'yes' if low <= ours.value <= high else 'NO'} |")
    for h in joint.law.holdout:
        print(f"hold-out N={h.n_params:.3g} D={h.tokens:.3g}: predicted {h.predicted.text()}, measured "
              f"{h.measured.value:.4g}, ratio {h.ratio:.3f}, within a grid step (x{math.exp(h.grid_step):.3g}): "
              f"{'yes' if h.within_step else 'NO'}")
    print("\n| N | D | LR* at B* | Step Law region's LR | in it | B* | region's batch | in it | flag |")
    print("|---|---|---|---|---|---|---|---|---|")
    naive_run, naive_batch, inside = [], [], 0
    for cell in joint.cells:
        mine = [r for r in runs if (r.n_params, r.tokens) == (cell.n_params, cell.tokens) and r.loss is not None]
        lowest = min(r.loss for r in mine)
        region = [r for r in mine if r.loss <= lowest * (1 + REGION)]
        lrs, batches = [r.lr for r in region], [r.batch for r in region]
        lr_in = min(lrs) <= cell.lr <= max(lrs)
        b_in = min(batches) <= cell.batch <= max(batches)
        inside += lr_in and b_in and cell.flag is None
        best = min(mine, key=lambda r: r.loss)
        if cell.flag is None:
            naive_run.append((cell.n_params, cell.tokens, best.lr))
            naive_batch.append((cell.n_params, cell.tokens, best_batch_lr(mine)))
        print(f"| {cell.n_params:.3g} | {cell.tokens:.3g} | {cell.lr:.4g} | {min(lrs):.3g} .. {max(lrs):.3g} | "
              f"{'yes' if lr_in else 'NO'} | {cell.batch:.0f} | {min(batches):g} .. {max(batches):g} | "
              f"{'yes' if b_in else 'NO'} | {cell.flag or '-'} |")
    good = sum(c.flag is None for c in joint.cells)
    print(f"\nbracketed cells whose LR* and B* both lie in Step Law's optimal region: {inside} of {good}")
    for label, points in (("best grid run", naive_run), ("LR* of the best grid batch", naive_batch)):
        _, a, b = law(points)
        print(f"naive, {label}: a {a:+.4f}, b {b:+.4f}")


if __name__ == "__main__":
    main()
