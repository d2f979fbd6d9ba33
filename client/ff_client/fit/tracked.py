"""`ffctl analyze --track`: the fit as a run of the sweep's tracker (ff_core.tracking): every approach's
parameters with their intervals as metrics, the settings as parameters, the tables, report and plots as
files. Each analysis is a run of its own ("fit", kind fit) in the sweep's group."""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

from ff_core.spec import Tracking
from ff_core.trackers import open_tracker
from ff_core.tracking import RunInfo


def fit_metrics(analysis) -> dict[str, float]:
    """fit/<approach>/<parameter> (and _low, _high where bootstrapped), the table's predictions, the counts."""
    metrics: dict[str, float] = {"points": len(analysis.points), "excluded": len(analysis.excluded)}
    for name, result in analysis.results.items():
        for key, estimate in result.parameters.items():
            metrics[f"fit/{name}/{key}"] = estimate.value
            if estimate.low is not None:
                metrics[f"fit/{name}/{key}_low"] = estimate.low
                metrics[f"fit/{name}/{key}_high"] = estimate.high
    for row in analysis.rows:
        for quantity in ("n_opt", "d_opt", "l_opt"):
            budget = f"{row.flops:.6g}".replace("+", "")  # MLflow keys allow letters, digits and _-./ : only
            metrics[f"table/{row.approach}/C{budget}/{quantity}"] = getattr(row, quantity).value
    return metrics


def track_fit(tracking: Tracking, analysis, endpoint_url: str | None = None,
              warn: Callable[[str], None] | None = None) -> list[str]:
    """Log `analysis` (with its written files) to every backend of `tracking`; the backends that took it."""
    params = {f"settings.{k}": v for k, v in asdict(analysis.settings).items()}
    run = RunInfo(analysis.sweep, "fit", "fit", {"sweep": analysis.sweep}, params | {"schedule": analysis.schedule},
                  resume=False)
    tracker = open_tracker(tracking, run, endpoint_url, warn)
    tracker.artifacts(list(analysis.files))
    took = tracker.active
    tracker.finish(fit_metrics(analysis), "completed")
    return [name for name in took if name in tracker.finished]
