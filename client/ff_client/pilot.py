"""The transfer pilot of a sweep (issue 13): a grid of learning rates x a few of its sizes at a small fixed D/N;
with several batch sizes and token counts (issue 29), the pilot of the learning-rate and batch laws.

One ordinary sweep per learning rate (and batch size, and D/N: each is part of every experiment's recipe or
point), each with one budget per chosen size (the budget that gives that size D = R N) and, through a narrow D/N
window, only that size at it, all in one store folder, `<name>-transfer`. So the pilot runs with `ffctl run` or
`ffctl submit` like any sweep (packed where the sweep's execution packs), its ids are stable, and a rerun trains
nothing twice. Pure: a resolved sweep in, manifests out.
"""

from __future__ import annotations

import copy
import math

from ff_core.errors import SpecError
from ff_core.flops import flops_per_token
from ff_core.spec import ScalingSweep, SizeEntry, parse_sweep

LR_STEPS = (-3, -2, -1, 0, 1, 2, 3)  # the default grid: the sweep's learning rate x 2^k


def pilot_folder(sweep_name: str) -> str:
    """The store folder of a sweep's transfer pilot: beside the sweep's own (`ffctl analyze` looks there)."""
    return f"{sweep_name}-transfer"[:40]


def pilot_sizes(sweep: ScalingSweep, names: list[str] | None = None) -> list[SizeEntry]:
    """The named sizes, or the smallest, the middle and the largest of the sweep's family."""
    family = sorted(sweep.spec.sizes, key=lambda s: s.n_params)
    if names:
        known = {s.name: s for s in family}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SpecError(f"--sizes: {', '.join(unknown)} not in the sweep's sizes ({', '.join(known)})")
        return sorted((known[n] for n in names), key=lambda s: s.n_params)
    return [family[0], family[len(family) // 2], family[-1]] if len(family) > 2 else family


def default_grid(sweep: ScalingSweep) -> list[float]:
    rate = sweep.spec.training.learning_rate
    if not isinstance(rate, float):
        raise SpecError("the sweep's learningRate is a law, so there is no one rate to centre the pilot's grid on: "
                        "give the grid with --lr-grid")
    return [rate * 2.0**k for k in LR_STEPS]


def pilot_sweeps(sweep: ScalingSweep, sizes: list[SizeEntry], grid: list[float],
                 tokens_per_param: float | list[float], batches: list[int] | None = None) -> list[ScalingSweep]:
    """One sweep per learning rate (x batch size x D/N when several are given), named <name>-lr<k>[-b<j>][-r<i>],
    sharing the store folder <name>-transfer. `batches` are global batches in tokens [default: the sweep's]."""
    ratios = sorted(tokens_per_param if isinstance(tokens_per_param, list) else [tokens_per_param])
    if len(sizes) < 2 or len(grid) < 3:
        raise SpecError("a transfer pilot needs 2 or more sizes and 3 or more learning rates")
    if len(set(ratios)) != len(ratios) or (batches and len(set(batches)) != len(batches)):
        raise SpecError("--tokens-per-param and --batches: list each value once")
    folder = pilot_folder(sweep.name)
    base = sweep.to_manifest()
    out = []
    for j, batch in enumerate(sorted(batches) if batches else [None]):
        for i, ratio in enumerate(ratios):
            for k, lr in enumerate(sorted(grid)):
                suffix = f"-lr{k}" + (f"-b{j}" if batches and len(batches) > 1 else "") + (
                    f"-r{i}" if len(ratios) > 1 else "")
                manifest = copy.deepcopy(base)
                manifest.pop("status", None)
                manifest["metadata"]["name"] = f"{sweep.name[:40 - len(suffix)]}{suffix}"
                spec = manifest["spec"]
                spec["training"]["learningRate"] = float(lr)
                spec.pop("ladder", None)
                if batch is not None:
                    spec["training"]["globalBatchTokens"] = int(batch)
                budgets = (flops_per_token(s.n_params, s.flops_per_token) * ratio * s.n_params for s in sizes)
                spec["budgets"] = [float(f"{b:.6g}") for b in budgets]
                # a narrow D/N window: at each budget only the size it was made for fits (the family's sizes differ
                # by more than 1.2x in N, so a neighbour's D/N is off by more than 1.4x)
                spec["tokensPerParam"] = {"min": ratio / 1.4, "max": ratio * 1.4}
                spec.setdefault("storage", {})["folder"] = folder
                where = f"learning rate {lr:g}" + (f", batch {batch}" if batch else "") + f", D/N {ratio:g}"
                out.append(parse_sweep(manifest, f"the transfer pilot at {where}"))
    return out


def numbers_of(text: str, option: str, integer: bool = False) -> list:
    """Comma-separated positive numbers of an option, or an error naming it."""
    try:
        values = [int(v) if integer else float(v) for v in text.split(",")]
    except ValueError:
        raise SpecError(f"{option} {text!r}: give {'whole ' if integer else ''}numbers separated by commas, e.g. "
                        f"{'256,512,1024' if integer else '1e-3,3e-3,1e-2'}") from None
    if any(not (v > 0 and math.isfinite(v)) for v in values):
        raise SpecError(f"{option} {text!r}: every value must be a positive number")
    return values


def grid_of(text: str | None, sweep: ScalingSweep) -> list[float]:
    """--lr-grid's learning rates, or the default grid around the sweep's rate."""
    return numbers_of(text, "--lr-grid") if text else default_grid(sweep)
