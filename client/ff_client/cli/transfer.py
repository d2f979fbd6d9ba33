"""ffctl transfer: does the sweep's learning rate carry across its sizes? A pilot grid, trained and analysed."""

from __future__ import annotations

import json

import click

from ff_client import api
from ff_client.cli import output
from ff_client.pilot import numbers_of


@click.command()
@click.argument("sweep", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--data", "grid", type=click.Path(exists=True, dir_okay=False),
              help="Analyse a published learning-rate grid instead (CSV/JSON: n_params, tokens, lr, loss; an empty "
                   "or nan loss is a diverged run), without training.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="With --data: the learning rate to judge [default: the smallest size's LR*].")
@click.option("--sizes", help="Comma-separated size names [default: the smallest, the middle and the largest].")
@click.option("--lr-grid", help="Comma-separated learning rates [default: the sweep's x 2^-3 .. 2^3].")
@click.option("--tokens-per-param", default="20",
              help="D/N of every pilot run (small: the pilot is cheap); two or more, comma-separated, give the "
                   "law's exponent of D too.")
@click.option("--batches", help="Comma-separated global batches in tokens [default: the sweep's]; three or more give "
                                "the batch law B*(D) and each cell's joint optimum.")
@click.option("--store", envvar="FF_STORE", help="Result store URI [default: the sweep's]. [env: FF_STORE]")
@click.option("--workers", type=click.IntRange(1), default=1, help="Runs trained at once.")
@click.option("--write-only", "write_only", type=click.Path(file_okay=False),
              help="Write the pilot's sweep files here (for `ffctl submit`) instead of training them here.")
@click.option("--out", type=click.Path(file_okay=False), default="transfer-out", help="Folder for the plot.")
@click.option("--write", "write_to", type=click.Path(dir_okay=False),
              help="With SWEEP and --data: write SWEEP with the grid's law LR* = c N^a D^b as its "
                   "training.learningRate to this file (each point then trains at its own rate; the grid's N and D "
                   "must be counted as the sweep counts them).")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--seed", type=int, default=0, help="Seed of the bootstrap.")
def transfer(sweep, grid, lr, sizes, lr_grid, tokens_per_param, batches, store, workers, write_only, write_to, out,
             as_json, seed) -> None:
    """Train a pilot grid (learning rates x a few of SWEEP's sizes, at a small D/N) and say whether the
    sweep's learning rate is right for all its sizes: each size's optimum with an interval, and its drift."""
    if write_to:
        if not (sweep and grid) or sizes or lr_grid or write_only or batches or lr is not None:
            raise click.UsageError("--write puts a --data grid's law into a SWEEP file: give both, and nothing that "
                                   "shapes a pilot (--sizes, --lr-grid, --batches, --write-only) or judges one (--lr)")
        found, law, lawful = api.write_lr_law(sweep, grid, write_to, seed)
        click.echo(law.text())
        output.say(f"wrote {write_to}: sweep {lawful.name} with training.{law.spec_text()}")
        if law.separable is False:
            output.warn("the grid is not separable (the exponent of N differs between its token counts): " + (
                "the law written moves N's exponent with ln(D/N), fitted between the grid's D/N; points beyond them "
                "are extrapolated" if law.slope else f"the law written has one exponent of N, too few cells to "
                f"move it; see the law in N at each {law.key_name} above"))
        if law.linear is False:
            output.warn("N's exponent is not linear in ln(D/N) over the grid (see the law in N at each D/N above): "
                        "the law written misses it at some of the grid's D/N; a sweep near one D/N is better served "
                        "by that D/N's own law")
        output.next_step(f"ffctl plan {write_to}")
        return
    if bool(sweep) == bool(grid):
        raise click.UsageError("give a SWEEP file to train its pilot, or --data FILE to analyse a grid (one of them; "
                               "both with --write, to put the grid's law into the sweep)")
    if grid and (sizes or lr_grid or write_only or batches):
        raise click.UsageError("--sizes, --lr-grid, --batches and --write-only shape a pilot to train; a --data grid "
                               "is analysed as it is")
    if lr is not None and not grid:
        raise click.UsageError("--lr judges a --data grid; a SWEEP's pilot is judged against the sweep's own rate")
    if grid:
        found = api.transfer_grid(grid, lr, seed, out)
        click.echo(json.dumps(found.to_json(), indent=1) if as_json else found.text() + "\n\n" + found.summary())
        return
    chosen = sizes.split(",") if sizes else None
    ratios = numbers_of(tokens_per_param, "--tokens-per-param")
    ratios = ratios if len(ratios) > 1 else ratios[0]
    batch_list = numbers_of(batches, "--batches", integer=True) if batches else None
    if write_only:
        _, pilots = api.transfer_pilots(sweep, chosen, lr_grid, ratios, verify=False, say=output.say,
                                        batches=batch_list)
        api.write_pilots(pilots, write_only)
        output.say(f"wrote {len(pilots)} sweep files to {write_only}")
        output.next_step(f"ffctl submit {write_only}/<each>.yaml, then ffctl transfer {sweep} again here to analyse")
        return
    outcome = api.transfer(sweep, chosen, lr_grid, ratios, store, workers, out, seed, output.say, output.warn,
                           batch_list)
    click.echo(json.dumps(outcome.to_json(), indent=1) if as_json else outcome.text())
    output.say(f"plot: {outcome.plot}")


COMMANDS = (transfer,)
