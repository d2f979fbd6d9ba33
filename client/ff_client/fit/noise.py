"""The noise a sweep shows: the robust scale of its losses around smooth per-budget curves.

Per budget with 5 or more sizes, log-loss is fitted by a cubic in ln N over the (at most) LOCAL points
nearest its lowest one (flexible enough to follow a skewed isoFLOP curve there, so what is left is mostly
run-to-run noise; over a curve spanning 100x in N a cubic misfits the far points and took that for noise:
0.9% on Porian et al.'s Kaplan sweep, 0.1% near its minima); the residuals of all budgets, each scaled up
for the 4 fitted coefficients, are pooled and their MAD taken (x 1.4826: a standard deviation for Gaussian
noise). A relative scale: 0.003 means losses scatter by about 0.3%. Floored at FLOOR, and FLOOR when no
budget has 5 sizes.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

FLOOR = 5e-4
LOCAL = 7  # points around a budget's lowest that its cubic is fitted to
MIN_DOF = 4  # residual degrees of freedom below which the noise is not taken as measured


def _residuals(points) -> tuple[list[float], int]:
    """The scaled residuals of every budget's local cubic (module docstring), and their degrees of freedom."""
    groups: dict[float, list] = defaultdict(list)
    for p in points:
        groups[p.budget].append(p)
    residuals, dof = [], 0
    for group in groups.values():
        if len({p.n_params for p in group}) < 5:
            continue
        group = sorted(group, key=lambda p: p.n_params)
        best = min(range(len(group)), key=lambda i: group[i].loss)
        start = min(max(best - LOCAL // 2, 0), max(len(group) - LOCAL, 0))
        group = group[start:start + LOCAL]
        x, y = np.log([p.n_params for p in group]), np.log([p.loss for p in group])
        r = y - np.polyval(np.polyfit(x, y, 3), x)
        residuals += list(r * np.sqrt(len(group) / (len(group) - 4)))
        dof += len(group) - 4
    return residuals, dof


def sweep_noise(points) -> float:
    """Relative loss noise of the sweep (see the module docstring)."""
    residuals, _ = _residuals(points)
    if not residuals:
        return FLOOR
    return max(1.4826 * float(np.median(np.abs(residuals))), FLOOR)


def measured_noise(points) -> float | None:
    """The sweep's noise where MIN_DOF or more residual degrees of freedom measure it, else None (a budget of 5
    sizes leaves one: its 'noise' is mostly the cubic's luck)."""
    residuals, dof = _residuals(points)
    return max(1.4826 * float(np.median(np.abs(residuals))), FLOOR) if dof >= MIN_DOF else None
