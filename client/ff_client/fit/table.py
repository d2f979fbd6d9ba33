"""The Chinchilla-style table (cf. Hoffmann et al. 2022, Table 3): compute-optimal N, D, D/N and loss per budget.

Written as markdown, csv, LaTeX (booktabs) or json; every value with its bootstrap interval when known.
"""

from __future__ import annotations

import csv
import io
import json

from ff_client.fit.approach import QUANTITIES, Row
from ff_client.fit.estimate import Estimate

EXTRAPOLATE = (10.0, 100.0)  # beyond the largest budget, as multiples of it


MIN_BUDGETS_TO_EXTRAPOLATE = 3


def table_budgets(budgets, targets) -> list[tuple[float, str]]:
    """The sweep's budgets, 10x and 100x its largest (with 3 or more budgets), and the targets asked for."""
    budgets = sorted(set(budgets))
    rows = [(c, "sweep") for c in budgets]
    if len(budgets) >= MIN_BUDGETS_TO_EXTRAPOLATE:
        rows += [(budgets[-1] * m, "extrapolated") for m in EXTRAPOLATE]
    seen = {c for c, _ in rows}
    return rows + [(c, "target") for c in sorted(set(targets)) if c not in seen]


def _fmt(interval: Estimate, spec: str, plus_minus: str = "[{}, {}]") -> str:
    text = format(interval.value, spec)
    if interval.low is not None:
        text += " " + plus_minus.format(format(interval.low, spec), format(interval.high, spec))
    return text


_HEADER = ("approach", "FLOPs", "N_opt", "D_opt", "D/N", "L_opt", "budget")


def _cells(row: Row) -> tuple[str, ...]:
    return (row.approach, f"{row.flops:.3g}", _fmt(row.n_opt, ".3g"), _fmt(row.d_opt, ".3g"),
            f"{row.tokens_per_param:.1f}", _fmt(row.l_opt, ".4f"), row.label)


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


def to_json(rows: list[Row]) -> str:
    return json.dumps([r.to_json() for r in rows], indent=1) + "\n"


def to_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["approach", "flops", *[f"{q}{s}" for q in QUANTITIES for s in ("", "_ci_low", "_ci_high")],
                     "tokens_per_param", "kind", "reach"])
    for r in rows:
        cells = []
        for q in QUANTITIES:
            interval = getattr(r, q)
            cells += [repr(interval.value), "" if interval.low is None else repr(interval.low),
                      "" if interval.high is None else repr(interval.high)]
        writer.writerow([r.approach, repr(r.flops), *cells, repr(r.tokens_per_param), r.kind, repr(r.reach)])
    return buffer.getvalue()


WRITERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex, "json": to_json}
FORMATS = tuple(WRITERS)  # the table formats, in the order --format lists them
