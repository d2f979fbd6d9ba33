"""ffctl's cluster commands: submit, status, logs, delete (click over ff_client.cluster)."""

from __future__ import annotations

import datetime
import functools
import json
import time

import click
import yaml

from ff_client import api
from ff_client.cli import output
from ff_client.cli.options import cost_options
from ff_client.cluster import connection as cluster, views
from ff_client.cluster.validate import validate
from ff_client.sweeps import load_resolved
from ff_core.status import TERMINAL_PHASES, SweepStatus


def cluster_options(fn):
    """--namespace and --context, with their environment variables."""
    @click.option("--namespace", "-n", envvar="FF_NAMESPACE", help="Namespace [default: the kubeconfig context's]. "
                  "[env: FF_NAMESPACE]")
    @click.option("--context", envvar="FF_CONTEXT", help="kubeconfig context [default: current]. [env: FF_CONTEXT]")
    @functools.wraps(fn)
    def wrapper(*args, namespace, context, **kwargs):
        return fn(*args, conn=lambda: cluster.connect(context, namespace), **kwargs)
    return wrapper


@click.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate, plan and print the manifest; apply nothing.")
@cost_options
@cluster_options
def submit(sweep: str, dry_run: bool, gpu_flops: float, mfu: float, conn) -> None:
    """Fill nParams, validate, show the plan and its cost, and apply SWEEP to the cluster."""
    resolved = load_resolved(sweep, say=output.say)
    manifest = resolved.to_manifest(only_set=True)  # defaults stay the cluster's to fill, as with kubectl apply
    connection = None if dry_run else conn()
    validate(manifest, cluster.crd_schema(connection) if connection else None)
    output.show_plan(api.view_of(resolved, gpu_flops, mfu))
    if dry_run:
        click.echo(yaml.safe_dump(manifest, sort_keys=False))
        output.next_step(f"ffctl submit {sweep}")
        return
    verb = cluster.apply_sweep(connection, manifest)
    output.say(f"sweep {resolved.name} {verb} in namespace {connection.namespace} ({connection.server})")
    output.next_step(f"ffctl status {resolved.name} --watch")


@click.command()
@click.argument("name", required=False)
@click.option("--watch", "-w", is_flag=True, help="Redraw every --interval seconds until the sweep ends.")
@click.option("--interval", type=click.FloatRange(0.1), default=2.0, help="Seconds between redraws under --watch.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one sweep: counts, conditions, experiments).")
@cluster_options
def status(name: str | None, watch: bool, interval: float, as_json: bool, conn) -> None:
    """All sweeps in the namespace, or one sweep's per-experiment progress."""
    connection = conn()
    while True:
        text, finished = _render(connection, name, as_json)
        if watch and not as_json and output.live():
            click.clear()
        click.echo(text)
        if not watch or finished:
            break
        time.sleep(interval)
    if name and finished:
        output.next_step(f"ffctl analyze {name}")


def _render(connection, name: str | None, as_json: bool) -> tuple[str, bool]:
    """What `ffctl status` prints now, and whether what it shows has ended."""
    now = datetime.datetime.now(datetime.UTC)
    if name is None:
        sweeps = cluster.list_sweeps(connection)
        text = json.dumps([views.sweep_json(s) for s in sweeps], indent=1) if as_json else \
            views.sweeps_table(sweeps, now)
        return text, all(SweepStatus.from_json(s.get("status")).phase in TERMINAL_PHASES for s in sweeps)
    sweep = cluster.get_sweep(connection, name)
    text = json.dumps(views.sweep_json(sweep), indent=1) if as_json else views.sweep_detail(sweep, now)
    return text, SweepStatus.from_json(sweep.get("status")).phase in TERMINAL_PHASES


@click.command()
@click.argument("name")
@click.argument("experiment")
@click.option("--tail", type=click.IntRange(1), help="Only the last TAIL lines.")
@cluster_options
def logs(name: str, experiment: str, tail: int | None, conn) -> None:
    """The trainer's log of one EXPERIMENT of sweep NAME (its latest attempt)."""
    pod, text = cluster.experiment_logs(conn(), name, experiment, tail)
    output.say(f"pod {pod}:")
    click.echo(text, nl=not text.endswith("\n"))


@click.command()
@click.argument("name")
@cluster_options
def delete(name: str, conn) -> None:
    """Delete sweep NAME and its Jobs; its results stay in the store."""
    connection = conn()
    uri = cluster.results_uri(cluster.get_sweep(connection, name), name)
    cluster.delete_sweep(connection, name)
    output.say(f"deleted sweep {name}; its Jobs go with it; results stay in {uri or 'its store'}")


COMMANDS = (submit, status, logs, delete)
