"""ffctl plan and run: expand a sweep and show what it costs; train it on this machine."""

from __future__ import annotations

import signal
import sys

import click

from ff_client import api
from ff_client.cli import output
from ff_client.cli.options import cost_options


@click.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--write", is_flag=True, help="Write the nParams counted by the model plugin back into SWEEP.")
@cost_options
def plan(sweep: str, as_json: bool, write: bool, gpu_flops: float, mfu: float) -> None:
    """Show the experiments SWEEP expands to (id, budget, size, N, D, FLOPs, D/N) and what they cost."""
    output.show_plan(api.plan(sweep, write, gpu_flops, mfu, output.say, output.warn), as_json)
    output.next_step(f"ffctl run {sweep}")


@click.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False))
@click.option("--store", envvar="FF_STORE", help="Result store URI (file://DIR or s3://bucket/prefix); "
              "default: the sweep's spec.storage.uri (a relative file:// one from the sweep file's folder). "
              "[env: FF_STORE]")
@click.option("--workers", envvar="FF_WORKERS", type=click.IntRange(1), default=1,
              help="Experiments trained at once, each its own process. [env: FF_WORKERS]")
@click.option("--pack", type=click.IntRange(1), default=None,
              help="Experiments per GPU: K trainers share each visible GPU (CUDA_VISIBLE_DEVICES, else nvidia-smi), "
                   "so --workers becomes K x GPUs. Small models leave a GPU mostly idle alone.")
@click.option("--keep-going", is_flag=True, help="Start the remaining experiments after one fails with a configuration "
              "error (exit 3) [default: stop starting them; the rest would most likely fail the same way].")
@click.option("--retry-diverged", is_flag=True, help="Train again the experiments recorded as diverged (their result "
              "and checkpoint are removed first) [default: skip them, as finished].")
@click.option("--clean-checkpoints", is_flag=True, help="Remove the checkpoints of finished experiments (the results "
              "stay; a finished experiment never resumes).")
def run(sweep: str, store: str | None, workers: int, pack: int | None, keep_going: bool, retry_diverged: bool,
        clean_checkpoints: bool) -> None:
    """Train every experiment of SWEEP on this machine; a rerun skips finished ones.

    Ctrl-C, SIGTERM and SIGHUP all stop it the same way: the trainers checkpoint, and the same command resumes.
    """
    if pack is not None and click.get_current_context().get_parameter_source("workers").name != "DEFAULT":
        raise click.UsageError("give --workers or --pack, not both (--pack K runs K x GPUs at once)")
    progress = output.Progress()
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):  # as Ctrl-C: checkpoint, stop, orphan nothing
        signal.signal(stop_signal, signal.default_int_handler)
    try:
        outcome = api.run(sweep, store, workers, pack, keep_going, retry_diverged, clean_checkpoints, progress.update,
                          progress.expect, output.say)
    except KeyboardInterrupt:
        output.warn("interrupted: running trainers checkpointed and stopped; rerun the same command to resume")
        sys.exit(130)
    progress.finish(outcome.summary)
    output.run_outcome(outcome.summary)
    output.next_step(f"ffctl analyze {outcome.results}")


COMMANDS = (plan, run)
