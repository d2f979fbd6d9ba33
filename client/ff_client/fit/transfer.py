"""Does the learning rate transfer across the sweep's sizes? The analysis of a pilot grid (sizes x learning rates).

Per size: the loss against ln(learning rate), the optimum LR* from a local parabola through the best grid point
and its neighbours (up to 2 on each side; 1 when that parabola's vertex falls outside the best point's
neighbours, as a cliff beside it makes it), its 95% interval by a parametric bootstrap with the parabola's
residual noise (floored at 0.1% of the loss), and the basin (the grid's learning rates within 1% of the best
loss). A curve that is not one valley is rough: farther from its best point the loss falls again by more than 2%
of the best loss, to within 50% of it, or no parabola through the best point and its neighbours has a minimum.
A rough size's LR* is its best grid point with no interval; like one at the grid's edge, it leaves the verdict
undetermined and stays out of the laws (ff_client.fit.lrlaw): small models that escape a plateau at some rates
and not at others give such curves, and their best point is then a matter of luck.
Across sizes: the drift, the slope of ln LR* against ln N, with an interval from the same replicates.
Verdict: the learning rate transfers when the slope's interval holds 0 or the largest size's LR* is within one
grid step of the smallest's; otherwise the report says how far the sweep's learning rate is from each size's
LR* and what that costs in loss. Pure: points in, numbers out.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ff_client.fit.estimate import LEVEL, Estimate, percentile_estimate
from ff_client.text import aligned
from ff_core.errors import FlopsFitError, StoreError
from ff_core.layout import is_result_key
from ff_core.plan import POINT_FIELDS
from ff_core.results import parse_result
from ff_core.store import Store

RESAMPLES = 1000
BASIN = 0.01  # learning rates within 1% of the best loss
ROUGH = 0.02  # a curve whose loss falls again by more than this fraction of the best loss is not one valley,
NEAR = 0.50  # when it falls to within this fraction of the best loss (diverged runs sit far above)


@dataclass(frozen=True)
class SizeOptimum:
    size: str
    n_params: float
    lr: Estimate  # LR*
    basin: tuple[float, float]
    at_edge: bool  # the best grid point is the smallest or largest learning rate: LR* is a bound, not found
    cost_of_sweep_lr: float | None  # loss at the sweep's learning rate minus at LR* (from the parabola)
    curve: tuple[tuple[float, float], ...]  # (learning rate, loss)
    replicates: np.ndarray  # ln LR* per bootstrap replicate
    rough: bool = False  # interior best, but the curve is not one valley about it: LR* is a grid point, not found

    @property
    def undetermined(self) -> bool:
        """At the grid's edge or rough: the grid point is not an optimum to fit a law to."""
        return self.at_edge or self.rough


