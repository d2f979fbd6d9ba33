"""ffctl suggest: which runs to add so that N_opt at a target compute is known better, per FLOP spent."""

from __future__ import annotations

import click

from ff_client import api
from ff_client.cli import output
from ff_client.cli.options import cost_options
from ff_client.source import resolve
from ff_core.layout import ENDPOINT_ENV


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
    if bool(source) == bool(points_file):
        raise click.UsageError("give a result store (SOURCE) or --data FILE, one of them")
    if spend is not None and hours is not None:
        raise click.UsageError("give --budget or --gpu-hours, not both")
    given = resolve(points_file or source, endpoint_url, points_file=bool(points_file))
    spend = hours * gpu_flops * mfu * 3600 if hours is not None else spend
    found = api.suggest(given, target_flops, approach, spend, target_width, resamples, seed, write_to)
    if output.suggestion(found, spend, as_json, gpu_flops, mfu) and write_to:  # additions were chosen
        sweep, grown = api.write_grown(given, found, write_to)
        output.say(f"wrote {write_to}: {sweep.name} plus {', '.join(s.candidate.name for s in found.chosen)}, "
                   f"results in the same folder ({grown.folder})")
        output.next_step(f"ffctl run {write_to} --store {given.root}")


COMMANDS = (suggest,)
