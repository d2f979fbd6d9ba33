"""Publication-style plots: isoFLOP curves, the compute-optimal allocation, the parametric surface, residuals."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from ff_client.fit.approaches import APPROACHES  # noqa: E402
from ff_client.fit.approaches.isoflop import IsoflopFit  # noqa: E402
from ff_client.fit.estimate import LEVEL  # noqa: E402

_STYLE = {"font.size": 10, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
          "grid.alpha": 0.3, "savefig.dpi": 150, "savefig.bbox": "tight"}


def _counts_axis(axis) -> None:
    """A log axis of counts (N, D) labelled 3k, 5k, 10k ... at 1, 2 and 5 per decade: no crowded 3x10^3 labels."""
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_minor_locator(ticker.LogLocator(subs=np.arange(2, 10) / 1.0))
    axis.set_major_formatter(ticker.EngFormatter(sep=""))
    axis.set_minor_formatter(ticker.NullFormatter())


def _budget_colors(count: int):
    return plt.cm.viridis(np.linspace(0.1, 0.85, max(count, 1)))


def plot_isoflop(fit: IsoflopFit, path: Path) -> Path:
    """Loss against N per budget: points, the local cubic over its window, and its minimum (a star; a cross where
    the minimum is not located)."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for curve, color in zip(fit.curves, _budget_colors(len(fit.curves))):
            n = np.array([p.n_params for p in curve.points])
            ax.scatter(n, [p.loss for p in curve.points], color=color, s=22, zorder=3, label=f"C = {curve.budget:.1e}")
            if curve.coefficients is not None:  # the local cubic, over the sizes it was fitted to
                grid = np.geomspace(curve.window[0], curve.window[1], 100)
                ax.plot(grid, curve.loss_at(grid), color=color, lw=1.4)
            if curve.n_opt is not None:
                if curve.interior:
                    ax.scatter([curve.n_opt], [curve.l_opt], marker="*", s=140, color=color, edgecolor="black",
                               zorder=4)
                else:  # not located (an edge, or too flat): drawn where the cubic puts it, as a cross
                    ax.scatter([curve.n_opt], [curve.l_opt], marker="x", s=80, color=color, zorder=4)
        ax.set_xscale("log")
        _counts_axis(ax.xaxis)
        ax.set_xlabel("parameters N")
        ax.set_ylabel("held-out loss")
        ax.set_title("IsoFLOP curves (star: fitted minimum)")
        ax.legend(frameon=False, fontsize=8)
        fig.savefig(path)
        plt.close(fig)
    return path


def _band(rows, quantity: str, compute: np.ndarray, values: np.ndarray):
    """(low, high) along a smooth curve: each edge's ratio to the value, interpolated in log C between the rows."""
    at = np.log([r.flops for r in rows])

    def edge(name: str) -> np.ndarray:
        ratio = np.log([getattr(getattr(r, quantity), name) / getattr(r, quantity).value for r in rows])
        return values * np.exp(np.interp(np.log(compute), at, ratio))

    return edge("low"), edge("high")


def _law_curve(ax, result, quantity: str, color, dash) -> None:
    """One approach's law as a smooth curve over the table's compute range, its bootstrap band, its targets."""
    rows = sorted(result.rows, key=lambda r: r.flops)
    compute = np.geomspace(rows[0].flops, rows[-1].flops, 200)
    values = np.array([result.approach.predict(result.fit, c)[quantity] for c in compute])
    ax.plot(compute, values, color=color, ls=dash, lw=1.5, label=result.approach.name)
    if len(rows) > 1 and all(getattr(r, quantity).low is not None for r in rows):
        ax.fill_between(compute, *_band(rows, quantity, compute, values), color=color, alpha=0.15, lw=0)
    targets = [(r.flops, getattr(r, quantity).value) for r in rows if r.kind == "target"]
    if targets:
        ax.scatter(*zip(*targets), marker="D", s=40, color=color, edgecolor="black", zorder=5)


