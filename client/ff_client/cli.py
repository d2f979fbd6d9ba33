"""ffctl: a thin click layer over ff_client's API; messages go to stderr, data to stdout."""

from __future__ import annotations

import json
import os
import sys

import click

from ff_client import output
from ff_client.executor import Event, run_plan
from ff_client.sweeps import load_resolved
from ff_core.errors import FlopsFitError
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
def plan(sweep: str, as_json: bool, write: bool) -> None:
    """Show the experiments SWEEP expands to: id, budget, size, N, D, FLOPs, D/N."""
    resolved = load_resolved(sweep, write=write, say=output.say)
    the_plan = plan_sweep(resolved)
    if as_json:
        click.echo(json.dumps(output.plan_json(the_plan), indent=1))
    else:
        click.echo(output.plan_table(the_plan))
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


@main.command()
@click.argument("store_uri")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the table and plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the fitted numbers as JSON.")
@click.option("--endpoint-url", envvar="FF_S3_ENDPOINT_URL", help="S3 endpoint (MinIO etc.). [env: FF_S3_ENDPOINT_URL]")
def analyze(store_uri: str, out: str | None, as_json: bool, endpoint_url: str | None) -> None:
    """Fit scaling laws to the results under STORE_URI; write a table and plots."""
    from ff_client.analysis import analyze_store

    report = analyze_store(open_store(store_uri, endpoint_url), out_dir=out)
    for warning in report.warnings:
        output.warn(warning)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        click.echo(report.text())
    if report.files:
        output.say("wrote: " + ", ".join(str(f) for f in report.files))


if __name__ == "__main__":  # pragma: no cover
    main()
