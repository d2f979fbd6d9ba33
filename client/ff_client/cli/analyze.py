"""ffctl analyze: fit the results of a store, of a sweep on the cluster, or of a points file."""

from __future__ import annotations

import json

import click

from ff_client import api
from ff_client.cli import output
from ff_client.cli.options import analysis_options, csv_choice, settings_of
from ff_client.fit.table import FORMATS
from ff_client.source import resolve


@click.command()
@click.argument("store_uri", metavar="[STORE_URI|NAME]", required=False)
@click.option("--data", "data_file", type=click.Path(exists=True, dir_okay=False),
              help="Fit points from a CSV/JSON file (n_params, tokens, loss[, flops, budget]) instead of a store.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for tables, report and plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON (schema: ff_client.fit.report).")
@click.option("--format", "formats", default=",".join(FORMATS), callback=csv_choice(FORMATS),
              help="Table formats written to --out.")
@click.option("--plot-format", "plot_formats", default="png", callback=csv_choice(api.PLOT_FORMATS),
              help="Plot formats written to --out.")
@click.option("--track", is_flag=True, help="Log the fit (parameters with intervals, table, report, plots) to the "
              "sweep's spec.tracking (MLflow, W&B, TensorBoard) as a run of the sweep's group.")
@analysis_options
def analyze(store_uri, data_file, out, as_json, formats, plot_formats, track, endpoint_url, namespace, context,
            **analysis) -> None:
    """Fit scaling laws to the results under STORE_URI, of a cluster sweep NAME, or to --data points."""
    if (store_uri is None) == (data_file is None):
        raise click.UsageError("give a STORE_URI, a sweep NAME or --data FILE (one of them)")
    source = resolve(data_file or store_uri, endpoint_url, namespace, context, bool(data_file), output.say)
    report = api.analyze(source, settings_of(**analysis), out, formats, plot_formats, track, analysis["recipe"],
                         analysis["all_recipes"], endpoint_url, say=output.say, warn=output.warn)
    for warning in report.warnings:
        output.warn(warning)
    click.echo(json.dumps(report.to_json(), indent=1) if as_json else report.text())
    if report.files:
        output.say("wrote: " + ", ".join(str(f) for f in report.files))
    laddered = report.overtraining is not None and not isinstance(report.overtraining, str)
    if not any(r.parameters for r in report.results.values()) and not laddered:
        raise click.ClickException("nothing could be fitted (see the warnings above): train more sizes or budgets")


COMMANDS = (analyze,)
