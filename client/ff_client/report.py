"""The analysis as text (an lmfit-style report) and as JSON (the schema `ffctl analyze --json` prints).

JSON schema (version 1):
  sweep, points (count), settings {resamples, seed, targets, keep_outliers, level},
  approaches.isoflop: parameters {a, b, l_exponent, n_coefficient, d_coefficient, l_coefficient},
                      r2 {n_opt, d_opt, l_opt}, curves [{budget, points, n_opt, d_opt, l_opt, interior, problem}],
                      predictions [{flops, kind, n_opt, d_opt, l_opt}]
  approaches.parametric: parameters {E, A, B, alpha, beta, a, b}, objective, converged, predictions [...]
  approaches.parametric.correlations {"alpha,beta": r, ...} (bootstrap, log-parameters)
  approaches.curves (Approach 1, stores only): parameters {a, b, l_exponent}, r2, predictions
  approaches.kaplan: parameters {alpha_n, n_c, alpha_d, d_c}, r2
  approaches.data_constrained (points with unique_tokens < tokens): parameters {r_star_d, E, A, B, alpha, beta}
                      objective, repeated_points
  every parameter and predicted quantity is {value, ci_low, ci_high} (ci_* null without a bootstrap);
  table [{approach, flops, kind, n_opt, d_opt, l_opt, tokens_per_param}], backtest, excluded [{label, reason}],
  bootstrap_failures {approach: count}, warnings [...], files [...].
"""

from __future__ import annotations

from typing import Any

from ff_client.table import to_markdown
from ff_client.uncertainty import LEVEL

SCHEMA_VERSION = 1


def _ci(interval) -> str:
    if interval.low is None:
        return f"{interval.value:.4g}"
    return f"{interval.value:.4g}  [{interval.low:.4g}, {interval.high:.4g}]"


def _parameters(analysis, approach: str) -> dict:
    return {k: v for k, v in analysis.intervals.get(approach, {}).items() if "@" not in k}


def _law(law) -> str:
    return f"  {law.name} = {law.coefficient:.4g} * C^{law.exponent:.4f}   (R^2 {law.r2:.4f})"


def _isoflop_section(analysis) -> list[str]:
    lines = ["## Approach 2: isoFLOP parabolas (Hoffmann et al. 2022)"]
    for curve in analysis.isoflop.curves:
        where = f"N_opt {curve.n_opt:.3g}, L_opt {curve.l_opt:.4f}" if curve.n_opt else "no minimum"
        flag = "" if curve.interior else "  (excluded from the power laws)"
        lines.append(f"  C {curve.budget:.3g}: {len(curve.points)} points, {where}{flag}")
    iso = analysis.isoflop
    lines += [_law(law) for law in (iso.n_opt, iso.d_opt, iso.l_opt) if law is not None]
    return lines + [f"  {name:14} {_ci(v)}" for name, v in _parameters(analysis, "isoflop").items()]


def _parametric_section(analysis) -> list[str]:
    lines = ["## Approach 3: parametric L(N, D) = E + A/N^alpha + B/D^beta"]
    p = analysis.parametric
    if p is None:
        return lines + ["  not fitted: fewer than 6 points"]
    lines.append(f"  Huber objective {p.objective:.4g} (delta {analysis.settings.delta:g}, log-loss), "
                 f"{'converged' if p.converged else 'NOT converged'}, {p.starts} grid starts")
    lines += [f"  {name:14} {_ci(v)}" for name, v in _parameters(analysis, "parametric").items()]
    strong = sorted(analysis.correlations.items(), key=lambda kv: -abs(kv[1]))
    if strong:
        lines.append("  correlations (bootstrap, log-parameters): " +
                     ", ".join(f"C({k}) {v:+.3f}" for k, v in strong if abs(v) >= 0.1))
    return lines


def _envelope_sections(analysis) -> list[str]:
    lines = ["## Approach 1: envelope of the training curves"]
    c = analysis.curves
    if c is None:
        lines.append("  not fitted: needs result records with loss curves from 2 or more sizes")
    else:
        lines += [_law(law) for law in (c.n_opt, c.d_opt, c.l_opt)]
        lines += [f"  {name:14} {_ci(v)}" for name, v in _parameters(analysis, "curves").items()]
    lines.append("## Kaplan-style: L(N) = (N_c/N)^alpha_N, L(D) = (D_c/D)^alpha_D on the lower envelopes")
    k = analysis.kaplan
    if k is None:
        return lines + ["  not fitted: fewer than 3 envelope points"]
    lines.append(f"  R^2 of L(N) {k.r2_n:.4f}, of L(D) {k.r2_d:.4f}")
    return lines + [f"  {name:14} {_ci(v)}" for name, v in _parameters(analysis, "kaplan").items()]


def _constrained_section(analysis) -> list[str]:
    fit = analysis.constrained
    if fit is None:
        return []
    lines = ["## Data-constrained (Muennighoff et al. 2023): D' = U + U R*(1 - exp(-(D/U - 1)/R*))",
             f"  {fit.repeated_points} points repeat their data; R*_D profiled on a log grid; "
             f"Huber objective {fit.surface.objective:.4g}"]
    return lines + [f"  {name:14} {_ci(v)}" for name, v in _parameters(analysis, "constrained").items()]


