"""A published learning-rate grid, analysed as a transfer pilot without training (`ffctl transfer --data FILE`).

Columns: n_params, tokens, lr, loss (required), batch (optional: each batch size is a pilot of its own, never
mixed into another's curve; the same run twice is an error naming both rows). A loss that is empty, `nan`,
`inf` or `diverged` is a run that diverged: it says the learning rate is too high, so it is never a cell's best
point; a cell whose best finite point is its largest finite learning rate is then at the grid's edge (flagged,
never extrapolated), as is one whose best is its smallest. Each token count (and batch) is one pilot: its sizes'
optima (ff_client.fit.transfer: a local parabola in ln LR with a bootstrap interval) and the drift of ln LR*
with ln N. The learning rate the drift is judged against is `lr` when given, else the smallest size's LR*: what
carrying it to every size costs. Across pilots, the law LR* = c N^a D^b with its hold-out check on the largest
size (ff_client.fit.lrlaw). A grid at 3 or more batch sizes also gets each cell's joint optimum of learning rate
and batch, and the laws LR*(N, D) at B* and B*(D) through those (ff_client.fit.jointlaw): Step Law's design, in which
each size has token counts of its own. A grid with neither a pilot nor a joint optimum to analyse is an error saying
what was left out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ff_client.fit.datafile import DataFileError, number, read_rows
from ff_client.fit.jointlaw import MIN_BATCHES, JointAnalysis, analyze_joint
from ff_client.fit.lrlaw import BatchLaw, LrLaw, fit_batch_law, fit_lr_laws
from ff_client.fit.transfer import RESAMPLES, Transfer, analyze_transfer, pilot_records, recipe_but_lr
from ff_client.text import aligned
from ff_core.errors import FlopsFitError
from ff_core.store import Store

REQUIRED = ("n_params", "tokens", "lr", "loss")
DIVERGED = ("", "nan", "inf", "+inf", "diverged")
MIN_RATES = 3  # finite learning rates a cell needs for a parabola


@dataclass(frozen=True)
class GridRun:
    n_params: float
    tokens: float
    lr: float
    loss: float | None  # None: diverged
    batch: float | None = None


@dataclass(frozen=True)
class GridAnalysis:
    """One Transfer per token count with 2+ usable sizes, and what was left out and why."""

    pilots: tuple[tuple[float, float | None, Transfer], ...]  # (tokens, batch, its transfer analysis)
    left_out: tuple[str, ...]
    diverged: int
    laws: tuple[LrLaw, ...] = ()  # LR*(N, D), one per batch size
    batch_law: BatchLaw | None = None  # B*(D), from 3 or more batch sizes
    joint: JointAnalysis | None = None  # each cell's joint optimum (LR x batch) and the laws through it
    by_ratio: bool = False  # pilots keyed by D/N (each size at D = R N), not by a shared token count

    def text(self) -> str:
        parts = []
        for tokens, batch, result in self.pilots:
            head = f"D/N = {tokens:.3g}" if self.by_ratio else f"D = {tokens:.3g} tokens"
            parts += [f"## {head}{_batch(batch)}", result.text(), ""]
        parts += [part for law in self.laws for part in (law.text(), "")]
        parts += [self.batch_law.text(), ""] if self.batch_law else []
        parts += [self.joint.text(), ""] if self.joint else []
        parts += [f"left out: {reason}" for reason in self.left_out]
        if self.diverged:
            parts.append(f"{self.diverged} diverged run(s): counted as learning rates too high")
        return "\n".join(parts).rstrip()

    def to_json(self) -> dict:
        return {"pilots": [{"tokensPerParam" if self.by_ratio else "tokens": tokens, "batch": batch} | result.to_json()
                           for tokens, batch, result in self.pilots],
                "laws": [law.to_json() for law in self.laws],
                "batchLaw": self.batch_law.to_json() if self.batch_law else None,
                "joint": self.joint.to_json() if self.joint else None,
                "leftOut": list(self.left_out), "diverged": self.diverged}

    def summary(self) -> str:
        """Per token count, ln LR*'s slope in ln N with its interval, as one table."""
        rows = [("D/N" if self.by_ratio else "D (tokens)", "batch", "sizes", "d ln LR* / d ln N", "interval",
                 "verdict")]
        for tokens, batch, r in self.pilots:
            interval = f"[{r.slope.low:+.3f}, {r.slope.high:+.3f}]" if r.slope.low is not None else "-"
            why = "/".join(w for w, flagged in (("edge", any(s.at_edge for s in r.sizes)),
                                                ("rough", any(s.rough for s in r.sizes))) if flagged)
            verdict = {True: "transfers", False: "drifts", None: f"undetermined ({why})"}[r.transfers]
            rows.append((f"{tokens:.3g}", "-" if batch is None else f"{batch:g}", str(len(r.sizes)),
                         f"{r.slope.value:+.3f}", interval, verdict))
        laws = [law.formula() + _batch(law.batch) for law in self.laws]
        laws += [self.batch_law.formula()] if self.batch_law else []
        if self.joint:
            laws += [f"at B*: {law.formula()}" for law in (self.joint.law, self.joint.batch_law) if law]
        return "\n".join([aligned(rows), *laws] if len(rows) > 1 else laws)