@dataclass(frozen=True)
class Transfer:
    sizes: tuple[SizeOptimum, ...]
    slope: Estimate  # d ln LR* / d ln N
    sweep_lr: float
    grid_step: float  # ln of the grid's spacing
    transfers: bool | None  # None: some size's optimum lies at the grid's edge or on a rough curve
    judged: str = "the sweep's"  # whose learning rate sweep_lr is, in the verdict

    def verdict(self) -> str:
        smallest, largest = self.sizes[0], self.sizes[-1]
        edge = [s.size for s in self.sizes if s.at_edge]
        rough = [s.size for s in self.sizes if s.rough]
        if self.transfers is None:
            said = []
            if edge:
                said.append(f"the best learning rate of {', '.join(edge)} is at the grid's edge; widen the grid "
                            "(--lr-grid) past it")
            if rough:
                said.append(f"the loss of {', '.join(rough)} is not one valley in the learning rate (farther from "
                            f"the best it falls again, by more than {ROUGH:.0%}, to near the best): train more steps "
                            "or larger sizes, or look at the curves")
            return "undetermined: " + "; ".join(said)
        drift = (f"ln LR* moves {self.slope.value:+.2f} per ln N [{self.slope.low:+.2f}, {self.slope.high:+.2f}]"
                 if self.slope.low is not None else f"ln LR* moves {self.slope.value:+.2f} per ln N")
        if self.transfers:
            return (f"transfers: {drift}; LR* {smallest.lr.value:.3g} at N={smallest.n_params:.3g} and "
                    f"{largest.lr.value:.3g} at N={largest.n_params:.3g}")
        far = "; ".join(
            f"{s.size}: LR* {s.lr.value:.3g}, {self.judged} {self.sweep_lr:.3g} is x{self.sweep_lr / s.lr.value:.2g}"
            + (f" off, costing {s.cost_of_sweep_lr:.4f} in loss" if s.cost_of_sweep_lr is not None else " off")
            for s in self.sizes)
        return f"does not transfer: {drift}. {far}"

    def text(self) -> str:
        """A row per size (LR* with its interval, the basin, what the sweep's rate costs), then the verdict."""
        rows = [("size", "N", "LR*", f"{LEVEL:.0%} interval", f"basin (within {BASIN:.0%})", "sweep LR costs")]
        for s in self.sizes:
            interval = (f"[{s.lr.low:.3g}, {s.lr.high:.3g}]" if s.lr.low is not None else
                        "rough curve" if s.rough else "at the grid's edge")
            cost = f"{s.cost_of_sweep_lr:.4f}" if s.cost_of_sweep_lr is not None else "-"
            rows.append((s.size, f"{s.n_params:.3g}", f"{s.lr.value:.3g}", interval,
                         f"{s.basin[0]:.3g} - {s.basin[1]:.3g}", cost))
        return aligned(rows) + "\n" + self.verdict()

    def to_json(self) -> dict:
        return {"transfers": self.transfers, "verdict": self.verdict(), "sweepLearningRate": self.sweep_lr,
                "slope": self.slope.to_json(),
                "sizes": [{"size": s.size, "nParams": s.n_params, "lrOpt": s.lr.to_json(),
                           "basin": list(s.basin), "atEdge": s.at_edge, "rough": s.rough,
                           "sweepLrCost": s.cost_of_sweep_lr,
                           "curve": [list(p) for p in s.curve]} for s in self.sizes]}


