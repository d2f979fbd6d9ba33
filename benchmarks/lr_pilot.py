"""A tiny GPT pilot's learning-rate law, on the CPU: does it predict a held-out width's best learning rate?

`ffctl transfer` on the demo's sweep (examples/tiny.yaml: the built-in GPT, standard parameterization, on the
synthetic corpus) with 4 widths of one layer x 2 token counts (D/N 40 and 160) x learning rates a factor 2^0.5
apart: the law LR* = c N^a D^b is fitted without the widest size and predicts its LR* at each D; the hold-out says
whether each prediction lands within one step of the grid. Trains about 100 small runs (minutes on 2 cores).
Usage: python benchmarks/lr_pilot.py [--workers 2] [--store /tmp/ff-lr-pilot]
"""

from __future__ import annotations

import argparse
import math
import time

from ff_client import api

SIZES = ["d8-l1", "d12-l1", "d16-l1", "d24-l1"]
GRID = ",".join(f"{3e-3 * 2 ** (k / 2):.4g}" for k in range(-2, 9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store", default="/tmp/ff-lr-pilot")
    args = parser.parse_args()
    began = time.perf_counter()
    outcome = api.transfer("examples/tiny.yaml", SIZES, GRID, [40.0, 160.0], f"file://{args.store}", args.workers,
                           "/tmp/ff-lr-pilot-plots", say=print, warn=print)
    found = outcome.result
    print(found.summary())
    for law in found.laws:
        print(law.text())
        for h in law.holdout:
            print(f"held-out N={h.n_params:.3g} D={h.tokens:.3g}: predicted {h.predicted.value:.4g}, measured "
                  f"{h.measured.value:.4g}, ratio {h.ratio:.3f}, grid factor {math.exp(h.grid_step):.3f}: "
                  f"{'within' if h.within_step else 'OUTSIDE'} one step")
    print(f"{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