def _batch(batch: float | None) -> str:
    return "" if batch is None else f", batch {batch:g}"


def load_lr_grid(path: str | Path) -> list[GridRun]:
    """The runs of a grid file; a malformed value, or one cell given twice, is an error naming the rows."""
    path = Path(path)
    runs, seen = [], {}
    for row, values in enumerate(read_rows(path, REQUIRED), start=1):
        missing = [c for c in REQUIRED if c not in values]
        if missing:
            raise DataFileError(f"{path}: row {row} has no {', '.join(missing)}")
        n, d, lr = (number(path, row, c, values[c]) for c in REQUIRED[:3])
        batch = number(path, row, "batch", values["batch"]) if values.get("batch") not in (None, "") else None
        cell = (n, d, lr, batch)
        if cell in seen:
            raise DataFileError(f"{path}: rows {seen[cell]} and {row} are the same run (n_params {n:g}, tokens {d:g}, "
                                f"lr {lr:g}{_batch(batch)}); keep one, or tell them apart with a batch column")
        seen[cell] = row
        raw = values["loss"]
        if raw is None or str(raw).strip().lower() in DIVERGED:
            runs.append(GridRun(n, d, lr, None, batch))
            continue
        loss = number(path, row, "loss", raw)
        runs.append(GridRun(n, d, lr, loss if math.isfinite(loss) else None, batch))
    if not runs:
        raise DataFileError(f"{path}: no rows")
    return runs


def analyze_grid(runs: list[GridRun], lr: float | None = None, seed: int = 0,
                 resamples: int = RESAMPLES) -> GridAnalysis:
    """Each (token count, batch) pilot: the sizes with MIN_RATES finite learning rates, analysed as ffctl transfer
    does; with MIN_BATCHES batch sizes, each cell's joint optimum too. Neither is an error saying what was left
    out."""
    left, pilots, lonely = [], [], {}
    by_ratio = _by_ratio(runs)
    key_of = (lambda r: _ratio(r)) if by_ratio else (lambda r: r.tokens)
    for tokens, batch in sorted({(key_of(r), r.batch) for r in runs}, key=lambda k: (k[0], k[1] or 0.0)):
        where = f"{'D/N' if by_ratio else 'D'}={tokens:.3g}{_batch(batch)}"
        cells: dict[float, list[GridRun]] = {}
        for r in runs:
            if (key_of(r), r.batch) == (tokens, batch):
                cells.setdefault(r.n_params, []).append(r)
        usable = []
        for n, cell in sorted(cells.items()):
            finite = [r for r in cell if r.loss is not None]
            if len({r.lr for r in finite}) < MIN_RATES:
                left.append(f"N={n:.3g}, {where}: {len({r.lr for r in finite})} finite learning rate(s); "
                            f"a parabola needs {MIN_RATES}")
                continue
            usable += [(f"N={n:.3g}", n, r.lr, r.loss) for r in finite]
        if len({n for _, n, _, _ in usable}) < 2:
            lonely.setdefault(tokens, []).append(batch)
            continue
        result = analyze_transfer(usable, lr or 1.0, seed, resamples)
        if lr is None:  # the smallest size's LR*, carried to every size
            result = analyze_transfer(usable, result.sizes[0].lr.value, seed, resamples)
        pilots.append((tokens, batch, replace(result, judged="--lr" if lr is not None else "the smallest size's LR*")))
    for tokens, batches in lonely.items():  # one line per token count, however many batch sizes it has
        at = "" if batches == [None] else f" (batch {', '.join(f'{b:g}' for b in batches if b is not None)})"
        left.append(f"{'D/N' if by_ratio else 'D'}={tokens:.3g}{at}: fewer than 2 sizes with a usable learning-rate "
                    "curve; no drift")
    joint = None
    if len({r.batch for r in runs if r.batch is not None}) >= MIN_BATCHES:
        joint = analyze_joint([(r.n_params, r.tokens, r.lr, r.batch, r.loss) for r in runs], _grid_step(runs), seed,
                              resamples)
    if not pilots and joint is None:
        raise FlopsFitError("no token count has 2 or more sizes with a learning-rate curve to analyse, and no cell "
                            f"has {MIN_BATCHES} batch sizes for a joint optimum: " + "; ".join(left))
    tokens_of = _tokens_of(runs) if by_ratio else (lambda key, batch, n: key)
    return GridAnalysis(tuple(pilots), tuple(left), sum(r.loss is None for r in runs),
                        fit_lr_laws(tuple(pilots), tokens_of, "D/N" if by_ratio else "D"),
                        fit_batch_law(tuple(pilots), seed, tokens_of=tokens_of),
                        joint, by_ratio)


