"""The joint optimum of a learning-rate x batch grid in each cell, and the laws through it (Step Law's design).

A cell is a size at a token count, trained at several learning rates and batch sizes (Step Law trains each size at
its own token counts, so cells rarely share a D and per-token pilots see one size each). In a cell:

1. each batch's LR* and its loss: the local parabola in ln LR through the best finite point and up to 2 neighbours
   each side (ff_client.fit.lrlaw.parabola_min); a batch whose best point is its smallest or largest finite rate
   has a bound, not an optimum;
2. B*: the parabola in ln B through the losses at each batch's LR* (the best batch and its neighbours); a best
   batch that is the grid's smallest or largest is a bound;
3. LR* at B*: the valley's line ln LR*(B) = u + v ln B through the bracketed optima of the best batch and up to 2
   neighbours each side, read at ln B*. The valley tilts (a larger batch takes a larger rate), so the LR* of the
   best grid batch misses by v times the distance from the grid's batch to B*; and one batch's LR* is one
   parabola's noise, which the line averages.

A cell with a bound at step 1 (its best batch) or 2 is flagged and left out of the laws. The laws are fitted by
least squares in logs over the other cells: ln LR* = ln c + a ln N + b ln D and ln B* = ln k + p ln D. Their
intervals resample the cells (Step Law resamples its runs the same way). The hold-out check refits without the
largest size and predicts its cells' LR*. On Step Law's dense grid (benchmarks/published_lr_grid.py) this
recovers their exponents within their bootstrap's intervals; its variants and the naive estimates are measured
there. Pure: runs in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ff_client.fit.estimate import MAX_FAILED_SHARE, Estimate, percentile_estimate
from ff_client.fit.lrlaw import BatchLaw, HoldOut, LrLaw, parabola_min
from ff_client.fit.transfer import RESAMPLES
from ff_client.text import aligned

MIN_BATCHES = 3  # batch sizes a cell needs for a parabola in ln B
NEIGHBOURS = 2  # batches each side of the best one that the valley's line goes through


@dataclass(frozen=True)
class JointCell:
    n_params: float
    tokens: float
    lr: float  # LR* at B* (or at the best batch when flagged)
    batch: float  # B* (or the best grid batch when flagged)
    flag: str | None  # why the cell is a bound, not an optimum; None when bracketed in both

    def to_json(self) -> dict:
        return {"nParams": self.n_params, "tokens": self.tokens, "lr": self.lr, "batch": self.batch,
                "flag": self.flag}


@dataclass(frozen=True)
class JointAnalysis:
    cells: tuple[JointCell, ...]
    law: LrLaw | None  # LR* = c N^a D^b through the bracketed cells (batch None: at each cell's B*)
    batch_law: BatchLaw | None

    def text(self) -> str:
        rows = [("N", "D", "LR* at B*", "B*", "flag")]
        rows += [(f"{c.n_params:.3g}", f"{c.tokens:.3g}", f"{c.lr:.4g}", f"{c.batch:.4g}", c.flag or "-")
                 for c in self.cells]
        flagged = sum(c.flag is not None for c in self.cells)
        parts = [f"## the joint optimum of learning rate and batch, per cell ({flagged} of {len(self.cells)} "
                 "flagged: a bound, left out of the laws)", aligned(rows)]
        if self.law:
            parts += ["", self.law.text().replace("## the learning-rate law", "## the learning-rate law at B*", 1)]
        if self.batch_law:
            parts += ["", self.batch_law.text()]
        return "\n".join(parts)

    def to_json(self) -> dict:
        return {"cells": [c.to_json() for c in self.cells], "law": self.law.to_json() if self.law else None,
                "batchLaw": self.batch_law.to_json() if self.batch_law else None}


def cell_optimum(n_params: float, tokens: float, runs: Sequence[tuple[float, float, float | None]]) -> JointCell | None:
    """The joint optimum of one cell's (lr, batch, loss) runs (loss None: diverged); None below MIN_BATCHES
    batches with 3 finite rates each."""
    per_batch = []  # (ln B, ln LR*, loss there, LR* bracketed)
    for batch in sorted({b for _, b, _ in runs}):
        curve = sorted((lr, loss) for lr, b, loss in runs if b == batch and loss is not None)
        if len(curve) < 3:
            continue
        best = int(np.argmin([loss for _, loss in curve]))
        x, loss = parabola_min(curve)
        per_batch.append((math.log(batch), x, loss, best not in (0, len(curve) - 1)))
    if len(per_batch) < MIN_BATCHES:
        return None
    losses = [p[2] for p in per_batch]
    best = int(np.argmin(losses))
    ln_b = parabola_min([(math.exp(p[0]), p[2]) for p in per_batch])[0]
    flags = []
    if best in (0, len(per_batch) - 1):
        flags.append("best batch at the grid's edge")
    if not per_batch[best][3]:
        flags.append("best learning rate at the grid's edge")
    around = [p for p in per_batch[max(0, best - NEIGHBOURS):best + NEIGHBOURS + 1] if p[3]]
    if len(around) >= 2 and not flags:
        slope, intercept = np.polyfit([p[0] for p in around], [p[1] for p in around], 1)
        ln_lr = float(intercept + slope * ln_b)
    else:
        ln_lr = per_batch[best][1]
    return JointCell(n_params, tokens, math.exp(ln_lr), math.exp(ln_b), "; ".join(flags) or None)


def analyze_joint(runs: Sequence[tuple[float, float, float, float, float | None]], grid_step: float, seed: int = 0,
                  resamples: int = RESAMPLES) -> JointAnalysis | None:
    """(n_params, tokens, lr, batch, loss) runs: each cell's joint optimum and the laws; None when no cell has
    MIN_BATCHES batch sizes. `grid_step` is ln of the factor between the grid's learning rates (for the hold-out)."""
    by_cell: dict[tuple[float, float], list[tuple[float, float, float | None]]] = {}
    for n, d, lr, batch, loss in runs:
        by_cell.setdefault((n, d), []).append((lr, batch, loss))
    cells = [c for (n, d), rs in sorted(by_cell.items()) if (c := cell_optimum(n, d, rs)) is not None]
    if not cells:
        return None
    good = [c for c in cells if c.flag is None]
    return JointAnalysis(tuple(cells), _lr_law(good, grid_step, seed, resamples), _batch_law(good, seed, resamples))


