"""The observations a fit sees: one Point per finished experiment, and every exclusion with its reason."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ff_core.errors import StoreError
from ff_core.layout import RESULT_FILE, is_result_key
from ff_core.results import ResultRecord, parse_result
from ff_core.store import Store


@dataclass(frozen=True)
class Point:
    """A trained (N, D) pair and its held-out loss; `budget` is the nominal compute budget it was planned for."""

    n_params: float
    tokens: float
    loss: float
    budget: float
    flops: float
    label: str = ""
    unique_tokens: float | None = None  # distinct tokens behind `tokens` (fewer means repeated data)
    untrained_loss: float | None = None  # the loss of a model that learned nothing, where known


@dataclass(frozen=True)
class Exclusion:
    label: str
    reason: str


@dataclass(frozen=True)
class Observations:
    sweep: str
    points: tuple[Point, ...]
    excluded: tuple[Exclusion, ...] = field(default=())
    records: tuple[ResultRecord, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())  # what the reader flagged without excluding (become warnings)
    ladder: tuple[ResultRecord, ...] = field(default=())  # over-training ladder runs: their own section, not a budget


def point_from_record(record: ResultRecord) -> Point:
    return Point(
        n_params=float(record.n_params), tokens=float(record.tokens), loss=float(record.eval_loss),
        budget=record.budget, flops=record.flops.get("planned", record.flops["6nd"]), label=record.experiment,
        unique_tokens=None if record.unique_tokens is None else float(min(record.unique_tokens, record.tokens)),
        untrained_loss=record.untrained_loss,
    )


def load_observations(store: Store, recipe: str | None = None, all_recipes: bool = False) -> Observations:
    """Read every result.json under the store; unreadable and diverged records are excluded, never silently,
    and records of another recipe than the current plan's are set aside and named (ff_client.fit.provenance)."""
    from ff_client.fit.provenance import missing_results, select

    keys = [k for k in store.list() if is_result_key(k)]
    if not keys:
        raise StoreError(f"{store.uri}: no results (no */{RESULT_FILE}); train with `ffctl run SWEEP` first")
    records, excluded = [], []
    for key in keys:
        try:
            records.append(parse_result(store.get_json(key), f"{store.uri}/{key}"))
        except StoreError as error:
            excluded.append(Exclusion(key, f"unreadable: {error}"))
    sweeps = sorted({r.sweep for r in records})
    if len(sweeps) > 1:
        raise StoreError(
            f"{store.uri} holds results of several sweeps ({', '.join(sweeps)}); "
            f"analyze one of them, e.g. {store.uri}/{sweeps[0]}"
        )
    notes = ()
    if records:
        notes = tuple(n for n in [missing_results(store, sweeps[0], records)] if n)
        records, set_aside = select(records, store, sweeps[0], recipe, all_recipes)
        excluded += [Exclusion(label, reason) for label, reason in set_aside]
    points, ladder, seen = [], [], {}
    for record in records:
        same = seen.setdefault((record.n_params, record.tokens, record.eval_loss), record.experiment)
        if same != record.experiment and record.eval_loss is not None:  # a copied record: one point, counted once
            excluded.append(Exclusion(record.experiment, f"duplicate of {same} (the same N={record.n_params}, "
                                                         f"D={record.tokens} and loss): counted once"))
        elif record.status != "completed" or record.eval_loss is None:
            excluded.append(Exclusion(record.experiment, f"{record.status} (N={record.n_params}, D={record.tokens})"))
        elif not (math.isfinite(record.eval_loss) and record.eval_loss > 0):
            excluded.append(Exclusion(record.experiment, f"implausible: eval loss {record.eval_loss} is not a positive "
                                                         f"finite number (N={record.n_params}, D={record.tokens})"))
        elif (record.identity or {}).get("ladder") is not None:
            ladder.append(record)
        else:
            points.append(point_from_record(record))
    if not records:
        raise StoreError(f"{store.uri}: every result record is unreadable: {_unreadable(store, excluded)}")
    return Observations(sweeps[0], tuple(points), tuple(excluded), tuple(records), notes, tuple(ladder))


def _unreadable(store: Store, excluded: list[Exclusion]) -> str:
    """The problems of unreadable records, each once with how many records have it and one of them; with the
    advice to upgrade when records carry fields this ffctl does not know (a newer trainer wrote them)."""
    problems: dict[str, list[str]] = {}
    for e in excluded:
        problem = e.reason.removeprefix("unreadable: ").removeprefix(f"{store.uri}/{e.label}: ")
        problems.setdefault(problem, []).append(e.label)
    parts = [f"{labels[0]}: {problem}" if len(labels) == 1 else f"{len(labels)} records (e.g. {labels[0]}): {problem}"
             for problem, labels in sorted(problems.items(), key=lambda item: -len(item[1]))]
    newer = any("Extra inputs are not permitted" in problem for problem in problems)
    return "; ".join(parts) + ("; fields this ffctl does not know come from a newer flops-fit: upgrade ffctl"
                               if newer else "")
