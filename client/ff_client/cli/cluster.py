"""ffctl's cluster commands: submit, status, logs, delete (click over ff_client.cluster)."""

from __future__ import annotations

import json
import time

import click

from ff_client import api
from ff_client.cli import output
from ff_client.cli.options import cost_options
from ff_client.cluster import connection as cluster


def cluster_options(fn):
    """--namespace and --context, with their environment variables."""
    fn = click.option("--context", envvar="FF_CONTEXT",
                      help="kubeconfig context [default: current]. [env: FF_CONTEXT]")(fn)
    return click.option("--namespace", "-n", envvar="FF_NAMESPACE",
                        help="Namespace [default: the kubeconfig context's]. [env: FF_NAMESPACE]")(fn)


@click.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate, plan and print the manifest; apply nothing.")
@cost_options
@cluster_options
def submit(sweep: str, dry_run: bool, gpu_flops: float, mfu: float, namespace, context) -> None:
    """Fill nParams, validate, show the plan and its cost, and apply SWEEP to the cluster."""
    submitted = api.submit(sweep, dry_run, context, namespace, gpu_flops, mfu, output.say)
    output.show_plan(submitted.view)
    if dry_run:
        click.echo(submitted.text())
        output.next_step(f"ffctl submit {sweep}")
        return
    output.say(submitted.text())
    output.next_step(f"ffctl status {submitted.view.sweep.name} --watch")


@click.command()
@click.argument("name", required=False)
@click.option("--watch", "-w", is_flag=True, help="Redraw every --interval seconds until the sweep ends.")
@click.option("--interval", type=click.FloatRange(0.1), default=2.0, help="Seconds between redraws under --watch.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one sweep: counts, conditions, experiments).")
@cluster_options
def status(name: str | None, watch: bool, interval: float, as_json: bool, namespace, context) -> None:
    """All sweeps in the namespace, or one sweep's per-experiment progress."""
    connection = cluster.connect(context, namespace)
    while True:
        shown = api.status(name, connection=connection)
        if watch and not as_json and output.live():
            click.clear()
        click.echo(json.dumps(shown.to_json(), indent=1) if as_json else shown.text())
        if not watch or shown.finished:
            break
        time.sleep(interval)
    if name and shown.finished:
        output.next_step(f"ffctl analyze {name}")


@click.command()
@click.argument("name")
@click.argument("experiment")
@click.option("--tail", type=click.IntRange(1), help="Only the last TAIL lines.")
@cluster_options
def logs(name: str, experiment: str, tail: int | None, namespace, context) -> None:
    """The trainer's log of one EXPERIMENT of sweep NAME (its latest attempt)."""
    pod, text = cluster.experiment_logs(cluster.connect(context, namespace), name, experiment, tail)
    output.say(f"pod {pod}:")
    click.echo(text, nl=not text.endswith("\n"))


@click.command()
@click.argument("name")
@cluster_options
def delete(name: str, namespace, context) -> None:
    """Delete sweep NAME and its Jobs; its results stay in the store."""
    connection = cluster.connect(context, namespace)
    uri = cluster.results_uri(cluster.get_sweep(connection, name), name)
    cluster.delete_sweep(connection, name)
    output.say(f"deleted sweep {name}; its Jobs go with it; results stay in {uri or 'its store'}")


COMMANDS = (submit, status, logs, delete)