def _parabola(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    coef = np.polyfit(x, y, 2)
    return coef if coef[0] > 0 else None


def one_valley(y: np.ndarray, best: int) -> bool:
    """Whether the loss, read outward from its best point, never falls again by more than ROUGH of the best loss to
    a loss within NEAR of it (falls among diverged runs, far above the valley, do not count)."""
    tolerance, near = ROUGH * float(y[best]), (1 + NEAR) * float(y[best])
    for side in (y[best::-1], y[best:]):
        highest = -np.inf
        for loss in side:
            if loss < highest - tolerance and loss <= near:
                return False
            highest = max(highest, loss)
    return True


def size_optimum(size: str, n_params: float, curve: list[tuple[float, float]], sweep_lr: float,
                 rng: np.random.Generator, resamples: int = RESAMPLES) -> SizeOptimum:
    curve = sorted(curve)
    x = np.log([lr for lr, _ in curve])
    y = np.array([loss for _, loss in curve])
    best = int(np.argmin(y))
    basin = [lr for lr, loss in curve if loss <= y[best] * (1 + BASIN)]
    at_edge = best in (0, len(curve) - 1)
    lo, hi = max(0, best - 2), min(len(curve), best + 3)
    if at_edge or hi - lo < 3 or not one_valley(y, best) or (coef := _parabola(x[lo:hi], y[lo:hi])) is None:
        value = float(x[best])
        return SizeOptimum(size, n_params, Estimate(math.exp(value)), (min(basin), max(basin)), at_edge, None,
                           tuple(curve), np.full(resamples, value), rough=not at_edge)
    vertex = -coef[1] / (2 * coef[0])
    residual = y[lo:hi] - np.polyval(coef, x[lo:hi])
    dof = max(1, hi - lo - 3)
    sigma = max(float(np.sqrt(np.sum(residual**2) / dof)), 1e-3 * float(y[best]))
    if not x[best - 1] < vertex < x[best + 1]:
        # both neighbours measured worse than the best point, so a minimum between them is what the data say; a
        # cliff beside it (the loss jumps at the next rate) pulls the 5-point parabola past a neighbour: the best
        # point and its two neighbours instead, whose vertex lies within half a step of it; the wider fit's misfit
        # stays in the bootstrap's noise
        lo, hi = best - 1, best + 2
        coef = _parabola(x[lo:hi], y[lo:hi])
        if coef is None:
            value = float(x[best])
            return SizeOptimum(size, n_params, Estimate(math.exp(value)), (min(basin), max(basin)), False, None,
                               tuple(curve), np.full(resamples, value), rough=True)
        vertex = -coef[1] / (2 * coef[0])
    replicates = []
    for _ in range(resamples):
        noisy = np.polyval(coef, x[lo:hi]) + rng.normal(0, sigma, hi - lo)
        c = _parabola(x[lo:hi], noisy)
        # a replicate with no minimum, or one outside the fitted stretch, is pinned to that stretch's edge
        replicates.append(float(np.clip(-c[1] / (2 * c[0]), x[lo], x[hi - 1])) if c is not None else
                          float(x[lo] if noisy[0] < noisy[-1] else x[hi - 1]))
    replicates = np.array(replicates)
    estimate = percentile_estimate(math.exp(vertex), list(np.exp(replicates)))
    cost = _cost(x, y, coef, vertex, math.log(sweep_lr), lo, hi)
    return SizeOptimum(size, n_params, estimate, (min(basin), max(basin)), False, cost, tuple(curve), replicates)


def _cost(x: np.ndarray, y: np.ndarray, coef: np.ndarray, vertex: float, at: float, lo: int, hi: int) -> float | None:
    """The loss the sweep's learning rate costs this size: from the parabola inside its stretch, else the
    measured loss at that learning rate (a grid point within half a step) above the parabola's minimum."""
    if x[lo] <= at <= x[hi - 1]:
        return float(np.polyval(coef, at) - np.polyval(coef, vertex))
    nearest = int(np.argmin(np.abs(x - at)))
    half_step = float(np.median(np.diff(x))) / 2 if len(x) > 1 else 0.0
    return float(y[nearest] - np.polyval(coef, vertex)) if abs(x[nearest] - at) <= half_step * 1.0001 else None


def analyze_transfer(runs: list[tuple[str, float, float, float]], sweep_lr: float, seed: int = 0,
                     resamples: int = RESAMPLES) -> Transfer:
    """runs: (size name, N, learning rate, loss) of the pilot grid; sweep_lr: the learning rate the sweep uses."""
    rng = np.random.default_rng(seed)
    by_size: dict[tuple[float, str], list[tuple[float, float]]] = {}
    for size, n, lr, loss in runs:
        by_size.setdefault((n, size), []).append((lr, loss))
    if len(by_size) < 2:
        raise FlopsFitError(f"a transfer check needs finished pilot runs at 2 or more sizes (got {len(by_size)}); "
                            "see the runs left out above")
    optima = tuple(size_optimum(size, n, curve, sweep_lr, rng, resamples)
                   for (n, size), curve in sorted(by_size.items()))
    log_n = np.log([s.n_params for s in optima])
    slope = float(np.polyfit(log_n, [math.log(s.lr.value) for s in optima], 1)[0])
    replicate_slopes = [float(np.polyfit(log_n, [s.replicates[i] for s in optima], 1)[0]) for i in range(resamples)]
    slope_estimate = percentile_estimate(slope, replicate_slopes)
    lrs = sorted({lr for _, _, lr, _ in runs})
    step = float(np.median(np.diff(np.log(lrs)))) if len(lrs) > 1 else math.inf
    within_step = abs(math.log(optima[-1].lr.value / optima[0].lr.value)) <= step * 1.0001
    holds_zero = slope_estimate.low is not None and slope_estimate.low <= 0 <= slope_estimate.high
    transfers = None if any(s.undetermined for s in optima) else (holds_zero or within_step)
    return Transfer(optima, slope_estimate, sweep_lr, step, transfers)



def recipe_but_lr(record, also: tuple[str, ...] = ()) -> str:
    """What every run of one pilot shares: the recipe (plugins, training knobs) but for the learning rate (and
    the training knobs in `also`)."""
    identity = dict(record.identity or {})
    training = {k: v for k, v in (identity.pop("training", None) or {}).items()
                if k != "learning_rate" and k not in also}
    return json.dumps({k: v for k, v in identity.items() if k not in POINT_FIELDS} | {"training": training},
                      sort_keys=True)


def pilot_records(store: Store) -> tuple[list, list[str]]:
    """Every result record in a pilot's folder, and the unreadable ones named (read once, for pilot_runs and
    ff_client.fit.lrgrid.pilot_grid alike)."""
    records, left = [], []
    for key in store.list():
        if not is_result_key(key):
            continue
        try:
            records.append(parse_result(store.get_json(key), f"{store.uri}/{key}"))
        except StoreError as error:
            left.append(f"{key}: unreadable: {error}")
    return records, left


def pilot_runs(store: Store, read: tuple[list, list[str]] | None = None
               ) -> tuple[list[tuple[str, float, float, float]], list[str]]:
    """(size, N, learning rate, eval loss) of every finished pilot run in the folder; what was left out, and why.
    `read`: the folder's pilot_records, when already read.

    A folder may hold pilots run twice with other settings (other training knobs, another D/N): the runs of
    the recipe with the most runs, and of each size the token count with the most runs, are analysed; the
    others are left out with the reason, never pooled."""
    found, unreadable = read or pilot_records(store)
    left, records = list(unreadable), []
    for record in found:
        lr = ((record.identity or {}).get("training") or {}).get("learning_rate")
        if record.status != "completed" or lr is None or not math.isfinite(record.eval_loss or math.nan):
            left.append(f"{record.experiment} ({record.size}, lr {lr}): {record.status}, eval loss {record.eval_loss}")
            continue
        records.append((record, float(lr)))
    if not records:
        return [], left
    recipes = Counter(recipe_but_lr(r) for r, _ in records)
    recipe = recipes.most_common(1)[0][0]
    tokens = {size: Counter(r.tokens for r, _ in records if r.size == size and recipe_but_lr(r) == recipe)
              .most_common(1)[0][0] for size in {r.size for r, _ in records if recipe_but_lr(r) == recipe}}
    runs = []
    for record, lr in records:
        label = f"{record.experiment} ({record.size}, lr {lr:g})"
        if recipe_but_lr(record) != recipe:
            left.append(f"{label}: trained with other settings than the pilot's other runs")
        elif record.tokens != tokens[record.size]:
            left.append(f"{label}: trained on {record.tokens} tokens, the pilot's other {record.size} runs on "
                        f"{tokens[record.size]}")
        else:
            runs.append((record.size, float(record.n_params), lr, float(record.eval_loss)))
    return runs, left


def basin_check(result: Transfer) -> tuple[list[str], list[str]]:
    """(sizes whose basin holds the sweep's learning rate, a warning for each size whose basin does not)."""
    inside, warnings = [], []
    for s in result.sizes:
        low, high = s.basin
        if low <= result.sweep_lr <= high and not s.undetermined:
            inside.append(s.size)
            continue
        where = ("at the grid's edge, so its basin is not known" if s.at_edge else
                 "on a rough curve (not one valley), so its basin is not known" if s.rough
                 else f"its basin (within {BASIN:.0%} of the best loss) is {low:.3g} - {high:.3g}")
        cost = f", costing {s.cost_of_sweep_lr:.4f} in loss there" if s.cost_of_sweep_lr is not None else ""
        warnings.append(f"the sweep's learning rate {result.sweep_lr:.3g} is outside {s.size}'s basin by the "
                        f"transfer pilot: LR* {s.lr.value:.3g}, {where}{cost}; its points may lie above a tuned "
                        "run's loss and bend the fit (ffctl transfer shows the curves)")
    return inside, warnings