def _backtest_section(bt: dict | None) -> list[str]:
    if not bt:
        return []
    lines = ["## Backtest (largest budget held out)"]
    if "observed" not in bt:
        return lines + [f"  C {bt['held_out']:.3g}: {bt['problem']}"]
    lines.append(f"  C {bt['held_out']:.3g}: observed N_opt {bt['observed']['n_opt']:.3g}, L_opt {bt['observed']['l_opt']:.4f}")
    for approach in ("isoflop", "parametric"):
        if approach in bt:
            r = bt[approach]
            lines.append(f"  {approach:10} predicted N_opt {r['n_opt']:.3g} ({r['n_opt_error']:+.1%}), "
                         f"L_opt {r['l_opt']:.4f} ({r['l_opt_error']:+.2%})")
    return lines


def report_text(analysis) -> str:
    """Table first, then per approach its fit statistics and parameters with intervals, backtest, exclusions."""
    s = analysis.settings
    ci = f"{int(LEVEL * 100)}% bootstrap intervals, {s.resamples} resamples, seed {s.seed}" if s.resamples else "no intervals"
    lines = [f"# {analysis.sweep}: {len(analysis.points)} points, {len(analysis.isoflop.curves)} budgets ({ci})", ""]
    lines.append(to_markdown(list(analysis.rows)) if analysis.rows else "(no compute-optimal table: see warnings)\n")
    lines += _isoflop_section(analysis) + _parametric_section(analysis) + _envelope_sections(analysis)
    lines += _constrained_section(analysis)
    lines += _backtest_section(analysis.backtest)
    if analysis.excluded:
        lines += ["## Excluded"] + [f"  {e.label}: {e.reason}" for e in analysis.excluded]
    return "\n".join(lines)


def _predictions(analysis, approach: str) -> list[dict]:
    return [{"flops": r.flops, "kind": r.kind, "n_opt": r.n_opt.to_json(), "d_opt": r.d_opt.to_json(),
             "l_opt": r.l_opt.to_json()} for r in analysis.rows if r.approach == approach]


def report_json(analysis) -> dict[str, Any]:
    iso, par, s = analysis.isoflop, analysis.parametric, analysis.settings
    approaches: dict[str, Any] = {
        "isoflop": {
            "parameters": {k: v.to_json() for k, v in _parameters(analysis, "isoflop").items()},
            "r2": {law.name: law.r2 for law in (iso.n_opt, iso.d_opt, iso.l_opt) if law is not None},
            "curves": [{"budget": c.budget, "points": len(c.points), "n_opt": c.n_opt, "d_opt": c.d_opt,
                        "l_opt": c.l_opt, "interior": c.interior, "problem": c.problem} for c in iso.curves],
            "predictions": _predictions(analysis, "isoflop"),
        },
        "parametric": None if par is None else {
            "parameters": {k: v.to_json() for k, v in _parameters(analysis, "parametric").items()},
            "objective": par.objective, "converged": par.converged,
            "predictions": _predictions(analysis, "parametric"),
        },
    }
    if analysis.curves is not None:
        c = analysis.curves
        approaches["curves"] = {
            "parameters": {k: v.to_json() for k, v in _parameters(analysis, "curves").items()},
            "r2": {law.name: law.r2 for law in (c.n_opt, c.d_opt, c.l_opt)},
            "predictions": _predictions(analysis, "curves"),
        }
    if analysis.kaplan is not None:
        approaches["kaplan"] = {"parameters": {k: v.to_json() for k, v in _parameters(analysis, "kaplan").items()},
                                "r2": {"L(N)": analysis.kaplan.r2_n, "L(D)": analysis.kaplan.r2_d}}
    if approaches["parametric"] is not None:
        approaches["parametric"]["correlations"] = analysis.correlations
    if analysis.constrained is not None:
        c = analysis.constrained
        approaches["data_constrained"] = {
            "parameters": {k: v.to_json() for k, v in _parameters(analysis, "constrained").items()},
            "objective": c.surface.objective, "repeated_points": c.repeated_points}
    return {
        "schema_version": SCHEMA_VERSION, "sweep": analysis.sweep, "points": len(analysis.points),
        "settings": {"resamples": s.resamples, "seed": s.seed, "targets": list(s.targets),
                     "keep_outliers": s.keep_outliers, "level": LEVEL, "huber_delta": s.delta},
        "approaches": approaches,
        "table": [{"approach": r.approach, "flops": r.flops, "kind": r.kind, "n_opt": r.n_opt.to_json(),
                   "d_opt": r.d_opt.to_json(), "l_opt": r.l_opt.to_json(), "tokens_per_param": r.tokens_per_param}
                  for r in analysis.rows],
        "backtest": analysis.backtest,
        "excluded": [{"label": e.label, "reason": e.reason} for e in analysis.excluded],
        "bootstrap_failures": analysis.failed,
        "warnings": list(analysis.warnings),
        "files": [str(f) for f in analysis.files],
    }
