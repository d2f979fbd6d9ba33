"""Publication-style PNG plots: isoFLOP curves with their minima; N_opt and D_opt against C."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ff_client.isoflop import IsoflopFit  # noqa: E402

_STYLE = {"font.size": 10, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
          "grid.alpha": 0.3, "savefig.dpi": 150, "savefig.bbox": "tight"}


def _budget_colors(count: int):
    return plt.cm.viridis(np.linspace(0.1, 0.85, max(count, 1)))


def plot_isoflop(fit: IsoflopFit, path: Path) -> Path:
    """Loss against N per budget: points, the fitted parabola, and its minimum (a star)."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for curve, color in zip(fit.curves, _budget_colors(len(fit.curves))):
            n = np.array([p.n_params for p in curve.points])
            ax.scatter(n, [p.loss for p in curve.points], color=color, s=22, zorder=3, label=f"C = {curve.budget:.1e}")
            if curve.coefficients is not None:
                grid = np.geomspace(n.min() / 1.3, n.max() * 1.3, 100)
                ax.plot(grid, curve.loss_at(grid), color=color, lw=1.4)
            if curve.n_opt is not None:
                marker = "*" if curve.interior else "x"
                ax.scatter([curve.n_opt], [curve.l_opt], marker=marker, s=140, color=color, edgecolor="black", zorder=4)
        ax.set_xscale("log")
        ax.set_xlabel("parameters N")
        ax.set_ylabel("held-out loss")
        ax.set_title("IsoFLOP curves (star: fitted minimum)")
        ax.legend(frameon=False, fontsize=8)
        fig.savefig(path)
        plt.close(fig)
    return path


def plot_optimal(fit: IsoflopFit, path: Path) -> Path:
    """N_opt(C) and D_opt(C) on log-log axes with the fitted power laws."""
    usable = [c for c in fit.curves if c.interior]
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        for ax, name, law, label in ((axes[0], "n_opt", fit.n_opt, "N_opt"), (axes[1], "d_opt", fit.d_opt, "D_opt")):
            compute = np.array([c.budget for c in usable])
            ax.scatter(compute, [getattr(c, name) for c in usable], color="black", s=24, zorder=3, label="isoFLOP minima")
            if law is not None and len(compute):
                grid = np.geomspace(compute.min() / 2, compute.max() * 10, 50)
                ax.plot(grid, law(grid), color="C0", lw=1.5,
                        label=f"{label} = {law.coefficient:.2g} C^{law.exponent:.3f} (R² {law.r2:.3f})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("compute C (FLOPs)")
            ax.set_ylabel(label)
            ax.legend(frameon=False, fontsize=8)
        fig.suptitle("Compute-optimal allocation (Approach 2)")
        fig.savefig(path)
        plt.close(fig)
    return path
