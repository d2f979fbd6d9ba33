"""ffctl suggest: which runs to add so that N_opt at a target compute is known better, per FLOP spent."""

from __future__ import annotations

import copy
import json

import click
import yaml

from ff_client.cli import output
from ff_client.cli.local import cost_options
from ff_client.source import resolve
from ff_client.text import aligned
from ff_core.layout import ENDPOINT_ENV
from ff_core.plan import plan_sweep
from ff_core.spec import ScalingSweep, parse_sweep


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


@click.command()
@click.argument("source", required=False)
@click.option("--data", "points_file", type=click.Path(exists=True, dir_okay=False),
              help="A points file (csv/json) instead of a result store.")
@click.option("--target-flops", type=click.FloatRange(min=0, min_open=True), required=True,
              help="The compute budget whose N_opt should be known.")
@click.option("--budget", "spend", type=click.FloatRange(min=0, min_open=True),
              help="FLOPs to spend on new runs [default: the single best addition].")
@click.option("--gpu-hours", "hours", type=click.FloatRange(min=0, min_open=True),
              help="Or the GPU-hours to spend (at --gpu-flops and --mfu).")
@click.option("--approach", type=click.Choice(["isoflop", "parametric"]), default="isoflop",
              help="The fit whose interval to narrow.")
@click.option("--target-width", type=click.FloatRange(min=1, min_open=True),
              help="Enough when N_opt's interval (high/low) is at most this ratio.")
@click.option("--write", "write_to", type=click.Path(dir_okay=False), help="Write the grown sweep here: the same store "
              "folder, so `ffctl run` trains only the new points (needs a store written by `ffctl run`).")
@click.option("--bootstrap", "resamples", type=click.IntRange(20), default=200, help="Bootstrap resamples per fit.")
@click.option("--seed", type=int, default=0)
@click.option("--endpoint-url", envvar=ENDPOINT_ENV, help=f"S3 endpoint. [env: {ENDPOINT_ENV}]")
@click.option("--json", "as_json", is_flag=True, help="Print the candidates and the choice as JSON.")
@cost_options
def suggest(source, points_file, target_flops, spend, hours, approach, target_width, write_to, resamples, seed,
            endpoint_url, as_json, gpu_flops, mfu) -> None:
    """Rank additions to a sweep (new budgets, more points per budget) by how much each is expected to narrow
    the interval of N_opt at --target-flops per FLOP, by simulating their runs from the current fit."""
    from ff_client.fit.approach import Settings
    from ff_client.fit.approaches import APPROACHES
    from ff_client.fit.suggest import suggest as find

    if bool(source) == bool(points_file):
        raise click.UsageError("give a result store (SOURCE) or --data FILE, one of them")
    if spend is not None and hours is not None:
        raise click.UsageError("give --budget or --gpu-hours, not both")
    given = resolve(points_file or source, endpoint_url, points_file=bool(points_file))
    sweep = given.sweep() if given.kind == "store" else None
    if write_to and sweep is None:
        raise click.UsageError("--write needs a result store written by `ffctl run` (its sweep.json says what to "
                               "grow); a points file or a store without one cannot be grown")
    if write_to and _names(write_to) == sweep.name:
        raise click.UsageError(f"--write {write_to}: that file is sweep {sweep.name!r}, which the store was trained "
                               "from; write the grown sweep to a new file (it shares the results folder)")
    if hours is not None:
        spend = hours * gpu_flops * mfu * 3600
    observations = given.observations()
    found = find(observations.points, target_flops, next(a for a in APPROACHES if a.name == approach),
                 Settings(resamples=resamples, seed=seed, workers=1), spend, target_width,
                 planned(sweep) if sweep else None)
    before, chosen = found.before, found.chosen
    output.say(f"now: N_opt at C={target_flops:.3g} is {before.n_opt:.3g}, its 95% interval a factor "
               f"{before.n_ratio:.3g} wide (high/low); L_opt's {before.l_range:.3g} wide")
    if as_json:
        click.echo(json.dumps(found.to_json(gpu_flops, mfu), indent=2))
    if found.sufficient:
        output.say(f"the sweep is already sufficient: {before.n_ratio:.3g} <= --target-width {target_width:g}")
        return
    if not as_json:
        click.echo(aligned(found.rows(gpu_flops, mfu)))
    if not chosen:
        output.warn("no candidate narrows the interval" + (" within --budget" if spend else ""))
        return
    output.say("suggested: " + "; ".join(s.candidate.name for s in chosen) +
               f" ({sum(s.candidate.flops for s in chosen):.3g} FLOPs)")
    if not found.reaches_width:
        output.warn(f"none of the chosen additions is expected to reach --target-width {target_width:g} alone")
    if write_to:
        budgets = tuple(b for s in chosen for b in s.candidate.budgets)
        per_budget = max((s.candidate.points_per_budget or 0 for s in chosen), default=0) or None
        grown = grow(sweep, budgets, per_budget, name=f"{sweep.name}-grown"[:40])
        with open(write_to, "w") as handle:
            yaml.safe_dump(grown.to_manifest(only_set=True), handle, sort_keys=False)
        output.say(f"wrote {write_to}: {sweep.name} plus {', '.join(s.candidate.name for s in chosen)}, results in "
                   f"the same folder ({sweep.folder})")
        output.next_step(f"ffctl run {write_to} --store {given.root}")


def _names(path: str) -> str | None:
    """The metadata.name of the sweep file at `path`, if there is one there."""
    try:
        with open(path) as handle:
            return (yaml.safe_load(handle) or {}).get("metadata", {}).get("name")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


COMMANDS = (suggest,)
