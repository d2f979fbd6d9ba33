"""ffctl transfer: does the sweep's learning rate carry across its sizes? A pilot grid, trained and analysed."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from ff_client.cli import output
from ff_client.executor import run_plan
from ff_client.sweeps import load_resolved
from ff_client.text import aligned
from ff_core.errors import FlopsFitError
from ff_core.plan import plan_sweep
from ff_core.store import anchored, open_store, within


@click.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False))
@click.option("--sizes", help="Comma-separated size names [default: the smallest, the middle and the largest].")
@click.option("--lr-grid", help="Comma-separated learning rates [default: the sweep's x 2^-3 .. 2^3].")
@click.option("--tokens-per-param", type=click.FloatRange(min=0, min_open=True), default=20.0,
              help="D/N of every pilot run (small: the pilot is cheap).")
@click.option("--store", envvar="FF_STORE", help="Result store URI [default: the sweep's]. [env: FF_STORE]")
@click.option("--workers", type=click.IntRange(1), default=1, help="Runs trained at once.")
@click.option("--write-only", "write_only", type=click.Path(file_okay=False),
              help="Write the pilot's sweep files here (for `ffctl submit`) instead of training them here.")
@click.option("--out", type=click.Path(file_okay=False), default="transfer-out", help="Folder for the plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--seed", type=int, default=0, help="Seed of the bootstrap.")
def transfer(sweep, sizes, lr_grid, tokens_per_param, store, workers, write_only, out, as_json, seed) -> None:
    """Train a pilot grid (learning rates x a few of SWEEP's sizes, at a small D/N) and say whether the
    sweep's learning rate is right for all its sizes: each size's optimum with an interval, and its drift."""
    from ff_client.fit.plots import plot_transfer
    from ff_client.fit.transfer import analyze_transfer, pilot_runs
    from ff_client.pilot import grid_of, pilot_sizes, pilot_sweeps

    resolved = load_resolved(sweep, verify=write_only is None, say=output.say)
    pilots = pilot_sweeps(resolved, pilot_sizes(resolved, sizes.split(",") if sizes else None),
                          grid_of(lr_grid, resolved), tokens_per_param)
    cost = sum(plan_sweep(p).total_flops for p in pilots)
    output.say(f"transfer pilot: {len(pilots)} learning rates x {len(pilots[0].spec.budgets)} sizes at D/N "
               f"{tokens_per_param:g}, {cost:.3g} FLOPs ({cost / plan_sweep(resolved).total_flops:.1%} of the sweep)")
    if write_only:
        folder = Path(write_only)
        folder.mkdir(parents=True, exist_ok=True)
        for pilot in pilots:
            (folder / f"{pilot.name}.yaml").write_text(yaml.safe_dump(pilot.to_manifest(), sort_keys=False))
        output.say(f"wrote {len(pilots)} sweep files to {folder}")
        output.next_step(f"ffctl submit {folder}/<each>.yaml, then ffctl transfer {sweep} again here to analyse")
        return
    uri = store or anchored(resolved.spec.storage.uri, Path(sweep).parent)
    target = open_store(uri, spec_endpoint=resolved.spec.storage.endpoint_url)
    for pilot in pilots:
        summary = run_plan(pilot, plan_sweep(pilot), target, workers)
        if summary.failed:
            output.warn(f"{pilot.name}: {len(summary.failed)} run(s) failed; logs under {target.uri}/{pilot.folder}/logs")
    folder_uri = within(target.uri, pilots[0].folder)
    runs, left = pilot_runs(open_store(folder_uri, spec_endpoint=resolved.spec.storage.endpoint_url))
    for reason in left:
        output.warn(f"left out: {reason}")
    if not runs:
        raise FlopsFitError(f"{folder_uri}: no finished pilot runs to analyse")
    result = analyze_transfer(runs, resolved.spec.training.learning_rate, seed)
    Path(out).mkdir(parents=True, exist_ok=True)
    plot = plot_transfer(result, Path(out) / "transfer.png")
    if as_json:
        click.echo(json.dumps(transfer_json(result, plot), indent=1))
    else:
        rows = [("size", "N", "LR*", "95% interval", "basin (within 1%)", "sweep LR costs")]
        for s in result.sizes:
            interval = f"[{s.lr.low:.3g}, {s.lr.high:.3g}]" if s.lr.low is not None else "at the grid's edge"
            cost = f"{s.cost_of_sweep_lr:.4f}" if s.cost_of_sweep_lr is not None else "-"
            rows.append((s.size, f"{s.n_params:.3g}", f"{s.lr.value:.3g}", interval,
                         f"{s.basin[0]:.3g} - {s.basin[1]:.3g}", cost))
        click.echo(aligned(rows))
        click.echo(result.verdict())
    output.say(f"plot: {plot}")


def transfer_json(result, plot: Path) -> dict:
    return {"transfers": result.transfers, "verdict": result.verdict(), "sweepLearningRate": result.sweep_lr,
            "slope": result.slope.to_json(),
            "sizes": [{"size": s.size, "nParams": s.n_params, "lrOpt": s.lr.to_json(),
                       "basin": list(s.basin), "atEdge": s.at_edge, "sweepLrCost": s.cost_of_sweep_lr,
                       "curve": [list(p) for p in s.curve]} for s in result.sizes],
            "plot": str(plot)}


COMMANDS = (transfer,)
