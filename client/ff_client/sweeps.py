"""Read a sweep file and make it plannable (nParams filled from the model plugin when missing); grow a sweep."""

from __future__ import annotations

import copy
from collections.abc import Callable

from ff_client.params import PluginsNotHere, fill_params, needs_counts, write_sweep
from ff_core.plan import plan_sweep
from ff_core.spec import ScalingSweep, load_sweep, parse_sweep


def load_resolved(path: str, write: bool = False, verify: bool = False,
                  say: Callable[[str], None] = lambda m: None) -> ScalingSweep:
    """The validated sweep with every size's nParams known; `write` saves the filled counts into the file.

    Where the plugins are importable, written counts are checked against the model plugin and one step of the
    smallest model is taken on the data plugin's first batch (what would fail every experiment fails here).
    `verify` (training here) requires that; otherwise plugins not installed here only skip the check, as long
    as every size carries its nParams.
    """
    sweep = load_sweep(path)
    say(f"counting parameters with {sweep.spec.model.plugin} and taking one step of the smallest model ...")
    try:
        checked = fill_params(sweep, check=True)
    except PluginsNotHere as error:
        if verify or write or needs_counts(sweep):
            raise
        say(f"not checked against the plugins ({error}); nParams as written")
        return sweep
    if write:
        write_sweep(checked, path)
        say(f"wrote nParams into {path}")
    return checked  # the sweep itself when every count was written (and checked out), else filled in


def planned(sweep: ScalingSweep):
    """place(budgets, points_per_budget) from the sweep's own planner: exactly the runs a grown sweep trains."""
    have = {(e.budget, e.size, e.tokens) for e in plan_sweep(sweep).experiments}

    def place(budgets: tuple[float, ...], points_per_budget: int | None):
        grown = grow(sweep, budgets, points_per_budget)
        return tuple((e.budget, e.n_params, e.tokens) for e in plan_sweep(grown).experiments
                     if (e.budget, e.size, e.tokens) not in have)

    return place


def grow(sweep: ScalingSweep, budgets: tuple[float, ...], points_per_budget: int | None,
         name: str | None = None) -> ScalingSweep:
    """The sweep with more budgets (or points per budget), its results in the same store folder."""
    manifest = copy.deepcopy(sweep.to_manifest(only_set=True))
    spec = manifest["spec"]
    spec["budgets"] = sorted({*spec["budgets"], *(float(f"{b:.6g}") for b in budgets)})
    if points_per_budget:
        spec["pointsPerBudget"] = points_per_budget
    spec.setdefault("storage", {})["folder"] = sweep.folder
    if name:
        manifest["metadata"]["name"] = name
    return parse_sweep(manifest, "the grown sweep")
