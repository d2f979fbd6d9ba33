"""ffctl compare: two recipes' sweeps in compute-equivalent terms (ff_client.fit.compare)."""

from __future__ import annotations

import json

import click

from ff_client import api
from ff_client.cli import output
from ff_client.cli.options import analysis_options, settings_of


@click.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--approach", type=click.Choice(["parametric", "isoflop"]), default="parametric",
              help="Whose L_opt(C) is compared: the parametric surface's, or the isoFLOP power law's.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for compare.md, compare.json and compare.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@analysis_options
def compare(a: str, b: str, approach: str, out: str | None, as_json: bool, endpoint_url, namespace, context,
            **analysis) -> None:
    """How much more compute recipe A needs to reach recipe B's loss, at each target compute.

    A and B are each a result store (URI or folder), a points file (.csv or .json) or a sweep NAME on the
    cluster. Per target (--target-flops; default: the budgets both share): the compute multiplier
    (> 1: B is the better recipe), the loss gap at equal compute, and the difference of the N_opt exponents,
    each with a bootstrap interval. Inside both sweeps' budgets the rows compare the measured isoFLOP minima
    (no law); beyond them the --approach law, and the row says how far it extrapolates. A crossover (the
    better recipe changing with C) is reported.
    """
    result = api.compare(a, b, approach, settings_of(**analysis), out, analysis["recipe"], analysis["all_recipes"],
                         endpoint_url, namespace, context, say=output.say)
    click.echo(json.dumps(result.to_json(), indent=1) if as_json else result.text())
    if as_json:
        for warning in result.warnings:
            output.warn(warning)


COMMANDS = (compare,)
