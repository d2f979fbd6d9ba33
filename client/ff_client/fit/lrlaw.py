"""The optimal learning rate as a law of size and data, from a learning-rate grid's cells (ffctl transfer --data).

ln LR* = ln c + a ln N + b ln D (Step Law's lr* = c N^a D^b), fitted by least squares over every cell (a size at a
token count) whose optimum the grid brackets; with one token count, ln LR* = ln c + a ln N. Each cell's LR* is the
local parabola's vertex (ff_client.fit.transfer). An interval spans two bootstraps: the law refitted to replicate
i of every cell (each cell's own noise), and the law refitted to its fit plus resampled residuals (the scatter of
the cells about the law, which a cell's few points can understate): on 9 synthetic grids the first alone held the
true D exponent in 7, the span in 8. Cells at the grid's edge are left out (their LR* is a bound). One law per
batch size: a batch is a pilot of its own.

The batch law B* = k D^p (Step Law's B* = k D^p; DeepSeek's B_opt of C): per size and token count, each batch's
loss at its LR* (its parabola's minimum), then a parabola in ln B through the best batch and its neighbours gives
B*, and ln B* = ln k + p ln D is fitted across those cells, its intervals from resampled residuals. A cell whose
best batch is the grid's smallest or largest is left out (a bound).

The hold-out check refits without the largest size and predicts its LR* at each token count: the prediction's
ratio to the measured optimum, and whether it lands within one step of the grid (the factor between its
learning rates), say how far the law carries.

The separability check: c N^a D^b says the exponent of N is the same at every token count. The law in N alone is
also fitted at each token count (each D/N of a pilot) with 2 or more bracketed sizes, with its interval and its
own hold-out; where, for two token counts, the interval of the difference of their exponents leaves out 0, the
grid is not separable, and the law fitted instead lets N's exponent move with ln(D/N): ln LR* = ln c +
(a + g ln(D/N)) ln N + b ln D (given more cells than its 4 terms). Tiny GPTs on the CPU (widths 24-64) gave
a = +0.18 at D/N 10 and -0.66 at D/N 40: c N^a D^b, fitted without width 64, missed it by 2.39x at D/N 40, the law
with g by 1.61x.

The linearity check: along D = R N the law's exponent of N is a + b + g ln R, a line in ln(D/N) that 2 D/N fit
exactly; with 3 or more, each D/N's own exponent is shown beside the law's, and where the law's lies outside a
D/N's interval, N's exponent is not linear in ln(D/N) over the grid (on a saturating truth, 0, -0.7, -0.7 at
D/N 10, 20, 40, the law missed the widest size at D/N 20 by 2.1x, D/N 20's own law by 1.03x). Pure: cells in,
numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ff_client.fit.estimate import Estimate, percentile_estimate
from ff_client.fit.transfer import RESAMPLES, SizeOptimum, Transfer
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
class KeyLaw:
    """ln LR* = ln c + a ln N at one of the grid's token counts (a pilot's D/N), and its hold-out there."""

    key: float  # the token count, or the pilot's D/N
    c: Estimate
    a: Estimate
    sizes: int
    holdout: HoldOut | None  # fitted without the largest size, predicting it; None with under 3 sizes
    replicates: tuple[np.ndarray, ...] = field(default=(), compare=False, repr=False)  # of a: both bootstraps

    def to_json(self) -> dict:
        return {"key": self.key, "c": self.c.to_json(), "a": self.a.to_json(), "sizes": self.sizes,
                "holdout": self.holdout.to_json() if self.holdout else None}


@dataclass(frozen=True)
class LrLaw:
    batch: float | None
    c: Estimate
    a: Estimate  # exponent of N
    b: Estimate | None  # exponent of D; None with a single token count
    cells: int
    holdout: tuple[HoldOut, ...]
    per_key: tuple[KeyLaw, ...] = ()  # the law in N at each token count with 2 or more bracketed sizes
    key_name: str = "D"  # what a key is: "D" (tokens), or "D/N" for a pilot's grid
    slope: Estimate | None = None  # g: N's exponent is a + g ln(D/N); fitted where the grid is not separable
    one_exponent_holdout: tuple[HoldOut, ...] = ()  # with a slope: c N^a D^b's own hold-out, for comparison

    @property
    def separable(self) -> bool | None:
        return separable(self.per_key)

    def exponent_at(self, ratio: float) -> float | None:
        """The exponent of N this law implies along D = ratio N (the law in N at one D/N): a + b + g ln(D/N);
        None where a key is a token count (along a fixed D the law's exponent moves with N)."""
        if self.key_name != "D/N":
            return None
        return self.a.value + (self.b.value if self.b else 0.0) + (self.slope.value * math.log(ratio)
                                                                   if self.slope else 0.0)

    @property
    def linear(self) -> bool | None:
        """With a slope, whether N's exponent is linear in ln(D/N) across the grid's D/N, as the law says: False
        when at some D/N the law's exponent lies outside that D/N's own interval; None below 3 D/N with an
        interval (2 D/N fix a line exactly), without a slope, or where keys are token counts."""
        keyed = [k for k in self.per_key if k.a.low is not None]
        if not self.slope or self.key_name != "D/N" or len(keyed) < 3:
            return None
        return not self._off_the_line()

    def _off_the_line(self) -> list[KeyLaw]:
        """The D/N whose own interval leaves out the exponent of N this law implies there."""
        return [k for k in self.per_key if k.a.low is not None and not k.a.low <= self.exponent_at(k.key) <= k.a.high]

    def predict(self, n_params: float, tokens: float) -> float:
        a = self.a.value + (self.slope.value * math.log(tokens / n_params) if self.slope else 0.0)
        exponent = math.log(self.c.value) + a * math.log(n_params)
        return math.exp(exponent + (self.b.value * math.log(tokens) if self.b else 0.0))

    def formula(self) -> str:
        a = f"({self.a.value:+.3f} {self.slope.value:+.3f} ln(D/N))" if self.slope else f"{self.a.value:+.3f}"
        return f"LR* = {self.c.value:.4g} N^{a}" + (f" D^{self.b.value:+.3f}" if self.b else "")

    def spec_value(self) -> dict:
        """The law as spec.training.learningRate (ff_core.spec.LearningRateLaw) takes it."""
        value = {"law": "power", "c": float(f"{self.c.value:.6g}"), "nExponent": float(f"{self.a.value:.6g}"),
                 "dExponent": float(f"{self.b.value if self.b else 0.0:.6g}")}
        return value | ({"nExponentSlope": float(f"{self.slope.value:.6g}")} if self.slope else {})

    def spec_text(self) -> str:
        v = self.spec_value()
        slope = f", nExponentSlope: {v['nExponentSlope']:g}" if "nExponentSlope" in v else ""
        return (f"learningRate: {{law: power, c: {v['c']:g}, nExponent: {v['nExponent']:g}, "
                f"dExponent: {v['dExponent']:g}{slope}}}")

    def text(self) -> str:
        batch = "" if self.batch is None else f" (batch {self.batch:g})"
        lines = [f"## the learning-rate law{batch}: {self.formula()}, from {self.cells} cells",
                 f"exponent of N: {self.a.text()}"]
        lines.append(f"exponent of D: {self.b.text()}" if self.b else
                     "exponent of D: needs a grid at 2 or more token counts")
        if self.slope:
            lines.append(f"the exponent of N's slope in ln(D/N): {self.slope.text()} (the grid is not separable)")
        lines.append(f"in a sweep (each point at its own rate): {self.spec_text()}")
        if self.holdout:
            rows = [("held out N", "D", "predicted LR*", "measured LR*", "ratio", "within a grid step")]
            rows += [(f"{h.n_params:.3g}", f"{h.tokens:.3g}", h.predicted.text(), h.measured.text(),
                      f"{h.ratio:.3g}", "yes" if h.within_step else f"no (grid factor {math.exp(h.grid_step):.3g})")
                     for h in self.holdout]
            lines += ["hold-out: the law fitted without the largest size, predicting it", aligned(rows)]
        elif self.slope:
            lines.append("hold-out: the law with a slope needs more than 4 cells without the largest size")
        else:
            lines.append("hold-out: needs 3 or more sizes with a bracketed optimum")
        if self.one_exponent_holdout:
            lines.append("c N^a D^b with one exponent of N, fitted the same way: ratios " + ", ".join(
                f"{h.ratio:.3g} at D={h.tokens:.3g}" for h in self.one_exponent_holdout))
        return "\n".join(lines + self._per_key_lines())

    def _per_key_lines(self) -> list[str]:
        if len(self.per_key) < 2:
            return []
        implied = self.key_name == "D/N"  # the joint law's own exponent along each D/N, beside the D/N's
        rows = [(self.key_name, "sizes", "LR* = c N^a", "exponent of N") + (("the law's, here",) if implied else ())
                + ("held out: predicted / measured", "within a grid step")]
        for k in self.per_key:
            h = k.holdout
            rows.append((f"{k.key:.3g}", str(k.sizes), f"{k.c.value:.4g} N^{k.a.value:+.3f}", k.a.text())
                        + ((f"{self.exponent_at(k.key):+.3f}",) if implied else ())
                        + (f"{h.predicted.value:.4g} / {h.measured.value:.4g} = {h.ratio:.3g}" if h else "-",
                           ("yes" if h.within_step else f"no (grid factor {math.exp(h.grid_step):.3g})") if h else "-"))
        verdict = {None: "separability: undetermined (an exponent of N without an interval)",
                   True: "separable: the exponent of N agrees across token counts, as c N^a D^b says",
                   False: "not separable: the exponent of N differs between token counts (the interval of the "
                          "difference leaves out 0), so c N^a D^b does not describe this grid"
                          + ("; the law above moves N's exponent with ln(D/N), fitted between the grid's D/N"
                             if self.slope else f"; read LR* from the law at the nearest {self.key_name}")}
        lines = [f"the law in N at each {self.key_name}", aligned(rows), verdict[self.separable]]
        if self.linear is True:
            lines.append("linear in ln(D/N): at each D/N the law's exponent of N lies in that D/N's own interval")
        elif self.linear is False:
            off = ", ".join(f"{k.key:g} ({self.exponent_at(k.key):+.3f} against {k.a.text()})"
                            for k in self._off_the_line())
            lines.append(f"not linear in ln(D/N): the law's exponent of N lies outside the D/N's own interval at "
                         f"{off}; between the grid's D/N read LR* from the law at the nearest D/N")
        return lines

    def to_json(self) -> dict:
        return {"batch": self.batch, "c": self.c.to_json(), "a": self.a.to_json(),
                "b": self.b.to_json() if self.b else None, "cells": self.cells,
                "holdout": [h.to_json() for h in self.holdout],
                "perTokenCount": [k.to_json() for k in self.per_key], "separable": self.separable,
                "linearInLogDOverN": self.linear,
                "slope": self.slope.to_json() if self.slope else None,
                "oneExponentHoldout": [h.to_json() for h in self.one_exponent_holdout]}


def separable(per_key: tuple[KeyLaw, ...]) -> bool | None:
    """Whether the exponent of N agrees across token counts, as c N^a D^b says: False when for some two token
    counts the 95% interval of the difference of their exponents (from both bootstraps, each key's drawn
    independently) leaves out 0; None with fewer than 2 token counts whose a has replicates."""
    keyed = [k for k in per_key if k.replicates and k.a.low is not None]
    if len(keyed) < 2:
        return None
    for i, first in enumerate(keyed):
        for second in keyed[i + 1:]:
            difference = _spanning(second.a.value - first.a.value,
                                   [b - a for a, b in zip(first.replicates, second.replicates)])
            if difference.low is not None and not difference.low <= 0 <= difference.high:
                return False
    return True


@dataclass(frozen=True)
class BatchLaw:
    k: Estimate
    p: Estimate  # exponent of D
    optima: tuple[tuple[float, float, float], ...]  # (N, D, B*) of each cell fitted

    def predict(self, tokens: float) -> float:
        return self.k.value * tokens**self.p.value

    def formula(self) -> str:
        return f"B* = {self.k.value:.4g} D^{self.p.value:+.3f}"

    def text(self) -> str:
        rows = [("N", "D", "B*")] + [(f"{n:.3g}", f"{d:.3g}", f"{b:.4g}") for n, d, b in self.optima]
        return "\n".join([f"## the batch law: {self.formula()}, from {len(self.optima)} cells",
                          f"exponent of D: {self.p.text()}", aligned(rows)])

    def to_json(self) -> dict:
        return {"k": self.k.to_json(), "p": self.p.to_json(),
                "optima": [{"nParams": n, "tokens": d, "batch": b} for n, d, b in self.optima]}


def _same(key: float, batch: float | None, n_params: float) -> float:
    return key


def fit_batch_law(pilots: tuple[tuple[float, float | None, Transfer], ...], seed: int = 0,
                  resamples: int = RESAMPLES, tokens_of=_same) -> BatchLaw | None:
    """B* = k D^p from pilots at 3 or more batch sizes; None when no 2 token counts have a bracketed B*.
    `tokens_of(key, batch, N)` is a size's D in the pilot keyed `key` (the key itself: pilots by token count)."""
    losses: dict[tuple[float, float], dict[float, float]] = {}
    for key, batch, result in pilots:
        for s in result.sizes:
            if batch is not None and not s.undetermined:
                losses.setdefault((s.n_params, tokens_of(key, None, s.n_params)), {})[batch] = _loss_at_optimum(s)
    optima = []
    for (n, d), by_batch in sorted(losses.items()):
        if (best := _vertex(sorted(by_batch.items()))) is not None:
            optima.append((n, d, best))
    if len({d for _, d, _ in optima}) < 2:
        return None
    x, y = np.log([d for _, d, _ in optima]), np.log([b for _, _, b in optima])
    slope, intercept = np.polyfit(x, y, 1)
    if len(optima) < 3:  # two cells fix the line exactly: no residuals to resample, so no interval (not a zero one)
        return BatchLaw(Estimate(math.exp(intercept)), Estimate(float(slope)), tuple(optima))
    fitted = intercept + slope * x
    residuals = (y - fitted) * math.sqrt(len(y) / max(len(y) - 2, 1))
    rng = np.random.default_rng(seed)
    draws = [np.polyfit(x, fitted + rng.choice(residuals, len(y)), 1) for _ in range(resamples)]
    return BatchLaw(percentile_estimate(math.exp(intercept), [math.exp(c[1]) for c in draws]),
                    percentile_estimate(float(slope), [float(c[0]) for c in draws]), tuple(optima))


def _loss_at_optimum(s: SizeOptimum) -> float:
    """The loss at a cell's LR*: its local parabola's minimum (the best grid loss if no parabola fits)."""
    return parabola_min(sorted(s.curve))[1]


def parabola_min(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(ln x at the minimum, the loss there) of a parabola in ln x through the best point and up to 2 neighbours
    on each side; the best point itself when no upward parabola fits."""
    x, y = np.log([p for p, _ in points]), np.array([v for _, v in points])
    best = int(np.argmin(y))
    lo, hi = max(0, best - 2), min(len(points), best + 3)
    if hi - lo >= 3:
        coef = np.polyfit(x[lo:hi], y[lo:hi], 2)
        if coef[0] > 0:
            vertex = float(np.clip(-coef[1] / (2 * coef[0]), x[lo], x[hi - 1]))
            return vertex, float(np.polyval(coef, vertex))
    return float(x[best]), float(y[best])


def _vertex(by_batch: list[tuple[float, float]]) -> float | None:
    """B* of one cell: None below 3 batches, or when the best is the smallest or largest batch (a bound)."""
    if len(by_batch) < 3 or int(np.argmin([v for _, v in by_batch])) in (0, len(by_batch) - 1):
        return None
    return math.exp(parabola_min(by_batch)[0])


def fit_lr_laws(pilots: tuple[tuple[float, float | None, Transfer], ...], tokens_of=_same,
                key_name: str = "D") -> tuple[LrLaw, ...]:
    """One law per batch size over its pilots' bracketed cells; a batch with fewer than 2 such sizes has none.
    `tokens_of` as fit_batch_law's; `key_name` says what a pilot's key is (D, or D/N)."""
    laws = []
    for batch in sorted({b for _, b, _ in pilots}, key=lambda b: b or 0.0):
        mine = [(key, result) for key, b, result in pilots if b == batch]
        cells = [Cell(s.n_params, tokens_of(key, batch, s.n_params), s) for key, result in mine
                 for s in result.sizes if not s.undetermined]
        if len({c.n_params for c in cells}) < 2:
            continue
        step = min(result.grid_step for _, result in mine)
        per_key = tuple(law for i, (key, result) in enumerate(mine) if (law := _key_law(
            key, [Cell(s.n_params, tokens_of(key, batch, s.n_params), s) for s in result.sizes if not s.undetermined],
            step, seed=i)))
        # not separable: N's exponent moves with ln(D/N), where the cells pin that down (more cells than terms)
        sloped = (separable(per_key) is False and len(cells) > 4
                  and np.linalg.matrix_rank(_design(cells, True, True)) == 4)
        coef, both = _fit(cells, sloped=sloped)
        with_d = coef.shape[0] >= 3
        estimates = [_spanning(float(coef[k]), [r[:, k] for r in both]) for k in range(coef.shape[0])]
        c = _spanning(math.exp(coef[0]), [np.exp(r[:, 0]) for r in both])
        laws.append(LrLaw(batch, c, estimates[1], estimates[2] if with_d else None, len(cells),
                          _hold_out(cells, step, sloped), per_key, key_name, estimates[3] if sloped else None,
                          _hold_out(cells, step) if sloped else ()))
    return tuple(laws)


def _key_law(key: float, cells: list[Cell], step: float, seed: int) -> KeyLaw | None:
    """The law in N alone through one token count's cells (none under 2 sizes), with its own hold-out; `seed`
    differs per key, so that the keys' residual bootstraps are independent."""
    if len(cells) < 2:
        return None
    coef, both = _fit(cells, seed, with_d=False)
    a = _spanning(float(coef[1]), [r[:, 1] for r in both])
    c = _spanning(math.exp(coef[0]), [np.exp(r[:, 0]) for r in both])
    largest = max(cells, key=lambda cell: cell.n_params)
    train = [cell for cell in cells if cell is not largest]
    holdout = None
    if len(train) >= 2:
        fitted, refits = _fit(train, seed, with_d=False)
        x = _design([largest], False)[0]
        predicted = _spanning(math.exp(float(x @ fitted)), [np.exp(r @ x) for r in refits])
        holdout = HoldOut(largest.n_params, largest.tokens, predicted, largest.optimum.lr, step)
    return KeyLaw(key, c, a, len(cells), holdout, tuple(r[:, 1] for r in both))


def _spanning(value: float, replicate_sets: list[np.ndarray]) -> Estimate:
    """The value with the interval spanning each replicate set's percentile interval."""
    each = [percentile_estimate(value, list(r)) for r in replicate_sets]
    if any(e.low is None for e in each):
        return Estimate(value)
    return replace(each[0], low=min(e.low for e in each), high=max(e.high for e in each))


def _design(cells: list[Cell], with_d: bool, sloped: bool = False) -> np.ndarray:
    """Columns 1, ln N (, ln D (, ln N ln(D/N): the slope of N's exponent in ln(D/N)))."""
    log_n, log_d = np.log([c.n_params for c in cells]), np.log([c.tokens for c in cells])
    columns = [np.ones(len(cells)), log_n] + ([log_d] if with_d else []) + ([log_n * (log_d - log_n)] if sloped else [])
    return np.column_stack(columns)


def _fit(cells: list[Cell], seed: int = 0, with_d: bool | None = None, sloped: bool = False
         ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(coefficients [ln c, a, (b, (g))], (their replicates from the cells' bootstrap, from resampled residuals));
    with D when the cells have 2 or more token counts, unless `with_d` says (a pilot's D/N: D moves with N)."""
    with_d = (len({c.tokens for c in cells}) >= 2 if with_d is None else with_d) or sloped
    design = _design(cells, with_d, sloped)
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


def _hold_out(cells: list[Cell], step: float, sloped: bool = False) -> tuple[HoldOut, ...]:
    largest = max(c.n_params for c in cells)
    train = [c for c in cells if c.n_params < largest]
    if len({c.n_params for c in train}) < 2 or (sloped and (
            len(train) <= 4 or np.linalg.matrix_rank(_design(train, True, True)) < 4)):
        return ()
    coef, both = _fit(train, sloped=sloped)
    out = []
    for held in sorted((c for c in cells if c.n_params == largest), key=lambda c: c.tokens):
        x = _design([held], coef.shape[0] >= 3, sloped)[0]
        predicted = _spanning(math.exp(float(x @ coef)), [np.exp(r @ x) for r in both])
        out.append(HoldOut(held.n_params, held.tokens, predicted, held.optimum.lr, step))
    return tuple(out)
