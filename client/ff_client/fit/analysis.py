"""The analysis API behind `ffctl analyze`: observations -> every approach's fit, intervals, backtest -> outputs.

Usable from a notebook: `analyze(load_observations(open_store(uri)))` or `analyze(load_points("x.csv"))`;
`analysis.fit("parametric")` is an approach's fit, `analysis.results["isoflop"].parameters["a"]` a number
with its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ff_client.fit.approach import QUANTITIES, Approach, FitData, Result, Row, Settings
from ff_client.fit.approaches import APPROACHES
from ff_client.fit.approaches.parametric import fit_parametric
from ff_client.fit.backtest import backtest
from ff_client.fit.bootstrap import Intervals, Numbers, bootstrap, numbers
from ff_client.fit.estimate import MAX_FAILED_SHARE, Estimate
from ff_client.fit.noise import sweep_noise
from ff_client.fit.outliers import Flag, flag_outliers
from ff_client.fit.plausibility import non_monotone, untrained
from ff_client.fit.plots import write_plots
from ff_client.fit.points import Exclusion, Observations, Point, load_observations
from ff_client.fit.report import report_json, report_text
from ff_client.fit.table import WRITERS, table_budgets
from ff_core.schedules import describe
from ff_core.store import Store

__all__ = ["Analysis", "Settings", "analyze", "analyze_store", "finish", "write_outputs"]


@dataclass(frozen=True)
class Analysis:
    sweep: str
    points: tuple[Point, ...]
    results: dict[str, Result]  # by approach name, in the registry's order
    rows: tuple[Row, ...]
    settings: Settings
    excluded: tuple[Exclusion, ...] = ()
    backtest: dict | None = None
    outliers: tuple[Flag, ...] = ()  # far off the parametric fit: flagged, excluded only when asked
    warnings: tuple[str, ...] = ()
    files: list[Path] = field(default_factory=list)
    schedule: str = ""  # the learning-rate schedule(s) the points were trained with, as the report names it
    overtraining: Any = None  # ff_client.fit.overtrain.Overtraining of the ladder runs, or why there is none (str)

    def fit(self, name: str) -> Any | None:
        """An approach's fit of all the data (None where it was not fitted)."""
        result = self.results.get(name)
        return None if result is None else result.fit

    def text(self) -> str:
        return report_text(self)

    def to_json(self) -> dict[str, Any]:
        return report_json(self)


def _without(points: tuple[Point, ...], dropped: list[tuple[Point, str]]) -> tuple[Point, ...]:
    gone = {id(p) for p, _ in dropped}
    return tuple(p for p in points if id(p) not in gone) if gone else points


def _screen(points: tuple[Point, ...], settings: Settings):
    """(points kept, exclusions, outlier flags, the parametric fit of the points kept when it was made here).

    Implausible runs are excluded (ff_client.fit.plausibility); points far off the parametric fit are
    flagged, and excluded only with settings.exclude_outliers (ff_client.fit.outliers).
    """
    broken = untrained(points)
    broken += non_monotone(_without(points, broken), sweep_noise(points))
    implausible = [Exclusion(p.label, why) for p, why in broken]
    plausible = _without(points, broken)
    fit = fit_parametric(plausible, settings.delta)
    flags = [Flag(p, z, settings.exclude_outliers) for p, z in (flag_outliers(plausible, fit) if fit else [])]
    if not settings.exclude_outliers or not flags:
        return plausible, implausible, flags, fit
    dropped = {id(f.point) for f in flags}
    exclusions = [Exclusion(f.point.label, "outlier: " + f.reason()) for f in flags]
    return tuple(p for p in plausible if id(p) not in dropped), implausible + exclusions, flags, None


def _finite(prediction: dict[str, Estimate]) -> bool:
    return all(math.isfinite(e.value) and e.value > 0 for e in prediction.values())


def _rows(name: str, budgets: list[tuple[float, str]],
          predictions: dict[float, dict[str, Estimate]]) -> tuple[Row, ...]:
    """Table rows of an approach; a prediction that is not a finite positive number never reaches a table."""
    largest = max(c for c, kind in budgets if kind == "sweep")
    return tuple(Row(name, c, p["n_opt"], p["d_opt"], p["l_opt"], kind, max(c / largest, 1.0))
                 for c, kind in budgets if (p := predictions.get(c)) is not None and _finite(p))