def plot_optimal(analysis, path: Path) -> Path:
    """N_opt, D_opt and L_opt against C: isoFLOP minima, each approach's law, bootstrap bands, targets (diamonds)."""
    usable = [c for c in analysis.fit("isoflop").curves if c.interior]
    styles = {a.name: a.style for a in APPROACHES if a.style is not None}
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
        for ax, quantity, label in zip(axes, ("n_opt", "d_opt", "l_opt"), ("N_opt", "D_opt", "L_opt")):
            ax.scatter([c.budget for c in usable], [getattr(c, quantity) for c in usable], color="black", s=24,
                       zorder=4, label="isoFLOP minima")
            for approach, (color, dash) in styles.items():
                result = analysis.results.get(approach)
                if result is not None and result.rows:
                    _law_curve(ax, result, quantity, color, dash)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("compute C (FLOPs)")
            ax.set_ylabel(label)
        axes[0].legend(frameon=False, fontsize=8)
        fig.suptitle(f"Compute-optimal allocation (bands: {LEVEL:.0%} bootstrap intervals)")
        fig.savefig(path)
        plt.close(fig)
    return path


def plot_contours(analysis, path: Path) -> Path:
    """The parametric surface L(N, D) as contours over the sweep's range, iso-FLOP lines, the points and the
    compute-efficient frontier (N_opt(C), D_opt(C))."""
    fit = analysis.fit("parametric")
    n = np.array([p.n_params for p in analysis.points])
    d = np.array([p.tokens for p in analysis.points])
    grid_n = np.geomspace(n.min() / 3, n.max() * 3, 120)
    grid_d = np.geomspace(d.min() / 3, d.max() * 3, 120)
    nn, dd = np.meshgrid(grid_n, grid_d)
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.2, 4.8))
        filled = ax.contourf(nn, dd, np.log(fit.loss(nn, dd)), levels=20, cmap="viridis_r")
        fig.colorbar(filled, ax=ax, label="ln L(N, D)")
        budgets = sorted({p.budget for p in analysis.points})
        for c in budgets:
            ax.plot(grid_n, c / (fit.flops_per_param_token * grid_n), color="white", lw=0.6, ls=":")
        frontier_c = np.geomspace(min(budgets) / 3, max(budgets) * 3, 50)
        frontier = [fit.predict(c) for c in frontier_c]
        ax.plot([f["n_opt"] for f in frontier], [f["d_opt"] for f in frontier], color="red", lw=1.8,
                label="compute-efficient frontier")
        ax.scatter(n, d, c="white", edgecolor="black", s=18, zorder=3, label="experiments")
        ax.set(xscale="log", yscale="log", xlim=(grid_n[0], grid_n[-1]), ylim=(grid_d[0], grid_d[-1]),
               xlabel="parameters N", ylabel="tokens D", title="Parametric fit (dotted: isoFLOP lines)")
        _counts_axis(ax.xaxis)
        _counts_axis(ax.yaxis)
        ax.legend(frameon=False, fontsize=8, loc="upper right")
        fig.savefig(path)
        plt.close(fig)
    return path


def plot_residuals(analysis, path: Path) -> Path:
    """Log-loss residuals of the parametric fit against N, coloured by budget."""
    fit = analysis.fit("parametric")
    budgets = sorted({p.budget for p in analysis.points})
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6, 3.4))
        for budget, color in zip(budgets, _budget_colors(len(budgets))):
            pts = [p for p in analysis.points if p.budget == budget]
            predicted = fit.loss([p.n_params for p in pts], [p.tokens for p in pts])
            residual = np.log([p.loss for p in pts]) - np.log(predicted)
            ax.scatter([p.n_params for p in pts], residual, color=color, s=20, label=f"C = {budget:.1e}")
        flagged = [f.point for f in analysis.outliers if not f.excluded]
        if flagged:  # kept, but far off the fit: ringed
            residual = np.log([p.loss for p in flagged]) - np.log(fit.loss([p.n_params for p in flagged],
                                                                            [p.tokens for p in flagged]))
            ax.scatter([p.n_params for p in flagged], residual, s=90, facecolors="none", edgecolors="red", lw=1.2,
                       label="flagged outlier (kept)")
        ax.axhline(0, color="black", lw=0.8)
        ax.set(xscale="log", xlabel="parameters N", ylabel="ln L - ln L_fit", title="Parametric fit residuals")
        _counts_axis(ax.xaxis)
        ax.legend(frameon=False, fontsize=7)
        fig.savefig(path)
        plt.close(fig)
    return path


