"""The analysis API behind `ffctl analyze`: observations -> fits, intervals, backtest -> table, report, plots.

Usable from a notebook: `analyze(load_observations(open_store(uri)))` or `analyze(load_points("x.csv"))`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ff_client.backtest import backtest
from ff_client.constrained import R_STAR_GRID, ConstrainedFit, constrained_stats, fit_data_constrained
from ff_client.envelope import EnvelopeFit, KaplanFit, fit_kaplan, fit_training_curves
from ff_client.isoflop import IsoflopFit, fit_isoflop
from ff_client.outliers import flag_outliers
from ff_client.parametric import ParametricFit, fit_parametric
from ff_client.plots import plot_contours, plot_isoflop, plot_optimal, plot_residuals
from ff_client.points import Exclusion, Observations, Point, load_observations
from ff_client.report import report_json, report_text
from ff_client.table import WRITERS, Row, optimal_rows, table_budgets
from ff_client.uncertainty import Interval, bootstrap, curves_stats, isoflop_stats, kaplan_stats, parametric_stats
from ff_core.store import Store


@dataclass(frozen=True)
class Settings:
    targets: tuple[float, ...] = ()   # compute budgets to predict at, beyond the table's
    resamples: int = 1000             # bootstrap resamples (0: no intervals)
    seed: int = 0
    workers: int | None = None        # processes for the bootstrap (default: all cores)
    keep_outliers: bool = False
    delta: float = 1e-3               # Huber delta of the parametric fit (on log-loss)


@dataclass(frozen=True)
class Analysis:
    sweep: str
    points: tuple[Point, ...]
    isoflop: IsoflopFit
    parametric: ParametricFit | None
    curves: EnvelopeFit | None    # Approach 1, from the training curves (stores only)
    kaplan: KaplanFit | None
    constrained: ConstrainedFit | None  # Muennighoff et al. (2023), when points repeat their data
    intervals: dict[str, dict[str, Interval]]  # approach -> reported number -> interval
    rows: tuple[Row, ...]
    settings: Settings
    excluded: tuple[Exclusion, ...] = ()
    backtest: dict | None = None
    failed: dict[str, int] = field(default_factory=dict)
    correlations: dict[str, float] = field(default_factory=dict)  # between parametric parameters
    warnings: tuple[str, ...] = ()
    files: list[Path] = field(default_factory=list)

    def text(self) -> str:
        return report_text(self)

    def to_json(self) -> dict[str, Any]:
        return report_json(self)


def _without_outliers(points: tuple[Point, ...], keep: bool, delta: float):
    """(points kept, exclusions, warnings, the parametric fit of the points kept)."""
    fit = fit_parametric(points, delta)
    flagged = flag_outliers(points, fit) if fit is not None else []
    if not flagged:
        return points, [], [], fit
    if keep:
        return points, [], [f"{p.label}: far off the parametric fit (modified z {z:+.1f}); kept (--keep-outliers)"
                             for p, z in flagged], fit
    dropped = {id(p) for p, _ in flagged}
    exclusions = [Exclusion(p.label, f"outlier: far off the parametric fit (modified z {z:+.1f}, N={p.n_params:.3g}, "
                                     f"D={p.tokens:.3g}, loss {p.loss:.4g})") for p, z in flagged]
    kept = tuple(p for p in points if id(p) not in dropped)
    return kept, exclusions, [], fit_parametric(kept, delta)


def analyze(observations: Observations, settings: Settings = Settings()) -> Analysis:
    """Fit every approach, bootstrap their intervals, backtest, and tabulate the compute-optimal allocation."""
    points, outliers, kept, parametric = _without_outliers(observations.points, settings.keep_outliers, settings.delta)
    isoflop = fit_isoflop(points)
    curves, kaplan = fit_training_curves(observations.records), fit_kaplan(points)
    constrained = fit_data_constrained(points, settings.delta)
    budgets = table_budgets([p.budget for p in points], settings.targets) if points else []
    targets = tuple(c for c, _ in budgets)
    central = {"isoflop": isoflop_stats(isoflop, targets), "parametric": parametric_stats(parametric, targets),
               "curves": curves_stats(curves, targets), "kaplan": kaplan_stats(kaplan),
               "constrained": constrained_stats(constrained)}
    intervals = {k: {n: Interval(v) for n, v in stats.items()} for k, stats in central.items() if stats}
    failed, correlations = {}, {}
    if settings.resamples > 0 and points:
        boot = bootstrap(points, central, targets, settings.resamples, settings.seed, settings.workers,
                         parametric.theta if parametric else None, settings.delta, observations.records, constrained)
        intervals, failed, correlations = boot["intervals"], boot["failed"], boot["correlations"]
    excluded = tuple(observations.excluded) + tuple(outliers)
    warnings = list(isoflop.warnings) + (list(parametric.warnings) if parametric else []) + kept
    if constrained is not None and constrained.r_star in (R_STAR_GRID[0], R_STAR_GRID[-1]):
        warnings.append(f"data-constrained fit: R*_D sits at the edge of its grid ({constrained.r_star:.3g}); "
                        "the data do not pin it down (too few or too little repetition)")
    warnings += [f"excluded {e.label}: {e.reason}" for e in excluded]
    warnings += [f"{n} of {settings.resamples} {k} bootstrap fits failed and were left out" for k, n in failed.items() if n]
    rows = optimal_rows(budgets, {k: v for k, v in intervals.items() if k not in ("kaplan", "constrained")})
    return Analysis(observations.sweep, points, isoflop, parametric, curves, kaplan, constrained, intervals, tuple(rows), settings,
                    excluded, backtest(points), failed, correlations, tuple(warnings))


def write_outputs(analysis: Analysis, out_dir: str | Path, formats=("md", "csv", "tex", "json"),
                  plot_formats=("png",)) -> list[Path]:
    """table.<fmt> for each table format, report.txt, and each plot in each image format, in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for fmt in formats:
        files.append(out / f"table.{fmt}")
        files[-1].write_text(WRITERS[fmt](list(analysis.rows)))
    files.append(out / "report.txt")
    files[-1].write_text(analysis.text() + "\n")
    for ext in plot_formats:
        files.append(plot_isoflop(analysis.isoflop, out / f"isoflop.{ext}"))
        if analysis.isoflop.n_opt is not None or analysis.parametric is not None:
            files.append(plot_optimal(analysis, out / f"optimal.{ext}"))
        if analysis.parametric is not None:
            files.append(plot_contours(analysis, out / f"contours.{ext}"))
            files.append(plot_residuals(analysis, out / f"residuals.{ext}"))
    return files


def analyze_store(store: Store, out_dir: str | Path | None = None, settings: Settings = Settings()) -> Analysis:
    """Everything `ffctl analyze` does for a result store: read, fit, and write outputs when out_dir is given."""
    return finish(analyze(load_observations(store), settings), out_dir)


def finish(analysis: Analysis, out_dir: str | Path | None, **formats) -> Analysis:
    """Write the outputs (when out_dir is given) and record their paths on the analysis."""
    if out_dir is not None:
        analysis.files.extend(write_outputs(analysis, out_dir, **formats))
    return analysis