def _unsupported(results: dict[str, Result], spread: dict[str, Intervals], settings: Settings) -> list[str]:
    """Warnings where the data do not support a number: failed resamples (too many: no interval), an estimate
    outside its own interval, a prediction that is not finite."""
    found = []
    for name, r in results.items():
        if r.failed and r.failed <= MAX_FAILED_SHARE * settings.resamples:
            found.append(f"{r.failed} of {settings.resamples} {name} bootstrap fits failed and were left out")
        elif r.failed:
            found.append(f"{name}: {r.failed} of {settings.resamples} bootstrap fits failed (more than "
                         f"{MAX_FAILED_SHARE:.0%}): its numbers are given without intervals")
        estimates = [(k, v) for k, v in r.parameters.items()]
        estimates += [(f"{q} at C={row.flops:.3g}", getattr(row, q)) for row in r.rows for q in QUANTITIES]
        outside = [k for k, v in estimates if v.low is not None and not v.low <= v.value <= v.high]
        if outside:
            found.append(f"{name}: {', '.join(outside[:4])} lie outside their own bootstrap intervals: the fit is "
                         "unstable (resamples disagree with the full data); trust these numbers less")
    found += [f"{name}: its prediction at C={c:.3g} is not a finite positive number; left out of the table"
              for name, s in spread.items() for c, p in s.predictions.items() if not _finite(p)]
    return found


def _disagreements(results: dict[str, Result]) -> list[str]:
    """What a cross-check (an approach naming the one it `checks`) finds against that approach's numbers."""
    return [line for r in results.values() if (other := getattr(r.approach, "checks", None)) in results
            and r.fit is not None for line in r.approach.disagreement(r, results[other])]


def _without_intervals(central: Numbers) -> Intervals:
    return Intervals({k: Estimate(v) for k, v in central.parameters.items()},
                     {c: {q: Estimate(v) for q, v in p.items()} for c, p in central.predictions.items()}, 0, ())


def schedule_of(records) -> str:
    """The schedule(s) of the records' recipes in words: a WSD sweep's cooldown, and that it shared trunks."""
    named = {describe(training) for record in records
             if (training := (record.identity or {}).get("training") or {}).get("schedule")}
    return ", ".join(sorted(named))


def analyze(observations: Observations, settings: Settings = Settings(),
            approaches: tuple[Approach, ...] = APPROACHES) -> Analysis:
    """Fit every approach, bootstrap their intervals, backtest, and tabulate the compute-optimal allocation."""
    points, screened_out, flags, screened = _screen(observations.points, settings)
    data = FitData(points, observations.records)
    reuse = {"parametric": screened} if screened is not None else {}  # the screen's fit, when it dropped nothing
    fits = {a.name: reuse[a.name] if a.name in reuse else a.fit(data, settings) for a in approaches}
    budgets = table_budgets([p.budget for p in points], settings.targets) if points else []
    targets = tuple(c for c, _ in budgets)
    central = {a.name: (a, fits[a.name], n) for a in approaches if (n := numbers(a, fits[a.name], targets))}
    bootstrapped = settings.resamples > 0 and bool(points)
    if bootstrapped:
        spread = bootstrap(data, central, targets, settings)
    else:
        spread = {name: _without_intervals(n) for name, (_, _, n) in central.items()}
    results = {}
    for a in approaches:
        s = spread.get(a.name)
        results[a.name] = Result(a, fits[a.name], s.parameters if s else {},
                                 _rows(a.name, budgets, s.predictions) if s else (),
                                 s.failed if s and bootstrapped else None, s.replicates if s else (), settings)
    excluded = tuple(observations.excluded) + tuple(screened_out)
    warnings = list(observations.notes)
    warnings += [w for r in results.values() if r.fit is not None for w in r.approach.warnings(r)]
    warnings += [f.text() for f in flags if not f.excluded]
    warnings += [f"excluded {e.label}: {e.reason}" for e in excluded]
    warnings += _unsupported(results, spread, settings)
    warnings += _disagreements(results)
    rows = tuple(row for r in results.values() for row in r.rows)
    return Analysis(observations.sweep, points, results, rows, settings, excluded, backtest(points, settings),
                    tuple(flags), tuple(warnings), schedule=schedule_of(observations.records),
                    overtraining=_overtraining(observations.ladder, settings))


def _overtraining(ladder, settings: Settings):
    """The over-training law of the ladder runs, the largest size held out; the reason as text when it cannot
    be fitted; None without a ladder."""
    if not ladder:
        return None
    from ff_client.fit.overtrain import analyze_overtraining, runs_from_records
    from ff_core.errors import FlopsFitError

    try:
        return analyze_overtraining(runs_from_records(ladder), seed=settings.seed,
                                    resamples=min(settings.resamples, 200))
    except FlopsFitError as error:
        return f"not fitted: {error}"


def write_outputs(analysis: Analysis, out_dir: str | Path, formats=tuple(WRITERS), plot_formats=("png",)) -> list[Path]:
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
        files += write_plots(analysis, out, ext)
    return files


def analyze_store(store: Store, out_dir: str | Path | None = None, settings: Settings = Settings()) -> Analysis:
    """Everything `ffctl analyze` does for a result store: read, fit, and write outputs when out_dir is given."""
    return finish(analyze(load_observations(store), settings), out_dir)


def finish(analysis: Analysis, out_dir: str | Path | None, **formats) -> Analysis:
    """Write the outputs (when out_dir is given) and record their paths on the analysis."""
    if out_dir is not None:
        analysis.files.extend(write_outputs(analysis, out_dir, **formats))
    return analysis
