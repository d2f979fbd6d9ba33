"""ffctl's cluster commands: submit, status, logs, delete (click over ff_client.cluster and ff_client.progress)."""

from __future__ import annotations

import datetime
import functools
import json
import time

import click
import jsonschema
import yaml

from ff_client import cluster, output, progress
from ff_client.sweeps import load_resolved
from ff_core.crd import crd_manifest
from ff_core.errors import FlopsFitError
from ff_core.plan import plan_sweep


def cluster_options(fn):
    """--namespace and --context, with their environment variables."""
    @click.option("--namespace", "-n", envvar="FF_NAMESPACE", help="Namespace [default: the kubeconfig context's]. "
                  "[env: FF_NAMESPACE]")
    @click.option("--context", envvar="FF_CONTEXT", help="kubeconfig context [default: current]. [env: FF_CONTEXT]")
    @functools.wraps(fn)
    def wrapper(*args, namespace, context, **kwargs):
        return fn(*args, conn=lambda: cluster.connect(context, namespace), **kwargs)
    return wrapper


def validate(manifest: dict, schema: dict | None) -> None:
    """Check the manifest against the CRD's openAPIV3Schema (the cluster's if readable, else ours)."""
    schema = schema or crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        where = lambda e: ".".join(str(p) for p in e.path) or "(top)"  # noqa: E731
        raise cluster.ClusterError("the sweep does not match the cluster's ScalingSweep schema: " + "; ".join(
            f"{where(e)}: {e.message}" for e in errors[:5]) + " (a newer or older CRD? upgrade the chart or ffctl)")
    unknown = unknown_fields(manifest, schema)
    if unknown:  # the API server would drop them without a word (pruning), and the sweep would run without them
        raise cluster.ClusterError(f"the cluster's ScalingSweep CRD does not know {', '.join(unknown[:5])}; it would "
                                   "silently drop them: upgrade the chart (its CRD) to this ffctl's version")


def unknown_fields(value, schema: dict, path: str = "") -> list[str]:
    """Paths in `value` that a structural schema would prune (fields it neither declares nor preserves)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and "properties" in schema:
        found = []
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            if key not in schema["properties"]:
                found.append(where)
            else:
                found += unknown_fields(sub, schema["properties"][key], where)
        return found
    if isinstance(value, list) and "items" in schema:
        return [p for i, item in enumerate(value) for p in unknown_fields(item, schema["items"], f"{path}[{i}]")]
    return []


@click.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate, plan and print the manifest; apply nothing.")
@click.option("--gpu-flops", type=float, default=989e12, envvar="FF_GPU_FLOPS",
              help="Peak FLOP/s of one GPU, for the cost estimate. [env: FF_GPU_FLOPS]")
@click.option("--mfu", type=click.FloatRange(0, 1, min_open=True), default=0.35, help="Assumed MFU, for the cost.")
@cluster_options
def submit(sweep: str, dry_run: bool, gpu_flops: float, mfu: float, conn) -> None:
    """Fill nParams, validate, show the plan and its cost, and apply SWEEP to the cluster."""
    resolved = load_resolved(sweep, say=output.say)
    the_plan = plan_sweep(resolved)
    manifest = resolved.to_manifest(only_set=True)  # defaults stay the cluster's to fill, as with kubectl apply
    connection = None if dry_run else conn()
    validate(manifest, cluster.crd_schema(connection) if connection else None)
    click.echo(output.plan_table(the_plan))
    click.echo(output.plan_cost(the_plan, gpu_flops, mfu))
    for note in the_plan.notes:
        output.warn(note)
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
        text = json.dumps([progress.sweep_json(s) for s in sweeps], indent=1) if as_json else \
            progress.sweeps_table(sweeps, now)
        return text, all((s.get("status") or {}).get("phase") in progress.TERMINAL_PHASES for s in sweeps)
    sweep = cluster.get_sweep(connection, name)
    text = json.dumps(progress.sweep_json(sweep), indent=1) if as_json else progress.sweep_detail(sweep, now)
    return text, (sweep.get("status") or {}).get("phase") in progress.TERMINAL_PHASES


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
    uri = (cluster.get_sweep(connection, name).get("spec") or {}).get("storage", {}).get("uri", "")
    cluster.delete_sweep(connection, name)
    output.say(f"deleted sweep {name}; its Jobs go with it; results stay in {uri}/{name}")


def store_of(name: str, context: str | None, namespace: str | None) -> tuple[str, str | None]:
    """The store URI (and S3 endpoint) of a sweep on the cluster, for `ffctl analyze NAME`."""
    sweep = cluster.get_sweep(cluster.connect(context, namespace), name)
    storage = (sweep.get("spec") or {}).get("storage", {})
    if not storage.get("uri"):
        raise FlopsFitError(f"sweep {name} names no spec.storage.uri")
    return f"{storage['uri'].rstrip('/')}/{name}", storage.get("endpointURL")


COMMANDS = (submit, status, logs, delete)
