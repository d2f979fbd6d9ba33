"""External points for a fit: a CSV or JSON file of (n_params, tokens, loss), e.g. published results.

Columns: n_params, tokens, loss (required); flops, budget, unique_tokens (optional). Without `flops`,
FLOPs are 6 * n_params * tokens. Without `budget`, a point's isoFLOP budget is its FLOPs rounded to two
significant digits, which groups the points of one published isoFLOP curve together. A row repeating an
earlier one (same n_params, tokens and loss) is counted once and named; a `budget` more than 2x away from the
row's FLOPs is flagged (the point would sit on an isoFLOP curve it is not on).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ff_client.fit.points import Exclusion, Observations, Point
from ff_core.errors import FlopsFitError
from ff_core.flops import training_flops

REQUIRED = ("n_params", "tokens", "loss")
OPTIONAL = ("flops", "budget", "unique_tokens")


class DataFileError(FlopsFitError):
    """A points file that cannot be read; the message names the row and column."""


def read_rows(path: Path, required: tuple[str, ...] = REQUIRED) -> list[dict]:
    """The rows of a CSV (comma or semicolon) or JSON file (a list of objects, or {"points": [...]}), as dicts;
    a CSV header lacking one of `required` is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (spreadsheet exports) is not a column name
    except OSError as error:
        raise DataFileError(f"{path}: cannot read ({error.strerror})") from None
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataFileError(f"{path}: not valid JSON ({error})") from None
        if isinstance(rows, dict) and isinstance(rows.get("points"), list):
            rows = rows["points"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DataFileError(f"{path}: expected a list of objects (or {{\"points\": [...]}})")
        return rows
    if path.suffix != ".csv":
        raise DataFileError(f"{path}: use a .csv or .json file")
    lines = text.splitlines()
    header = lines[0] if lines else ""
    delimiter = ";" if header.count(";") > header.count(",") else ","  # European spreadsheets write semicolons
    reader = csv.DictReader(lines, delimiter=delimiter, skipinitialspace=True)
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
    missing = [c for c in required if c not in reader.fieldnames]
    if missing:
        raise DataFileError(f"{path}: missing column(s) {', '.join(missing)}; the header must name "
                            f"{', '.join(required)}")
    return list(reader)


def number(path: Path, row: int, column: str, value) -> float:
    """A positive finite number from a cell, or an error naming its row and column."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataFileError(f"{path}: row {row}, column {column!r}: {value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise DataFileError(f"{path}: row {row}, column {column!r}: {value!r} must be a positive number")
    return number


def _budget_of(flops: float) -> float:
    return float(f"{flops:.2g}")


def load_points(path: str | Path) -> Observations:
    """Points from a CSV or JSON file; every malformed value is an error naming its row and column."""
    path = Path(path)
    points, excluded, notes, seen = [], [], [], {}
    for row, values in enumerate(read_rows(path), start=1):
        for column in REQUIRED:
            if values.get(column) in (None, ""):
                raise DataFileError(f"{path}: row {row}, column {column!r}: missing value")
        n, d, loss = (number(path, row, c, values[c]) for c in REQUIRED)
        extra = {c: number(path, row, c, values[c]) for c in OPTIONAL if values.get(c) not in (None, "")}
        flops = extra.get("flops", training_flops(n, d))
        if (n, d, loss) in seen:
            excluded.append(Exclusion(f"row {row}", f"duplicate of row {seen[n, d, loss]}: counted once"))
            continue
        seen[n, d, loss] = row
        budget = extra.get("budget", _budget_of(flops))
        if not 0.5 <= flops / budget <= 2:
            notes.append(f"{path.name} row {row}: budget {budget:.3g} but the point's FLOPs are {flops:.3g} "
                         "(the flops column, or 6 n_params tokens): it is fitted on an isoFLOP curve it does not "
                         "lie on")
        points.append(Point(n, d, loss, budget, flops, f"row {row}", extra.get("unique_tokens")))
    if not points:
        raise DataFileError(f"{path}: no rows")
    return Observations(path.stem, tuple(points), tuple(excluded), notes=tuple(notes))
