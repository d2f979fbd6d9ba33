"""Read a sweep file and make it plannable: nParams filled from the model plugin when missing."""

from __future__ import annotations

import os
from collections.abc import Callable

from ff_client.params import PluginsNotHere, fill_params, needs_counts, write_sweep
from ff_core.errors import FlopsFitError
from ff_core.layout import SWEEP_FILE
from ff_core.spec import ScalingSweep, load_sweep, parse_sweep
from ff_core.store import open_store


def is_sweep_name(source: str) -> bool:
    """A cluster sweep NAME, not a store (a URI, or a folder: one that exists, or a path)."""
    return "://" not in source and not os.path.exists(source) and "/" not in source and not source.startswith(".")


def stored_sweep(source: str, endpoint_url: str | None) -> ScalingSweep | None:
    """The sweep the latest `ffctl run` wrote beside the results (a store folder's sweep.json), if any; None
    for a cluster sweep NAME (its manifest is on the cluster) and for a store without a readable one."""
    if is_sweep_name(source):
        return None
    try:
        return parse_sweep(open_store(source, endpoint_url).get_json(SWEEP_FILE), f"{source}/{SWEEP_FILE}")
    except FlopsFitError:  # StoreError (missing, unreachable) or SpecError (unreadable)
        return None


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
