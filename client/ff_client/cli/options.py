"""Options more than one command takes: the cost estimate's assumptions, the fit's settings, comma lists."""

from __future__ import annotations

import click

from ff_client.fit.laws import HUBER_DELTA
from ff_client.planview import DEFAULT_MFU
from ff_core.flops import H100_BF16_PEAK
from ff_core.layout import ENDPOINT_ENV


def cost_options(fn):
    """--gpu-flops and --mfu, the assumptions of the GPU-hours estimate (plan and submit)."""
    fn = click.option("--mfu", type=click.FloatRange(0, 1, min_open=True), default=DEFAULT_MFU,
                      help="Assumed model FLOPs utilisation, for the cost estimate.")(fn)
    return click.option("--gpu-flops", type=float, default=H100_BF16_PEAK, envvar="FF_GPU_FLOPS",
                        help="Peak FLOP/s of one GPU, for the cost estimate (default: H100/H200 dense bf16). "
                             "[env: FF_GPU_FLOPS]")(fn)


def csv_choice(allowed: tuple[str, ...]):
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
