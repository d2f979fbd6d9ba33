"""The optimal learning rate as a law of size and data, from a learning-rate grid's cells (ffctl transfer --data).

ln LR* = ln c + a ln N + b ln D (Step Law's lr* = c N^a D^b), fitted by least squares over every cell (a size at a
token count) whose optimum the grid brackets; with one token count, ln LR* = ln c + a ln N. Each cell's LR* is the
local parabola's vertex (ff_client.fit.transfer). An interval spans two bootstraps: the law refitted to replicate
i of every cell (each cell's own noise), and the law refitted to its fit plus resampled residuals (the scatter of
the cells about the law, which a cell's few points can understate); each alone covered the truth too rarely on
synthetic grids. Cells at the grid's edge are left out (their LR* is a bound). One law
per batch size: a batch is a pilot of its own.

The hold-out check refits without the largest size and predicts its LR* at each token count: the prediction's
ratio to the measured optimum, and whether it lands within one step of the grid (the factor between its
learning rates), say how far the law carries. Pure: cells in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ff_client.fit.estimate import Estimate, percentile_estimate
from ff_client.fit.transfer import SizeOptimum, Transfer
from ff_client.text import aligned


@dataclass(frozen=True)
class Cell:
    n_params: float
    tokens: float
    optimum: SizeOptimum


@dataclass(frozen=True)
class HoldOut:
    n_params: float
    tokens: float
    predicted: Estimate  # LR* of the law fitted without this size
    measured: Estimate  # this size's LR* at this token count (its parabola's vertex)
    grid_step: float  # ln of the factor between the grid's learning rates

    @property
    def ratio(self) -> float:
        return self.predicted.value / self.measured.value

    @property
    def within_step(self) -> bool:
        return abs(math.log(self.ratio)) <= self.grid_step * 1.0001

    def to_json(self) -> dict:
        return {"nParams": self.n_params, "tokens": self.tokens, "predicted": self.predicted.to_json(),
                "measured": self.measured.to_json(), "ratio": self.ratio, "gridFactor": math.exp(self.grid_step),
                "withinGridStep": self.within_step}


@dataclass(frozen=True)
class LrLaw:
    batch: float | None
    c: Estimate
    a: Estimate  # exponent of N
    b: Estimate | None  # exponent of D; None with a single token count
    cells: int
    holdout: tuple[HoldOut, ...]

    def predict(self, n_params: float, tokens: float) -> float:
        exponent = math.log(self.c.value) + self.a.value * math.log(n_params)
        return math.exp(exponent + (self.b.value * math.log(tokens) if self.b else 0.0))

    def formula(self) -> str:
        return f"LR* = {self.c.value:.4g} N^{self.a.value:+.3f}" + (f" D^{self.b.value:+.3f}" if self.b else "")

    def text(self) -> str:
        batch = "" if self.batch is None else f" (batch {self.batch:g})"
        lines = [f"## the learning-rate law{batch}: {self.formula()}, from {self.cells} cells",
                 f"exponent of N: {self.a.text()}"]
        lines.append(f"exponent of D: {self.b.text()}" if self.b else
                     "exponent of D: needs a grid at 2 or more token counts")
        if self.holdout:
            rows = [("held out N", "D", "predicted LR*", "measured LR*", "ratio", "within a grid step")]
            rows += [(f"{h.n_params:.3g}", f"{h.tokens:.3g}", h.predicted.text(), h.measured.text(),
                      f"{h.ratio:.3g}", "yes" if h.within_step else f"no (grid factor {math.exp(h.grid_step):.3g})")
                     for h in self.holdout]
            lines += ["hold-out: the law fitted without the largest size, predicting it", aligned(rows)]
        else:
            lines.append("hold-out: needs 3 or more sizes with a bracketed optimum")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"batch": self.batch, "c": self.c.to_json(), "a": self.a.to_json(),
                "b": self.b.to_json() if self.b else None, "cells": self.cells,
                "holdout": [h.to_json() for h in self.holdout]}


def fit_lr_laws(pilots: tuple[tuple[float, float | None, Transfer], ...]) -> tuple[LrLaw, ...]:
    """One law per batch size over its pilots' bracketed cells; a batch with fewer than 2 such sizes has none."""
    laws = []
    for batch in sorted({b for _, b, _ in pilots}, key=lambda b: b or 0.0):
        mine = [(tokens, result) for tokens, b, result in pilots if b == batch]
        cells = [Cell(s.n_params, tokens, s) for tokens, result in mine for s in result.sizes if not s.at_edge]
        if len({c.n_params for c in cells}) < 2:
            continue
        step = min(result.grid_step for _, result in mine)
        coef, both = _fit(cells)
        with_d = coef.shape[0] == 3
        estimates = [_spanning(float(coef[k]), [r[:, k] for r in both]) for k in range(coef.shape[0])]
        c = _spanning(math.exp(coef[0]), [np.exp(r[:, 0]) for r in both])
        laws.append(LrLaw(batch, c, estimates[1], estimates[2] if with_d else None, len(cells),
                          _hold_out(cells, step)))
    return tuple(laws)


def _spanning(value: float, replicate_sets: list[np.ndarray]) -> Estimate:
    """The value with the interval spanning each replicate set's percentile interval."""
    each = [percentile_estimate(value, list(r)) for r in replicate_sets]
    if any(e.low is None for e in each):
        return Estimate(value)
    return replace(each[0], low=min(e.low for e in each), high=max(e.high for e in each))


def _design(cells: list[Cell], with_d: bool) -> np.ndarray:
    columns = [np.ones(len(cells)), np.log([c.n_params for c in cells])]
    return np.column_stack(columns + ([np.log([c.tokens for c in cells])] if with_d else []))


def _fit(cells: list[Cell], seed: int = 0) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(coefficients [ln c, a, (b)], (their replicates from the cells' bootstrap, from resampled residuals))."""
    with_d = len({c.tokens for c in cells}) >= 2
    design = _design(cells, with_d)
    values = np.log([c.optimum.lr.value for c in cells])
    coef = np.linalg.lstsq(design, values, rcond=None)[0]
    columns = np.array([c.optimum.replicates for c in cells])  # cells x replicates, in ln LR
    from_cells = np.linalg.lstsq(design, columns, rcond=None)[0].T
    fitted = design @ coef
    residuals = (values - fitted) * math.sqrt(len(cells) / max(len(cells) - len(coef), 1))  # unbiased spread
    rng = np.random.default_rng(seed)
    resampled = fitted[:, None] + rng.choice(residuals, size=(len(cells), columns.shape[1]), replace=True)
    from_residuals = np.linalg.lstsq(design, resampled, rcond=None)[0].T
    return coef, (from_cells, from_residuals)


def _hold_out(cells: list[Cell], step: float) -> tuple[HoldOut, ...]:
    largest = max(c.n_params for c in cells)
    train = [c for c in cells if c.n_params < largest]
    if len({c.n_params for c in train}) < 2:
        return ()
    coef, both = _fit(train)
    out = []
    for held in sorted((c for c in cells if c.n_params == largest), key=lambda c: c.tokens):
        x = _design([held], coef.shape[0] == 3)[0]
        predicted = _spanning(math.exp(float(x @ coef)), [np.exp(r @ x) for r in both])
        out.append(HoldOut(held.n_params, held.tokens, predicted, held.optimum.lr, step))
    return tuple(out)
