"""The Chinchilla-style table (cf. Hoffmann et al. 2022, Table 3): compute-optimal N, D, D/N and loss per budget."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from ff_client.isoflop import IsoflopFit
from ff_client.parametric import ParametricFit

EXTRAPOLATE = (10.0, 100.0)  # beyond the largest budget, as multiples of it


@dataclass(frozen=True)
class Row:
    approach: str
    flops: float
    n_opt: float
    d_opt: float
    l_opt: float
    extrapolated: bool

    @property
    def tokens_per_param(self) -> float:
        return self.d_opt / self.n_opt


def optimal_rows(budgets: list[float], isoflop: IsoflopFit | None, parametric: ParametricFit | None) -> list[Row]:
    """One row per (approach, budget): the sweep's budgets, then 10x and 100x its largest, extrapolated."""
    budgets = sorted(set(budgets))
    targets = [(c, False) for c in budgets] + [(budgets[-1] * m, True) for m in EXTRAPOLATE]
    predictors = []
    if isoflop is not None and isoflop.n_opt is not None:
        predictors.append(("isoflop", isoflop.predict))
    if parametric is not None:
        predictors.append(("parametric", parametric.predict))
    rows = []
    for approach, predict in predictors:
        for compute, extrapolated in targets:
            p = predict(compute)
            rows.append(Row(approach, compute, p["n_opt"], p["d_opt"], p["l_opt"], extrapolated))
    return rows


_HEADER = ("approach", "FLOPs", "N_opt", "D_opt", "D/N", "L_opt", "extrapolated")


def _cells(row: Row) -> tuple[str, ...]:
    return (row.approach, f"{row.flops:.3g}", f"{row.n_opt:.3g}", f"{row.d_opt:.3g}",
            f"{row.tokens_per_param:.1f}", f"{row.l_opt:.4f}", "yes" if row.extrapolated else "")


def to_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["approach", "flops", "n_opt", "d_opt", "tokens_per_param", "l_opt", "extrapolated"])
    for r in rows:
        writer.writerow([r.approach, repr(r.flops), repr(r.n_opt), repr(r.d_opt), repr(r.tokens_per_param),
                         repr(r.l_opt), str(r.extrapolated).lower()])
    return buffer.getvalue()
