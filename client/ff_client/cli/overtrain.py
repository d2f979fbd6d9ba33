"""ffctl overtrain: the over-training and error-from-loss laws of a file of runs, backtested on its held-out ones."""

from __future__ import annotations

import json

import click

from ff_client import api
from ff_client.cli import output
from ff_client.fit.overtrain import ERROR_LAWS, RESAMPLES


@click.command()
@click.option("--data", "path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="CSV/JSON of runs: name, n_params, tokens, loss; optional loss_se, error, error_se and use "
                   "(fit, fit-error, target, or empty: not used) [no use column: the largest size is the target].")
@click.option("--error-law", type=click.Choice(ERROR_LAWS), default="exponential",
              help="Error from loss: exponential (Gadre et al.'s eps - k exp(-gamma L)) or sigmoid (for accuracy-like "
                   "metrics that saturate).")
@click.option("--bootstrap", "resamples", type=click.IntRange(0), default=RESAMPLES,
              help="Bootstrap refits for the intervals (0: none).")
@click.option("--seed", type=int, default=0, help="Seed of the bootstrap.")
@click.option("--out", type=click.Path(file_okay=False), default="overtrain-out", help="Folder for the plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
def overtrain(path, error_law, resamples, seed, out, as_json) -> None:
    """Fit L(N, D) = E + A N^-eta + B D^-eta (Gadre et al.'s over-training law: any token multiplier M = D/N) to
    the runs marked fit, and error from loss to those marked fit or fit-error; predict the runs marked target and
    say how far off each is."""
    found, plot = api.overtrain(path, error_law, seed, resamples, out)
    click.echo(json.dumps(found.to_json(), indent=1) if as_json else found.text())
    if plot:
        output.say(f"plot: {plot}")


COMMANDS = (overtrain,)
