"""A tiny GPT pilot's learning-rate law, on the CPU: does it predict a held-out width's best learning rate?

`ffctl transfer` with several token counts on the demo's data (examples/tiny.yaml: the built-in GPT on the
synthetic corpus), in one of four designs: the law LR* = c N^a D^b, and the law in N at each D/N, is fitted
without the widest size and predicts its LR* at each D; the hold-out says whether each prediction lands within one
step of the grid.

  one-layer  standard parameterization, widths 8, 12, 16, 24 (1 layer), D/N 40 and 160, 11 rates x1.41 apart,
             the demo's batch (512 tokens); about 10 minutes on 2 cores
  mup        muP (base width 32), widths 16, 24, 32, 48 (2 layers), D/N 20 and 60, 7 rates x1.41 apart, batches
             of 2048 tokens, warmup 10%; about 16 minutes
  two-layer  standard parameterization, widths 16, 32, 64, 128 (2 layers), D/N 2.5 and 5, 7 rates x2 apart, the
             demo's batch; about 30 minutes
  long       standard parameterization, widths 24, 32, 48, 64 (2 layers), D/N 10 and 40, 7 rates x2 apart, the
             demo's batch: a narrower width range trained longer, so that the small widths leave the plateau; about
             28 minutes. Prints the law at each D/N's hold-out too, and the separability check without the widest size
  wide       the long design with width 16 and D/N 20 added: widths 16, 24, 32, 48, 64 (2 layers), D/N 10, 20, 40;
             3 D/N test whether N's exponent is linear in ln(D/N), as the sloped law says
Usage: python benchmarks/lr_pilot.py [--design one-layer|mup|two-layer|long|wide] [--workers 2]
       [--store /tmp/ff-lr-pilot]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

from ff_client import api
from ff_client.fit.lrlaw import fit_lr_laws

ROOT = Path(__file__).resolve().parents[1]


def _rates(centre: float, factor: float, low: int, high: int) -> str:
    return ",".join(f"{centre * factor ** k:.4g}" for k in range(low, high + 1))


# design: (widths, layers, D/N values, learning rates, training fields, model args)
DESIGNS = {
    "one-layer": ((8, 12, 16, 24), 1, [40.0, 160.0], _rates(3e-3, 2 ** 0.5, -2, 8), {}, {}),
    "mup": ((16, 24, 32, 48), 2, [20.0, 60.0], "0.0053,0.0075,0.0106,0.015,0.0212,0.03,0.0424",  # x1.41, rounded
            {"globalBatchTokens": 2048, "warmupFraction": 0.1, "evalTokens": 65536},
            {"parameterization": "mup", "base_width": 32}),
    "two-layer": ((16, 32, 64, 128), 2, [2.5, 5.0], _rates(6e-3, 2.0, -3, 3), {}, {}),
    "long": ((24, 32, 48, 64), 2, [10.0, 40.0], _rates(6e-3, 2.0, -3, 3), {}, {}),
    "wide": ((16, 24, 32, 48, 64), 2, [10.0, 20.0, 40.0], _rates(6e-3, 2.0, -3, 3), {}, {}),
}


def pilot_sweep(design: str, folder: Path) -> tuple[Path, list[str]]:
    """The demo's sweep file with the design's sizes, model and training fields, and the sizes' names."""
    widths, layers, _, _, training, model = DESIGNS[design]
    manifest = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    manifest["metadata"]["name"] = f"lr-pilot-{design}"
    spec = manifest["spec"]
    names = [f"d{w}-l{layers}" for w in widths]
    spec["sizes"] = [{"name": n, "knobs": {"d_model": w, "n_layers": layers, "n_heads": 2}}
                     for n, w in zip(names, widths)]
    spec["tokensPerParam"] = {"min": 1, "max": 2000}
    spec["model"]["args"] |= model
    spec["training"] |= training
    path = folder / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path, names


def tokens_of(found):
    """(D/N, batch, N) -> that size's D: the pilot's own."""
    exact = {(key, batch, s.n_params): key * s.n_params for key, batch, r in found.pilots for s in r.sizes}
    return lambda key, batch, n: exact[(key, batch, n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", choices=sorted(DESIGNS), default="one-layer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store", default="/tmp/ff-lr-pilot")
    args = parser.parse_args()
    began = time.perf_counter()
    _, _, ratios, grid, _, _ = DESIGNS[args.design]
    with tempfile.TemporaryDirectory() as folder:
        sweep, sizes = pilot_sweep(args.design, Path(folder))
        outcome = api.transfer(str(sweep), sizes, grid, ratios, f"file://{args.store}", args.workers,
                               f"/tmp/ff-lr-pilot-plots-{args.design}", say=print, warn=print)
    found = outcome.result
    print(found.text())
    for law in found.laws:
        for h in law.holdout:
            print(f"held-out N={h.n_params:.3g} D={h.tokens:.3g}: predicted {h.predicted.value:.4g}, measured "
                  f"{h.measured.value:.4g}, ratio {h.ratio:.3f}, grid factor {math.exp(h.grid_step):.3f}: "
                  f"{'within' if h.within_step else 'OUTSIDE'} one step")
    for law in found.laws:
        for k in law.per_key:
            if k.holdout:
                h = k.holdout
                where = "within" if h.within_step else "OUTSIDE"
                print(f"held-out N={h.n_params:.3g} at D/N {k.key:g}, its D/N's own law: predicted "
                      f"{h.predicted.value:.4g}, ratio {h.ratio:.3f}: {where} one step")
    # would the separability check have said so without the held-out size?
    largest = max(s.n_params for _, _, r in found.pilots for s in r.sizes)
    smaller = tuple((key, batch, replace(r, sizes=tuple(s for s in r.sizes if s.n_params < largest)))
                    for key, batch, r in found.pilots)
    for law in fit_lr_laws(smaller, tokens_of(found), "D/N"):
        print(f"without the held-out size: separable {law.separable}, linear in ln(D/N) {law.linear}; exponent "
              "of N per D/N (the law's): " + ", ".join(f"{k.key:g}: {k.a.text()} ({law.exponent_at(k.key):+.3f})"
                                                       for k in law.per_key))
    print(f"{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
