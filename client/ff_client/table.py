"""The Chinchilla-style table (cf. Hoffmann et al. 2022, Table 3): compute-optimal N, D, D/N and loss per budget.

Written as markdown, csv, LaTeX (booktabs) or json; every value with its bootstrap interval when known.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from ff_client.uncertainty import Interval

EXTRAPOLATE = (10.0, 100.0)  # beyond the largest budget, as multiples of it
FORMATS = ("md", "csv", "tex", "json")


@dataclass(frozen=True)
class Row:
    approach: str
    flops: float
    n_opt: Interval
    d_opt: Interval
    l_opt: Interval
    kind: str  # "sweep" (a budget of the sweep) | "extrapolated" | "target" (asked for)

    @property
    def tokens_per_param(self) -> float:
        return self.d_opt.value / self.n_opt.value


def table_budgets(budgets, targets) -> list[tuple[float, str]]:
    """The sweep's budgets, 10x and 100x its largest, and the targets asked for, each with its kind."""
    budgets = sorted(set(budgets))
    rows = [(c, "sweep") for c in budgets] + [(budgets[-1] * m, "extrapolated") for m in EXTRAPOLATE]
    seen = {c for c, _ in rows}
    return rows + [(c, "target") for c in sorted(set(targets)) if c not in seen]


def optimal_rows(budgets: list[tuple[float, str]], predictions: dict[str, dict[str, Interval]]) -> list[Row]:
    """Rows for each approach with predictions, from its intervals keyed '<quantity>@<flops>'."""
    rows = []
    for approach, values in predictions.items():
        if not values:
            continue
        for compute, kind in budgets:
            key = f"@{compute:.6g}"
            rows.append(Row(approach, compute, values["n_opt" + key], values["d_opt" + key], values["l_opt" + key], kind))
    return rows


def _fmt(interval: Interval, spec: str, plus_minus: str = "[{}, {}]") -> str:
    text = format(interval.value, spec)
    if interval.low is not None:
        text += " " + plus_minus.format(format(interval.low, spec), format(interval.high, spec))
    return text


_HEADER = ("approach", "FLOPs", "N_opt", "D_opt", "D/N", "L_opt", "budget")


def _cells(row: Row) -> tuple[str, ...]:
    return (row.approach, f"{row.flops:.3g}", _fmt(row.n_opt, ".3g"), _fmt(row.d_opt, ".3g"),
            f"{row.tokens_per_param:.1f}", _fmt(row.l_opt, ".4f"), row.kind)


def to_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_latex(rows: list[Row]) -> str:
    """A booktabs tabular (values with their [low, high] intervals), ready for \\input."""
    lines = [r"\begin{tabular}{llllrll}", r"\toprule",
             r"Approach & FLOPs & $N_{opt}$ & $D_{opt}$ & $D/N$ & $L_{opt}$ & Budget \\", r"\midrule"]
    for r in rows:
        cells = [c.replace("_", r"\_") for c in _cells(r)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _record(row: Row) -> dict:
    return {"approach": row.approach, "flops": row.flops, "n_opt": row.n_opt.to_json(), "d_opt": row.d_opt.to_json(),
            "tokens_per_param": row.tokens_per_param, "l_opt": row.l_opt.to_json(), "kind": row.kind}


def to_json(rows: list[Row]) -> str:
    return json.dumps([_record(r) for r in rows], indent=1) + "\n"


def to_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    quantities = ("n_opt", "d_opt", "l_opt")
    writer.writerow(["approach", "flops", *[f"{q}{s}" for q in quantities for s in ("", "_ci_low", "_ci_high")],
                     "tokens_per_param", "kind"])
    for r in rows:
        cells = []
        for q in quantities:
            interval = getattr(r, q)
            cells += [repr(interval.value), "" if interval.low is None else repr(interval.low),
                      "" if interval.high is None else repr(interval.high)]
        writer.writerow([r.approach, repr(r.flops), *cells, repr(r.tokens_per_param), r.kind])
    return buffer.getvalue()


WRITERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex, "json": to_json}