def write_plots(analysis, out: Path, ext: str) -> list[Path]:
    """Every plot the analysis supports, as out/<name>.<ext>."""
    files = [plot_isoflop(analysis.fit("isoflop"), out / f"isoflop.{ext}")]
    located = analysis.fit("isoflop").used()
    drawn = [a.name for a in APPROACHES if a.style is not None and a.name in analysis.results]
    if located or any(analysis.results[name].rows for name in drawn):
        files.append(plot_optimal(analysis, out / f"optimal.{ext}"))
    if analysis.fit("parametric") is not None:
        files.append(plot_contours(analysis, out / f"contours.{ext}"))
        files.append(plot_residuals(analysis, out / f"residuals.{ext}"))
    if analysis.overtraining is not None and not isinstance(analysis.overtraining, str):
        files.append(plot_overtraining(analysis.overtraining, out / f"overtraining.{ext}"))
    return files


def plot_compare(comparison, path: Path) -> Path:
    """L_opt(C) of both recipes (measured minima, and the fitted laws with bootstrap bands), and the compute
    multiplier against C."""
    targets = sorted(comparison.targets)
    compute = np.geomspace(targets[0] / 10, targets[-1] * 10, 60)
    sample = comparison.replicated[:200]
    with plt.rc_context(_STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
        for side, (name, law, color) in enumerate(((comparison.a.sweep, comparison.laws[0], "C0"),
                                                   (comparison.b.sweep, comparison.laws[1], "C3"))):
            left.plot(compute, [law(c) for c in compute], color=color, lw=1.5,
                      label=f"{name} ({comparison.approach} law)")
            front = comparison.frontiers[side]
            if front is not None:  # the measured frontier: what the rows inside the budgets compare
                left.plot(front.compute, front.loss, "o:", color=color, ms=4, lw=1, label=f"{name} (measured minima)")
            if len(sample) >= 10:
                curves = np.array([[pair[side](c) for c in compute] for pair in sample])
                low, high = np.percentile(curves, [2.5, 97.5], axis=0)
                left.fill_between(compute, low, high, color=color, alpha=0.15, lw=0)
        left.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="L_opt",
                 title=f"Compute-optimal loss ({comparison.approach})")
        left.legend(frameon=False, fontsize=8)
        values = [comparison.multiplier[c] for c in targets]
        finite = [(c, v) for c, v in zip(targets, values) if np.isfinite(v.value)]
        if finite:
            right.plot([c for c, _ in finite], [v.value for _, v in finite], "o-", color="black")
            known = [(c, v) for c, v in finite if v.low is not None and np.isfinite(v.high)]
            if known:
                right.errorbar([c for c, _ in known], [v.value for _, v in known], fmt="none", ecolor="black",
                               yerr=[[v.value - v.low for _, v in known], [v.high - v.value for _, v in known]])
        right.axhline(1, color="grey", lw=0.8, ls=":")
        right.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="compute multiplier (A to reach B)",
                  title="Compute-equivalent multiplier (> 1: B is better)")
        fig.savefig(path)
        plt.close(fig)
    return path


