"""ffctl: a thin click layer over ff_client's API; messages go to stderr, data to stdout."""

from __future__ import annotations

import json
import os
import sys

import click

from ff_client import output
from ff_client.cli_cluster import COMMANDS as CLUSTER_COMMANDS, store_of
from ff_client.executor import run_plan
from ff_client.sweeps import load_resolved
from ff_core.errors import FlopsFitError
from ff_core.flops import gpu_hours
from ff_core.plan import plan_sweep
from ff_core.store import open_store


class _Group(click.Group):
    """One abort path: every deliberate error becomes a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FlopsFitError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="flops-fit")
def main() -> None:
    """flops-fit: plan, train and fit compute-optimal scaling laws."""


@main.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--write", is_flag=True, help="Write the nParams counted by the model plugin back into SWEEP.")
@click.option("--gpu-flops", type=float, default=989e12, envvar="FF_GPU_FLOPS",
              help="Peak FLOP/s of one GPU, for the cost estimate (default: H100/H200 dense bf16). [env: FF_GPU_FLOPS]")
@click.option("--mfu", type=click.FloatRange(0, 1, min_open=True), default=0.35,
              help="Assumed model FLOPs utilisation, for the cost estimate.")
def plan(sweep: str, as_json: bool, write: bool, gpu_flops: float, mfu: float) -> None:
    """Show the experiments SWEEP expands to (id, budget, size, N, D, FLOPs, D/N) and what they cost."""
    resolved = load_resolved(sweep, write=write, say=output.say)
    the_plan = plan_sweep(resolved)
    if as_json:
        data = output.plan_json(the_plan) | {"gpuHours": gpu_hours(the_plan.total_flops, gpu_flops, mfu),
                                               "assumed": {"gpuFlops": gpu_flops, "mfu": mfu}}
        click.echo(json.dumps(data, indent=1))
    else:
        click.echo(output.plan_table(the_plan))
        click.echo(output.plan_cost(the_plan, gpu_flops, mfu))
    for note in the_plan.notes:
        output.warn(note)
    output.next_step(f"ffctl run {sweep}")


@main.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False))
@click.option("--store", envvar="FF_STORE", help="Result store URI (file://DIR or s3://bucket/prefix); "
              "default: the sweep's spec.storage.uri. [env: FF_STORE]")
@click.option("--workers", envvar="FF_WORKERS", type=click.IntRange(1), default=1,
              help="Experiments trained at once, each its own process. [env: FF_WORKERS]")
def run(sweep: str, store: str | None, workers: int) -> None:
    """Train every experiment of SWEEP on this machine; a rerun skips finished ones."""
    resolved = load_resolved(sweep, verify=True, say=output.say)
    the_plan = plan_sweep(resolved)
    target = open_store(store or resolved.spec.storage.uri, resolved.spec.storage.endpoint_url)
    progress = output.Progress(len(the_plan.experiments))
    try:
        summary = run_plan(resolved, the_plan, target, workers, on_event=progress.update)
    except KeyboardInterrupt:
        output.warn("interrupted: running trainers checkpointed and stopped; rerun the same command to resume")
        sys.exit(130)
    progress.finish(summary)
    if summary.failed:
        raise click.ClickException(f"{len(summary.failed)} experiment(s) failed; see the logs above, fix, and rerun")
    output.next_step(f"ffctl analyze {target.uri}/{resolved.name}")


def _csv_choice(allowed: tuple[str, ...]):
    def convert(ctx, param, value: str) -> tuple[str, ...]:
        chosen = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in chosen if v not in allowed]
        if bad:
            raise click.BadParameter(f"{', '.join(bad)}: choose from {', '.join(allowed)}")
        return chosen

    return convert


@main.command()
@click.argument("store_uri", metavar="[STORE_URI|NAME]", required=False)
@click.option("--data", "data_file", type=click.Path(exists=True, dir_okay=False),
              help="Fit points from a CSV/JSON file (n_params, tokens, loss[, flops, budget]) instead of a store.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for tables, report and plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON (schema: ff_client.report).")
@click.option("--target-flops", "targets", type=float, multiple=True, help="Predict N_opt, D_opt, L_opt at this budget (repeatable).")
@click.option("--bootstrap", "resamples", type=click.IntRange(0), default=1000, envvar="FF_BOOTSTRAP",
              help="Bootstrap resamples for the intervals (0: none). [env: FF_BOOTSTRAP]")
@click.option("--seed", type=int, default=0, help="Seed of the bootstrap.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Processes for the bootstrap [default: all cores].")
@click.option("--huber-delta", "delta", type=click.FloatRange(min=0, min_open=True), default=1e-3,
              help="Huber delta of the parametric fit, on log-loss residuals.")
@click.option("--keep-outliers", is_flag=True, help="Keep points the outlier rule flags (they are still listed).")
@click.option("--format", "formats", default="md,csv,tex,json", callback=_csv_choice(("md", "csv", "tex", "json")),
              help="Table formats written to --out.")
@click.option("--plot-format", "plot_formats", default="png", callback=_csv_choice(("png", "svg", "pdf")),
              help="Plot formats written to --out.")
@click.option("--endpoint-url", envvar="FF_S3_ENDPOINT_URL", help="S3 endpoint (MinIO etc.). [env: FF_S3_ENDPOINT_URL]")
@click.option("--namespace", "-n", envvar="FF_NAMESPACE", help="For a sweep NAME: its namespace. [env: FF_NAMESPACE]")
@click.option("--context", envvar="FF_CONTEXT", help="For a sweep NAME: the kubeconfig context. [env: FF_CONTEXT]")
def analyze(store_uri, data_file, out, as_json, targets, resamples, seed, workers, delta, keep_outliers, formats,
            plot_formats, endpoint_url, namespace, context) -> None:
    """Fit scaling laws to the results under STORE_URI, of a cluster sweep NAME, or to --data points."""
    from ff_client.analysis import Settings, analyze as run_analysis, finish
    from ff_client.datafile import load_points
    from ff_client.points import load_observations

    if (store_uri is None) == (data_file is None):
        raise click.UsageError("give a STORE_URI, a sweep NAME or --data FILE (one of them)")
    if store_uri and "://" not in store_uri and not os.path.exists(store_uri):  # a sweep on the cluster
        store_uri, sweep_endpoint = store_of(store_uri, context, namespace)
        endpoint_url = endpoint_url or sweep_endpoint
        output.say(f"analysing {store_uri}")
    observations = load_points(data_file) if data_file else load_observations(open_store(store_uri, endpoint_url))
    settings = Settings(tuple(targets), resamples, seed, workers, keep_outliers, delta)
    report = finish(run_analysis(observations, settings), out, formats=formats, plot_formats=plot_formats)
    for warning in report.warnings:
        output.warn(warning)
    click.echo(json.dumps(report.to_json(), indent=1) if as_json else report.text())
    if report.files:
        output.say("wrote: " + ", ".join(str(f) for f in report.files))


for _command in CLUSTER_COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
