"""The analysis as text (an lmfit-style report) and as JSON (the schema `ffctl analyze --json` prints).

Each approach writes its own section and JSON part (ff_client.fit.approach); this module puts them
together with the table, the backtest and the exclusions.

JSON schema (version 1):
  sweep, points (count), settings {resamples, seed, targets, exclude_outliers, keep_outliers (= not exclude_outliers),
                                   level, huber_delta},
  approaches.isoflop: parameters {a, b, l_exponent, n_coefficient, d_coefficient, l_coefficient[, l_floor]},
                      r2 {n_opt, d_opt, l_opt}, curves [{budget, points, n_opt, d_opt, l_opt, interior,
                      problem}], predictions [{flops, kind, n_opt, d_opt, l_opt}]
  approaches.isoflop_parabola (the cross-check): parameters {a, b, l_exponent}, r2, curves [{budget, points,
                      points_used, n_opt, interior, problem}]
  approaches.parametric: parameters {E, A, B, alpha, beta, a, b}, objective, converged, predictions [...],
                      correlations {"alpha,beta": r, ...} (bootstrap, log-parameters); null when not fitted
  approaches.curves (Approach 1, stores only): parameters {a, b, l_exponent}, r2, predictions
  approaches.kaplan: parameters {alpha_n, n_c, alpha_d, d_c}, r2
  approaches.data_constrained (points with unique_tokens < tokens): parameters {r_star_d, E, A, B, alpha, beta}
                      objective, repeated_points
  every parameter and predicted quantity is {value, ci_low, ci_high} (ci_* null without a bootstrap);
  table [{approach, flops, kind, reach (x the largest budget; > 1: extrapolated), n_opt, d_opt, l_opt,
  tokens_per_param}], backtest {held_out, observed, isoflop|parametric: {n_opt, l_opt, n_opt_error,
  l_opt_error, n_opt_interval, l_opt_interval, covered {n_opt, l_opt}}, unable [approach]}, excluded [{label, reason}],
  outliers [{label, z, n_params, tokens, loss, excluded}] (far off the parametric fit; kept unless exclude_outliers),
  bootstrap_failures {approach: count}, warnings [...], files [...].
"""

from __future__ import annotations

from typing import Any

from ff_client.fit.backtest import PREDICTORS
from ff_client.fit.estimate import LEVEL
from ff_client.fit.table import to_markdown

SCHEMA_VERSION = 1


def _backtest_section(bt: dict | None) -> list[str]:
    if not bt:
        return []
    lines = ["## Backtest (largest budget held out)"]
    if "observed" not in bt:
        return lines + [f"  C {bt['held_out']:.3g}: {bt['problem']}"]
    lines.append(f"  C {bt['held_out']:.3g}: observed N_opt {bt['observed']['n_opt']:.3g}, "
                 f"L_opt {bt['observed']['l_opt']:.4f}")
    for approach in (a.name for a in PREDICTORS):
        if approach in bt:
            r = bt[approach]
            covered = r.get("covered")
            inside = "" if covered is None else "; held-out truth " + ", ".join(
                f"{'inside' if covered[q] else 'OUTSIDE'} the {q} interval" for q in ("n_opt", "l_opt"))
            lines.append(f"  {approach:10} predicted N_opt {r['n_opt']:.3g} ({r['n_opt_error']:+.1%}), "
                         f"L_opt {r['l_opt']:.4f} ({r['l_opt_error']:+.2%}){inside}")
    lines += [f"  {name:10} no prediction: the other budgets do not support its fit" for name in bt.get("unable", ())]
    return lines


def _overtraining_section(found) -> list[str]:
    if found is None:
        return []
    if isinstance(found, str):
        return ["## Over-training ladder (largest size held out)", f"  {found}", ""]
    body = found.text().replace("## ", "### ")
    return ["## Over-training ladder (largest size held out)", *(f"  {line}" if line else "" for line in
                                                                  body.splitlines()), ""]


def report_text(analysis) -> str:
    """Table first, then per approach its fit statistics and parameters with intervals, backtest, exclusions."""
    s = analysis.settings
    ci = (f"{int(LEVEL * 100)}% bootstrap intervals, {s.resamples} resamples, seed {s.seed}" if s.resamples
          else "no intervals")
    budgets = len({p.budget for p in analysis.points})
    lines = [f"# {analysis.sweep}: {len(analysis.points)} points, {budgets} budgets ({ci})", ""]
    if analysis.schedule:
        lines[-1:-1] = [f"learning-rate schedule: {analysis.schedule}"]
    lines.append(to_markdown(list(analysis.rows)) if analysis.rows else "(no compute-optimal table: see warnings)\n")
    for result in analysis.results.values():
        lines += result.approach.section(result)
    lines += _backtest_section(analysis.backtest)
    lines += _overtraining_section(analysis.overtraining)
    kept = [f for f in analysis.outliers if not f.excluded]
    if kept:
        lines += ["## Flagged outliers (kept: the Huber loss bounds their pull; --exclude-outliers drops them)"]
        lines += [f"  {f.text()}" for f in kept]
    if analysis.excluded:
        lines += ["## Excluded"] + [f"  {e.label}: {e.reason}" for e in analysis.excluded]
    return "\n".join(lines)


def _overtraining_json(found) -> dict[str, Any]:
    """The ladder's part, only where the sweep has a ladder (a sweep without one reads as it always did)."""
    if found is None:
        return {}
    return {"overtraining": {"error": found} if isinstance(found, str) else found.to_json()}


def report_json(analysis) -> dict[str, Any]:
    s = analysis.settings
    approaches: dict[str, Any] = {}
    for result in analysis.results.values():
        a = result.approach
        if result.fit is not None:
            approaches[a.json_key] = a.to_json(result)
        elif a.listed:
            approaches[a.json_key] = None
    return {
        "schema_version": SCHEMA_VERSION, "sweep": analysis.sweep, "points": len(analysis.points),
        "settings": {"resamples": s.resamples, "seed": s.seed, "targets": list(s.targets),
                     "exclude_outliers": s.exclude_outliers, "keep_outliers": not s.exclude_outliers, "level": LEVEL,
                     "huber_delta": s.delta},
        "approaches": approaches,
        "table": [r.to_json() for r in analysis.rows],
        "backtest": analysis.backtest,
        "excluded": [{"label": e.label, "reason": e.reason} for e in analysis.excluded],
        "outliers": [f.to_json() for f in analysis.outliers],
        "bootstrap_failures": {name: r.failed for name, r in analysis.results.items() if r.failed is not None},
        "warnings": list(analysis.warnings),
        "files": [str(f) for f in analysis.files],
    } | _overtraining_json(analysis.overtraining)