def plot_transfer(transfer, path: Path) -> Path:
    """Loss against learning rate, one curve per size, each optimum marked with its interval; the sweep's
    learning rate as a dotted line."""
    colors = _budget_colors(len(transfer.sizes))
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
        for size, color in zip(transfer.sizes, colors):
            lrs, losses = zip(*size.curve)
            ax.plot(lrs, losses, "o-", color=color, lw=1.2, ms=4, label=f"{size.size} (N={size.n_params:.3g})")
            best = min(losses)
            if size.lr.low is not None:
                spread = [[size.lr.value - size.lr.low], [size.lr.high - size.lr.value]]
                ax.errorbar([size.lr.value], [best], xerr=spread, fmt="*", color=color, ms=10, capsize=3)
            else:
                ax.plot([size.lr.value], [best], "*", color=color, ms=10)
        ax.axvline(transfer.sweep_lr, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", xlabel="learning rate", ylabel="eval loss",
               title="Learning-rate transfer: " + ("transfers" if transfer.transfers else
                                                   "undetermined" if transfer.transfers is None else "drifts"))
        ax.legend(frameon=False, fontsize=8)
        fig.savefig(path)
        plt.close(fig)
    return path


def plot_overtraining(found, path: Path) -> Path:
    """Left: reducible loss against compute, the fitted runs and the targets, the law's line at each of their
    token multipliers M; right (with an error law): error against loss, the law's curve, each target measured and
    predicted."""
    from ff_client.fit.overtrain import error_law, loss_law

    theta = np.array([found.parameters[k].value for k in ("E", "A", "B", "eta")])
    theta[1:3] = np.log(theta[1:3])
    runs = found.loss_fit + tuple(q.run for q in found.predictions)
    multipliers = sorted({round(r.multiplier, 6) for r in runs})
    colors = dict(zip(multipliers, _budget_colors(len(multipliers))))
    panels = 2 if found.error_kind else 1
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), layout="constrained", squeeze=False)
        ax = axes[0][0]
        sizes = np.geomspace(min(r.n_params for r in runs) / 2, max(r.n_params for r in runs) * 2, 60)
        for m in multipliers:
            ax.plot(6 * sizes * sizes * m, loss_law(theta, sizes, sizes * m) - theta[0], color=colors[m], lw=1,
                    ls="--", label=f"M = {m:.3g}")
        for r in found.loss_fit:
            ax.plot(r.flops, r.loss - theta[0], "o", color=colors[round(r.multiplier, 6)])
        for q in found.predictions:
            color = colors[round(q.run.multiplier, 6)]
            ax.plot(q.run.flops, q.run.loss - theta[0], "*", color=color, ms=11)
            ax.plot(q.run.flops, q.loss.value - theta[0], "o", mfc="none", color=color, ms=11)
        ax.set(xscale="log", yscale="log", xlabel="compute C = 6ND (FLOPs)", ylabel="reducible loss L - E",
               title="Over-training: fitted (dots), held out (stars), predicted (rings)")
        ax.legend(frameon=False, fontsize=8)
        if found.error_kind:
            ax = axes[0][1]
            phi = np.array([v.value for v in found.error_parameters.values()])
            if found.error_kind == "exponential":
                phi[1] = np.log(phi[1])
            losses = [r.loss for r in found.error_fit] + [q.run.loss for q in found.predictions]
            grid = np.linspace(min(losses) * 0.95, max(losses) * 1.02, 100)
            ax.plot(grid, error_law(found.error_kind, phi, grid), color="grey", lw=1, ls="--")
            ax.plot([r.loss for r in found.error_fit], [r.error for r in found.error_fit], "o", color="C0")
            for q in found.predictions:
                if q.run.error is not None:
                    ax.plot(q.run.loss, q.run.error, "*", color="C3", ms=11)
                if q.error is not None:
                    ax.plot(q.loss.value, q.error.value, "o", mfc="none", color="C3", ms=11)
            ax.set(xlabel="loss", ylabel="error", title=f"Error from loss ({found.error_kind})")
        fig.savefig(path)
        plt.close(fig)
    return path
