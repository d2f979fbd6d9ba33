"""Which result records belong in one fit: one recipe at a time, never two pooled silently.

Every record carries its experiment's identity (ff_core.plan.experiment_identity): its point (budget, size
knobs, tokens) and its recipe (plugins and their arguments, training knobs). A record whose identity does
not hash to its own id was edited or corrupted, and is excluded. The records of one store folder may come
from several recipes (the same sweep rerun with another learning rate, say): the current plan's recipe
(the sweep.json the latest `ffctl run` wrote) is fitted, the others are set aside and named with the field
that differs; `--recipe HASH` picks another, `--all-recipes` pools them on purpose, and even then two
recipes at one (size, budget) point are refused. Records written before identities existed have no recipe
and are taken as they are.
"""

from __future__ import annotations

from collections import defaultdict

from ff_core.errors import FlopsFitError, StoreError
from ff_core.layout import SWEEP_FILE, sweep_key
from ff_core.plan import POINT_FIELDS, Plan, identity_id, plan_sweep, recipe_hash
from ff_core.results import ResultRecord
from ff_core.spec import parse_sweep
from ff_core.store import Store


def recipe_of(record: ResultRecord) -> str | None:
    return None if record.identity is None else recipe_hash(record.identity)


def stored_plan(store: Store, sweep: str) -> Plan | None:
    """The plan of the sweep the latest `ffctl run` wrote into the store, when there is a readable one."""
    for key in (sweep_key(sweep), SWEEP_FILE):
        try:
            return plan_sweep(parse_sweep(store.get_json(key), f"{store.uri}/{key}"))
        except FlopsFitError:
            continue
    return None


def current_recipe(store: Store, sweep: str) -> str | None:
    """The recipe of the plan the latest `ffctl run` wrote into the store, when there is one."""
    plan = stored_plan(store, sweep)
    return recipe_hash(plan.experiments[0].identity) if plan is not None and plan.experiments else None


def missing_results(store: Store, sweep: str, records: list[ResultRecord]) -> str | None:
    """A note when the stored plan holds experiments that have no result record (not trained yet, or failed)."""
    plan = stored_plan(store, sweep)
    if plan is None:
        return None
    have = {r.experiment for r in records}
    absent = [e for e in plan.experiments if e.id not in have]
    if not absent:
        return None
    first = absent[0]
    return (f"{len(absent)} of the {len(plan.experiments)} experiments the stored plan holds have no result (not "
            f"trained yet, still running, or failed), e.g. {first.id} (C={first.budget:.3g}, N={first.n_params:.3g}): "
            f"the fit sees {len(plan.experiments) - len(absent)} of them; `ffctl run` the sweep again to train the "
            "rest")


def _flat(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def difference(a: dict, b: dict) -> str:
    """What differs between two recipes, e.g. 'training.learning_rate 0.003 vs 0.001'."""
    fa, fb = _flat(a), _flat(b)
    keys = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k) and k.split(".")[0] not in POINT_FIELDS)
    return "; ".join(f"{k} {fa.get(k)!r} vs {fb.get(k)!r}" for k in keys[:3]) or "their identities"


def select(records: list[ResultRecord], store: Store, sweep: str, recipe: str | None = None,
           all_recipes: bool = False) -> tuple[list[ResultRecord], list[tuple[str, str]]]:
    """(the records to fit, (label, reason) for each one set aside)."""
    set_aside = [(r.experiment, "its identity does not hash to its id: the record was edited or corrupted")
                 for r in records if r.identity is not None and identity_id(r.identity) != r.experiment]
    records = [r for r in records if r.identity is None or identity_id(r.identity) == r.experiment]
    groups: dict[str | None, list[ResultRecord]] = defaultdict(list)
    for r in records:
        groups[recipe_of(r)].append(r)
    known = [g for g in groups if g is not None]
    if recipe is not None and recipe not in groups:
        raise StoreError(f"{store.uri}: no records of recipe {recipe}; its recipes: "
                         f"{', '.join(known) or 'none recorded'}")
    if len(known) <= 1 and recipe is None:
        return records, set_aside
    if all_recipes:
        _refuse_collisions(records, store)
        return records, set_aside
    chosen = recipe or current_recipe(store, sweep)
    if chosen not in groups:
        counts = ", ".join(f"{g} ({len(groups[g])} records)" for g in known)
        first, second = groups[known[0]][0].identity, groups[known[1]][0].identity
        raise StoreError(f"{store.uri} holds results of {len(known)} recipes: {counts}; they differ in "
                         f"{difference(first, second)}. Fit one with --recipe HASH, or pool them with --all-recipes")
    reference = groups[chosen][0].identity
    kept = groups[chosen] + groups.get(None, [])
    set_aside += [(r.experiment, f"another recipe ({g}: {difference(r.identity, reference)}); fit it with --recipe {g}")
                  for g in known if g != chosen for r in groups[g]]
    return kept, set_aside


def _refuse_collisions(records: list[ResultRecord], store: Store) -> None:
    """Two recipes at one (size, budget) point would be one point fitted twice, from two recipes."""
    at: dict[tuple, set] = defaultdict(set)
    for r in records:
        at[r.n_params, r.budget].add(recipe_of(r))
    clash = [(n, c) for (n, c), recipes in at.items() if len(recipes) > 1]
    if clash:
        n, c = clash[0]
        raise StoreError(f"{store.uri}: --all-recipes would pool {len(at[n, c])} recipes at N={n}, C={c:.3g} "
                         f"(and {len(clash) - 1} more points); fit each recipe with --recipe HASH")
