"""Implausible runs: results no scaling law should be fitted to, excluded and named (never silently).

Diverged and unreadable records, and records with a non-finite or non-positive loss, are excluded when the
store is read (ff_client.fit.points). Here: a run no better than an untrained model (its loss at or above
the record's untrained_loss, where the data plugin knows it, e.g. ln 256 for bytes), and, within the sweep,
a run whose loss is worse than the same model
size trained on fewer tokens, by more than 3 standard deviations of the difference of two runs (the sweep's
own noise, ff_client.fit.noise, times sqrt 2). More data never hurts a model trained to its own schedule's
end, so such a run broke (a bad node, a data problem, a schedule that did not end). Points that are merely
far off a fitted law are not implausible: they are flagged (ff_client.fit.outliers), not dropped.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ff_client.fit.points import Point

SIGMAS = 3.0


def untrained(points: tuple[Point, ...]) -> list[tuple[Point, str]]:
    """(run, why) for each run whose loss is no better than a model that learned nothing."""
    return [(p, f"implausible: loss {p.loss:.4g} is no better than an untrained model's ({p.untrained_loss:.4g}); "
                "the run learned nothing") for p in points
            if p.untrained_loss is not None and p.loss >= p.untrained_loss]


def non_monotone(points: tuple[Point, ...], noise: float) -> list[tuple[Point, str]]:
    """(run, why) for each run worse than the same size on fewer tokens by more than SIGMAS x sqrt(2) x noise."""
    by_size: dict[float, list[Point]] = defaultdict(list)
    for p in points:
        by_size[p.n_params].append(p)
    limit = SIGMAS * math.sqrt(2) * noise
    found = []
    for runs in by_size.values():
        best: Point | None = None
        for p in sorted(runs, key=lambda r: r.tokens):
            if best is not None and p.tokens > best.tokens and math.log(p.loss / best.loss) > limit:
                found.append((p, f"implausible: loss {p.loss:.4g} after D={p.tokens:.3g} tokens is worse "
                                                f"than the same size (N={p.n_params:.3g}) after D={best.tokens:.3g} "
                                                f"(loss {best.loss:.4g}) by more than {SIGMAS:g} sigma of the sweep's "
                                                f"noise ({noise:.2%}); the run likely broke"))
            elif best is None or p.loss < best.loss:
                best = p
    return found
