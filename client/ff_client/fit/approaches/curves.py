"""Approach 1 of Hoffmann et al. (2022): the lower envelope of the training curves.

Approach 1: every training curve (loss against tokens, in the result records) becomes loss against
FLOPs C = (FLOPs per token) x tokens; on a log grid of C, the experiment with the lowest loss there gives
N_opt(C) and D_opt(C) = C / (r N_opt); power laws N_opt = k C^a and D_opt = k' C^b are fitted in log space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ff_client.fit.approach import FitData, Result, Settings
from ff_client.fit.laws import PowerLaw, fit_power_law, law_lines
from ff_core.results import ResultRecord

GRID = 40
MIN_R2 = 0.8  # an envelope whose N_opt(C) power law explains less than this (log space) is not reported


@dataclass(frozen=True)
class EnvelopeFit:
    n_opt: PowerLaw
    d_opt: PowerLaw
    l_opt: PowerLaw
    grid: int  # FLOP levels where the envelope was read

    def laws(self) -> list[PowerLaw]:
        return [self.n_opt, self.d_opt, self.l_opt]

    def predict(self, compute: float) -> dict[str, float]:
        return {"n_opt": float(self.n_opt(compute)), "d_opt": float(self.d_opt(compute)),
                "l_opt": float(self.l_opt(compute))}


def fit_training_curves(records: tuple[ResultRecord, ...]) -> EnvelopeFit | None:
    """Approach 1 from the records' loss curves; None with fewer than 2 sizes, too little overlap, or an envelope
    whose N_opt(C) is no power law (log-space R^2 below MIN_R2: one budget of cosine runs gave 0.09, and an
    L_opt below every run's loss).

    WSD branches are left out: up to its cooldown a branch's curve is its trunk's, at constant learning
    rate, so no point of it is the end of a schedule (their end points serve approaches 2 and 3)."""
    curves = []
    for r in records:
        if r.status != "completed" or len(r.loss_curve) < 3 or r.branch_tokens is not None:
            continue
        per_token = r.flops.get("planned", r.flops["6nd"]) / r.tokens
        c = np.array([per_token * p.tokens for p in r.loss_curve])
        curves.append((r.n_params, per_token / r.n_params, np.log(c), np.array([p.loss for p in r.loss_curve])))
    if len({n for n, *_ in curves}) < 2:
        return None
    low, high = min(c[0] for _, _, c, _ in curves), max(c[-1] for _, _, c, _ in curves)
    need = min(3, len({n for n, *_ in curves}))
    minima = []
    for log_c in np.linspace(low, high, GRID + 2)[1:-1]:  # inside the range: the ends are covered by few curves
        covering = [(float(np.interp(log_c, c, loss)), n, ratio) for n, ratio, c, loss in curves
                    if c[0] <= log_c <= c[-1]]
        if len({n for _, n, _ in covering}) >= need:  # an envelope of one or two sizes says little
            value, n, ratio = min(covering)
            minima.append((np.exp(log_c), n, np.exp(log_c) / (ratio * n), value))
    if len({m[1] for m in minima}) < 2:
        return None
    compute, n_opt, d_opt, l_opt = (np.array(v) for v in zip(*minima))
    n_law = fit_power_law("n_opt", compute, n_opt)
    if n_law.r2 < MIN_R2:
        return None
    return EnvelopeFit(n_law, fit_power_law("d_opt", compute, d_opt), fit_power_law("l_opt", compute, l_opt),
                       len(minima))


class TrainingCurves:
    """Approach 1 as a unit of the analysis (result stores only: --data files carry no curves)."""

    name = json_key = "curves"
    listed = False
    allocates, style = False, None

    def fit(self, data: FitData, settings: Settings) -> EnvelopeFit | None:
        return fit_training_curves(data.records)

    def refit(self, data: FitData, central: EnvelopeFit, settings: Settings) -> EnvelopeFit | None:
        return fit_training_curves(data.records)

    def parameters(self, fit: EnvelopeFit) -> dict[str, float]:
        return {"a": fit.n_opt.exponent, "b": fit.d_opt.exponent, "l_exponent": fit.l_opt.exponent}

    def predict(self, fit: EnvelopeFit, compute: float) -> dict[str, float]:
        return fit.predict(compute)

    def warnings(self, result: Result) -> list[str]:
        return []

    def section(self, result: Result) -> list[str]:
        lines = ["## Approach 1: envelope of the training curves"]
        if result.fit is None:
            return lines + ["  not fitted: needs result records with loss curves from 2 or more sizes (WSD branches' "
                            "curves are mid-schedule up to their cooldown and are not used)"]
        return lines + law_lines(result.fit.laws()) + result.parameter_lines()

    def to_json(self, result: Result) -> dict:
        return {"parameters": result.parameters_json(), "r2": {law.name: law.r2 for law in result.fit.laws()},
                "predictions": result.rows_json()}


APPROACH = TrainingCurves()