def _design(cells: Sequence[JointCell]) -> np.ndarray:
    return np.column_stack([np.ones(len(cells)), np.log([c.n_params for c in cells]),
                            np.log([c.tokens for c in cells])])


def _coefficients(cells: Sequence[JointCell]) -> np.ndarray:
    return np.linalg.lstsq(_design(cells), np.log([c.lr for c in cells]), rcond=None)[0]


def _resampled(cells: Sequence[JointCell], fit, seed: int, resamples: int) -> list:
    """`fit` of the cells resampled with replacement; draws with fewer than 2 sizes or token counts are skipped."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        drawn = [cells[i] for i in rng.integers(0, len(cells), len(cells))]
        if len({c.n_params for c in drawn}) >= 2 and len({c.tokens for c in drawn}) >= 2:
            draws.append(fit(drawn))
    return draws if len(draws) >= resamples * (1 - MAX_FAILED_SHARE) else []  # mostly failing: no interval


def _identified(cells: Sequence[JointCell]) -> bool:
    """ln N and ln D vary independently across the cells (a law in both can be fitted)."""
    return len(cells) >= 4 and np.linalg.matrix_rank(_design(cells)) == 3


def _lr_law(cells: list[JointCell], grid_step: float, seed: int, resamples: int) -> LrLaw | None:
    if not _identified(cells):
        return None
    coef = _coefficients(cells)
    draws = np.array(_resampled(cells, _coefficients, seed, resamples)).reshape(-1, 3)
    c, a, b = (percentile_estimate(float(v), list(draws[:, k]))
               for k, v in enumerate((coef[0], coef[1], coef[2])))
    c = Estimate(math.exp(c.value), *(math.exp(v) if v is not None else None for v in (c.low, c.high)))
    return LrLaw(None, c, a, b, len(cells), _hold_out(cells, grid_step, seed, resamples))


def _hold_out(cells: list[JointCell], grid_step: float, seed: int, resamples: int) -> tuple[HoldOut, ...]:
    largest = max(c.n_params for c in cells)
    train = [c for c in cells if c.n_params < largest]
    if not _identified(train):
        return ()
    coef = _coefficients(train)
    draws = np.array(_resampled(train, _coefficients, seed, resamples)).reshape(-1, 3)
    out = []
    for held in sorted((c for c in cells if c.n_params == largest), key=lambda c: c.tokens):
        x = _design([held])[0]
        predicted = percentile_estimate(math.exp(float(x @ coef)), list(np.exp(draws @ x)))
        out.append(HoldOut(held.n_params, held.tokens, predicted, Estimate(held.lr), grid_step))
    return tuple(out)


def _batch_law(cells: list[JointCell], seed: int, resamples: int) -> BatchLaw | None:
    if len({c.tokens for c in cells}) < 3:
        return None

    def fit(some):
        return np.polyfit(np.log([c.tokens for c in some]), np.log([c.batch for c in some]), 1)

    slope, intercept = fit(cells)
    draws = _resampled(cells, fit, seed, resamples)
    return BatchLaw(percentile_estimate(math.exp(intercept), [math.exp(d[1]) for d in draws]),
                    percentile_estimate(float(slope), [float(d[0]) for d in draws]),
                    tuple((c.n_params, c.tokens, c.batch) for c in cells))
