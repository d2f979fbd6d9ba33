"""Read a sweep file and make it plannable: nParams filled from the model plugin when missing."""

from __future__ import annotations

from collections.abc import Callable

from ff_client.params import PluginsNotHere, fill_params, needs_counts, write_sweep
from ff_core.spec import ScalingSweep, load_sweep


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
