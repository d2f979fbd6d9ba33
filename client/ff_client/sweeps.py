"""Read a sweep file and make it plannable: nParams filled from the model plugin when missing."""

from __future__ import annotations

from collections.abc import Callable

from ff_client.params import fill_params, needs_counts, write_sweep
from ff_core.spec import ScalingSweep, load_sweep


def load_resolved(path: str, write: bool = False, verify: bool = False,
                  say: Callable[[str], None] = lambda m: None) -> ScalingSweep:
    """The validated sweep with every size's nParams known; `write` saves the filled counts into the file.

    `verify` checks written counts against the model plugin too (when training locally, the plugins are
    here anyway, and a wrong count is better refused before anything starts).
    """
    sweep = load_sweep(path)
    if needs_counts(sweep) or write or verify:
        say(f"counting parameters with {sweep.spec.model.plugin} ...")
        sweep = fill_params(sweep)
        if write:
            write_sweep(sweep, path)
            say(f"wrote nParams into {path}")
    return sweep