def _ratio(r: GridRun) -> float:
    return float(f"{r.tokens / r.n_params:.2g}")


def _by_ratio(runs: list[GridRun]) -> bool:
    """A pilot grid of ffctl transfer's design (each size at D = R N) shares no token count across sizes, but
    D/N: its pilots are then one per D/N (and batch), each size at its own D."""
    sizes_at: dict[float, set[float]] = {}
    sizes_of: dict[float, set[float]] = {}
    for r in runs:
        sizes_at.setdefault(r.tokens, set()).add(r.n_params)
        sizes_of.setdefault(_ratio(r), set()).add(r.n_params)
    return (not any(len(s) >= 2 for s in sizes_at.values())) and any(len(s) >= 2 for s in sizes_of.values())


def _tokens_of(runs: list[GridRun]):
    """(D/N, batch, N) -> that size's D in a by-ratio grid (batch None: the median over its batches)."""
    exact = {(_ratio(r), r.batch, r.n_params): r.tokens for r in runs}

    def tokens_of(key: float, batch: float | None, n_params: float) -> float:
        if batch is not None or (key, None, n_params) in exact:
            return exact[(key, batch, n_params)]
        return float(np.median([d for (q, _, n), d in exact.items() if (q, n) == (key, n_params)]))

    return tokens_of


def _grid_step(runs: list[GridRun]) -> float:
    """ln of the factor between a grid's neighbouring learning rates: the median over its curves."""
    steps = []
    for key in {(r.n_params, r.tokens, r.batch) for r in runs}:
        rates = np.log(sorted({r.lr for r in runs if (r.n_params, r.tokens, r.batch) == key}))
        steps += list(np.diff(rates))
    return float(np.median(steps)) if steps else 0.0


def pilot_grid(store: Store, read: tuple[list, list[str]] | None = None) -> tuple[list[GridRun], list[str]]:
    """The pilot of several batch sizes or token counts as grid runs (GridRun: N, D, learning rate, eval loss or
    None when it diverged, batch in tokens), and what was left out: the runs of the recipe with the most runs (but
    for learning rate and batch) are analysed, the others named, never pooled. `read`: the folder's
    ff_client.fit.transfer.pilot_records, when already read."""
    records, unreadable = read or pilot_records(store)
    left = list(unreadable)
    recipes = Counter(recipe_but_lr(r, ("global_batch_tokens",)) for r in records)
    if not recipes:
        return [], left
    recipe = recipes.most_common(1)[0][0]
    runs = []
    for r in records:
        training = (r.identity or {}).get("training") or {}
        label = f"{r.experiment} ({r.size}, lr {training.get('learning_rate')})"
        if recipe_but_lr(r, ("global_batch_tokens",)) != recipe:
            left.append(f"{label}: trained with other settings than the pilot's other runs")
        elif "learning_rate" not in training:
            left.append(f"{label}: its record does not say its learning rate")
        elif r.status == "diverged" or (r.status == "completed" and math.isfinite(r.eval_loss or math.nan)):
            runs.append(GridRun(float(r.n_params), float(r.tokens), float(training["learning_rate"]),
                                None if r.status == "diverged" else float(r.eval_loss),
                                _batch_of(training)))
        else:
            left.append(f"{label}: {r.status}, eval loss {r.eval_loss}")
    return runs, left


def _batch_of(training: dict) -> float | None:
    batch = training.get("global_batch_tokens")
    return None if batch is None else float(batch)
