"""Synthetic scaling data with a known truth, for fit tests: L(N, D) = E + A/N^alpha + B/D^beta."""

from __future__ import annotations

import numpy as np

from ff_client.fit.points import Point
from ff_core.results import ResultRecord

CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def optimum(truth: dict, compute: float) -> tuple[float, float]:
    alpha, beta = truth["alpha"], truth["beta"]
    g = (alpha * truth["A"] / (beta * truth["B"])) ** (1 / (alpha + beta))
    return g * (compute / 6) ** (beta / (alpha + beta)), (compute / 6) ** (alpha / (alpha + beta)) / g


def isoflop_points(truth=CHINCHILLA, budgets=(1e18, 1e19, 1e20, 1e21), per_budget=7, span=8.0,
                   noise=0.0, seed=0) -> list[Point]:
    """Per budget, sizes spaced evenly in log N over `span`x around the true optimum; multiplicative noise."""
    rng = np.random.default_rng(seed)
    points = []
    for compute in budgets:
        n_opt, _ = optimum(truth, compute)
        for n in n_opt * np.geomspace(1 / np.sqrt(span), np.sqrt(span), per_budget):
            d = compute / (6 * n)
            loss = truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]
            loss *= np.exp(noise * rng.standard_normal())
            points.append(Point(float(n), float(d), float(loss), compute, compute, f"c{compute:.0e}-n{n:.3g}"))
    return points


def record_for(point: Point, sweep: str = "synth", status: str = "completed") -> dict:
    return ResultRecord(
        sweep=sweep, experiment=point.label.replace("+", "").replace(".", "")[:12] or "e0", budget=point.budget,
        size="s", knobs={}, n_params=int(point.n_params), n_params_non_embedding=int(point.n_params),
        tokens=int(point.tokens), flops={"6nd": 6 * int(point.n_params) * int(point.tokens), "planned": point.flops},
        status=status, final_loss=point.loss, eval_loss=point.loss if status == "completed" else None,
        loss_curve=[], tokens_per_second=1.0, wall_seconds=1.0, world_size=1, device="cpu", seed=0,
        versions={"python": "3.11"},
    ).model_dump(mode="json")
