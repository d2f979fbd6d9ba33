"""The analysis API behind `ffctl analyze`: observations -> fits -> table, report, plots (usable in a notebook)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ff_client.isoflop import IsoflopFit, PowerLaw, fit_isoflop
from ff_client.parametric import ParametricFit, fit_parametric
from ff_client.plots import plot_isoflop, plot_optimal
from ff_client.points import Observations, Point, load_observations
from ff_client.table import Row, optimal_rows, to_csv, to_markdown
from ff_core.store import Store


@dataclass(frozen=True)
class Analysis:
    sweep: str
    points: tuple[Point, ...]
    isoflop: IsoflopFit
    parametric: ParametricFit | None
    rows: tuple[Row, ...]
    excluded: tuple = ()
    warnings: tuple[str, ...] = ()
    files: list[Path] = field(default_factory=list)

    def text(self) -> str:
        """A readable report: the table, then each approach's fitted laws."""
        parts = [f"# {self.sweep}: {len(self.points)} points, {len(self.isoflop.curves)} budgets", ""]
        parts.append(to_markdown(list(self.rows)) if self.rows else "(no compute-optimal table: see warnings)\n")
        parts.append("## Approach 2 (isoFLOP parabolas)")
        for curve in self.isoflop.curves:
            where = f"N_opt {curve.n_opt:.3g}, L_opt {curve.l_opt:.4f}" if curve.n_opt else "no minimum"
            flag = "" if curve.interior else "  (not interior: excluded)"
            parts.append(f"  C {curve.budget:.3g}: {len(curve.points)} points, {where}{flag}")
        for law in (self.isoflop.n_opt, self.isoflop.d_opt, self.isoflop.l_opt):
            if law is not None:
                parts.append(f"  {law.name} = {law.coefficient:.4g} * C^{law.exponent:.4f}   (R^2 {law.r2:.4f})")
        parts.append("## Approach 3 (parametric L(N, D) = E + A/N^alpha + B/D^beta)")
        if self.parametric is None:
            parts.append("  not fitted: fewer than 6 points")
        else:
            p = self.parametric
            parts.append(f"  E {p.E:.4g}  A {p.A:.4g}  B {p.B:.4g}  alpha {p.alpha:.4f}  beta {p.beta:.4f}")
            parts.append(f"  N_opt ~ C^{p.a:.4f}, D_opt ~ C^{p.b:.4f}; Huber objective {p.objective:.3g}, "
                         f"{'converged' if p.converged else 'NOT converged'} ({p.starts} grid starts)")
        if self.excluded:
            parts.append("## Excluded")
            parts += [f"  {e.label}: {e.reason}" for e in self.excluded]
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        def law(pl: PowerLaw | None):
            return None if pl is None else {"coefficient": pl.coefficient, "exponent": pl.exponent, "r2": pl.r2}

        p = self.parametric
        return {
            "sweep": self.sweep,
            "points": len(self.points),
            "isoflop": {
                "n_opt": law(self.isoflop.n_opt), "d_opt": law(self.isoflop.d_opt), "l_opt": law(self.isoflop.l_opt),
                "curves": [{"budget": c.budget, "points": len(c.points), "n_opt": c.n_opt, "d_opt": c.d_opt,
                            "l_opt": c.l_opt, "interior": c.interior, "problem": c.problem}
                           for c in self.isoflop.curves],
            },
            "parametric": None if p is None else {
                "E": p.E, "A": p.A, "B": p.B, "alpha": p.alpha, "beta": p.beta, "a": p.a, "b": p.b,
                "objective": p.objective, "converged": p.converged},
            "table": [{"approach": r.approach, "flops": r.flops, "n_opt": r.n_opt, "d_opt": r.d_opt,
                       "tokens_per_param": r.tokens_per_param, "l_opt": r.l_opt, "extrapolated": r.extrapolated}
                      for r in self.rows],
            "excluded": [{"label": e.label, "reason": e.reason} for e in self.excluded],
            "warnings": list(self.warnings),
            "files": [str(f) for f in self.files],
        }


def analyze(observations: Observations) -> Analysis:
    """Fit Approaches 2 and 3 to the observations and tabulate the compute-optimal allocation."""
    points = observations.points
    isoflop = fit_isoflop(points)
    parametric = fit_parametric(points)
    rows = optimal_rows([p.budget for p in points], isoflop, parametric) if points else []
    warnings = list(isoflop.warnings) + (list(parametric.warnings) if parametric else [])
    warnings += [f"excluded {e.label}: {e.reason}" for e in observations.excluded]
    return Analysis(observations.sweep, points, isoflop, parametric, tuple(rows), observations.excluded,
                    tuple(warnings))


def write_outputs(analysis: Analysis, out_dir: str | Path) -> list[Path]:
    """table.md, table.csv, isoflop.png and optimal.png in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "table.md", out / "table.csv"]
    files[0].write_text(to_markdown(list(analysis.rows)))
    files[1].write_text(to_csv(list(analysis.rows)))
    files.append(plot_isoflop(analysis.isoflop, out / "isoflop.png"))
    if analysis.isoflop.n_opt is not None:
        files.append(plot_optimal(analysis.isoflop, out / "optimal.png"))
    return files


def analyze_store(store: Store, out_dir: str | Path | None = None) -> Analysis:
    """Everything `ffctl analyze` does: read the store, fit, and write outputs when out_dir is given."""
    analysis = analyze(load_observations(store))
    if out_dir is not None:
        analysis.files.extend(write_outputs(analysis, out_dir))
    return analysis
