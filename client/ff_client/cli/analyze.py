"""ffctl analyze: fit the results of a store, of a sweep on the cluster, or of a points file."""

from __future__ import annotations

import json
import tempfile

import click

from ff_client.cli import output
from ff_client.fit.laws import HUBER_DELTA
from ff_client.fit.table import FORMATS
from ff_client.source import Source, resolve
from ff_core.errors import FlopsFitError
from ff_core.layout import ENDPOINT_ENV, SWEEP_FILE
from ff_core.spec import ScalingSweep
from ff_core.trackers import require

def _csv_choice(allowed: tuple[str, ...]):
    def convert(ctx, param, value: str) -> tuple[str, ...]:
        chosen = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in chosen if v not in allowed]
        if bad:
            raise click.BadParameter(f"{', '.join(bad)}: choose from {', '.join(allowed)}")
        return chosen

    return convert


def analysis_options(fn):
    """The fit's options (targets, bootstrap, Huber delta, outliers) and where results are read from."""
    options = [
        click.option("--target-flops", "targets", type=click.FloatRange(min=0, min_open=True), multiple=True,
                     help="Predict N_opt, D_opt, L_opt at this budget (repeatable)."),
        click.option("--bootstrap", "resamples", type=click.IntRange(0), default=1000, envvar="FF_BOOTSTRAP",
                     help="Bootstrap resamples for the intervals (0: none). [env: FF_BOOTSTRAP]"),
        click.option("--seed", type=int, default=0, help="Seed of the bootstrap."),
        click.option("--workers", type=click.IntRange(1), default=None,
                     help="Processes for the bootstrap [default: all cores]."),
        click.option("--huber-delta", "delta", type=click.FloatRange(min=0, min_open=True), default=HUBER_DELTA,
                     help="Huber delta of the parametric fit, on log-loss residuals."),
        click.option("--exclude-outliers", is_flag=True,
                     help="Drop the points far off the parametric fit (modified z > 3.5); by default they are "
                          "flagged in the report and kept (the Huber loss bounds their pull)."),
        click.option("--keep-outliers", is_flag=True, hidden=True, help="The default now; kept for old scripts."),
        click.option("--recipe", help="Of a store holding several recipes (the same sweep rerun with other training "
                                      "knobs), fit this one [default: the current plan's]."),
        click.option("--all-recipes", is_flag=True, help="Pool every recipe in the store (refused where two share a "
                                                         "point)."),
        click.option("--endpoint-url", envvar=ENDPOINT_ENV, help=f"S3 endpoint (MinIO etc.). [env: {ENDPOINT_ENV}]"),
        click.option("--namespace", "-n", envvar="FF_NAMESPACE",
                     help="For a sweep NAME: its namespace. [env: FF_NAMESPACE]"),
        click.option("--context", envvar="FF_CONTEXT",
                     help="For a sweep NAME: the kubeconfig context. [env: FF_CONTEXT]"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_of(targets, resamples, seed, workers, delta, exclude_outliers, keep_outliers, **_):
    from ff_client.fit.analysis import Settings

    if exclude_outliers and keep_outliers:
        raise click.UsageError("--exclude-outliers and --keep-outliers contradict each other; give one")
    return Settings(tuple(targets), resamples, seed, workers, exclude_outliers, delta)


def check_against_pilot(source: Source, observations, sweep: ScalingSweep | None) -> None:
    """Where the store holds the sweep's transfer pilot beside it (<name>-transfer, from `ffctl transfer`), say
    whether the sweep's learning rate (`sweep`'s, the store's sweep.json) lies in each pilot size's basin, and
    warn for each size where it does not."""
    from ff_client.fit.transfer import analyze_transfer, basin_check, pilot_runs
    from ff_client.pilot import pilot_folder

    if sweep is not None:
        name, lr = sweep.name, sweep.spec.training.learning_rate
    else:  # no sweep.json: the records' own learning rate, when they agree on one
        rates = {((r.identity or {}).get("training") or {}).get("learning_rate") for r in observations.records}
        name, lr = observations.sweep, (rates.pop() if len(rates) == 1 else None)
    pilot = source.beside(pilot_folder(name))
    runs, left = pilot_runs(pilot)
    if not runs or lr is None:
        return
    if left:
        output.warn(f"the transfer pilot at {pilot.uri}: {len(left)} run(s) left out, e.g. {left[0]}")
    try:
        result = analyze_transfer(runs, float(lr))
    except FlopsFitError as error:
        output.warn(f"the transfer pilot at {pilot.uri} was not used: {error}")
        return
    inside, warnings = basin_check(result)
    for warning in warnings:
        output.warn(warning)
    if inside:
        output.say(f"transfer pilot ({pilot.uri}): the sweep's learning rate {float(lr):.3g} is within the basin of "
                   f"{', '.join(inside)}")


def tracked_sweep(source: Source) -> ScalingSweep:
    """The sweep whose spec.tracking `--track` logs to: the store's sweep.json, or the cluster's ScalingSweep."""
    if source.kind == "points":
        raise click.UsageError("--track logs to the sweep's spec.tracking: analyze a store or a sweep NAME, not --data")
    sweep = source.sweep()
    if sweep is None:
        raise FlopsFitError(f"{source.given} has no readable {SWEEP_FILE} (the sweep `ffctl run` writes), so it names "
                            "no tracking; analyze without --track")
    if sweep.spec.tracking is None or not sweep.spec.tracking.backends:
        raise FlopsFitError(f"sweep {sweep.name} has no spec.tracking; add mlflow, wandb or tensorboard to it, or "
                            "analyze without --track")
    require(sweep.spec.tracking)
    return sweep


@click.command()
@click.argument("store_uri", metavar="[STORE_URI|NAME]", required=False)
@click.option("--data", "data_file", type=click.Path(exists=True, dir_okay=False),
              help="Fit points from a CSV/JSON file (n_params, tokens, loss[, flops, budget]) instead of a store.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for tables, report and plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON (schema: ff_client.fit.report).")
@click.option("--format", "formats", default=",".join(FORMATS), callback=_csv_choice(FORMATS),
              help="Table formats written to --out.")
@click.option("--plot-format", "plot_formats", default="png", callback=_csv_choice(("png", "svg", "pdf")),
              help="Plot formats written to --out.")
@click.option("--track", is_flag=True, help="Log the fit (parameters with intervals, table, report, plots) to the "
              "sweep's spec.tracking (MLflow, W&B, TensorBoard) as a run of the sweep's group.")
@analysis_options
def analyze(store_uri, data_file, out, as_json, formats, plot_formats, track, endpoint_url, namespace, context,
            **analysis) -> None:
    """Fit scaling laws to the results under STORE_URI, of a cluster sweep NAME, or to --data points."""
    from ff_client.fit.analysis import analyze as run_analysis, finish  # scipy, matplotlib: only here

    if (store_uri is None) == (data_file is None):
        raise click.UsageError("give a STORE_URI, a sweep NAME or --data FILE (one of them)")
    settings = settings_of(**analysis)
    source = resolve(data_file or store_uri, endpoint_url, namespace, context, bool(data_file), output.say)
    stored = source.sweep() if source.kind == "store" else None
    tracked = tracked_sweep(source) if track else None
    observations = source.observations(analysis.get("recipe"), analysis.get("all_recipes", False))
    if source.kind == "store":
        check_against_pilot(source, observations, stored)
    with tempfile.TemporaryDirectory(prefix="ff-fit-") as scratch:  # --track without --out: files for the tracker
        report = finish(run_analysis(observations, settings), out or (scratch if track else None), formats=formats,
                        plot_formats=plot_formats)
        for warning in report.warnings:
            output.warn(warning)
        click.echo(json.dumps(report.to_json(), indent=1) if as_json else report.text())
        if report.files and out:
            output.say("wrote: " + ", ".join(str(f) for f in report.files))
        if tracked is not None:
            from ff_client.fit.tracked import track_fit

            spec = tracked.spec
            took = track_fit(spec.tracking, report, endpoint_url or spec.storage.endpoint_url, output.warn)
            output.say(f"tracked the fit in {', '.join(took)}" if took else "the fit was not tracked (see above)")
    if not any(r.parameters for r in report.results.values()):
        raise click.ClickException("nothing could be fitted (see the warnings above): train more sizes or budgets")


COMMANDS = (analyze,)
