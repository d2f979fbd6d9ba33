"""Two recipes in compute-equivalent terms: how much more compute recipe A needs to reach B's loss.

Each side is analysed as `ffctl analyze` would (same settings, its own bootstrap). Its compute-optimal loss
L_opt(C) comes from an approach that predicts one: the parametric surface (default; L_opt has the
irreducible term, so it flattens as the surface says) or the isoFLOP power law L_opt = k C^c. At a target
compute C:

    multiplier(C) = C_A / C, where L_opt_A(C_A) = L_opt_B(C)   (> 1: A needs more compute, B is better)
    gap(C)        = L_opt_A(C) - L_opt_B(C)                      (> 0: B reaches a lower loss at equal compute)

and the difference of the N_opt exponents a_A - a_B. Intervals pair the two sides' bootstrap replicates
(replicate i of A with replicate i of B): percentiles of the replicated multiplier, gap and difference.
A target loss that A cannot reach at any compute (below its irreducible loss E) gives an infinite
multiplier, reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from scipy.optimize import brentq

from ff_client.fit.analysis import Analysis
from ff_client.fit.approaches.parametric import ParametricFit
from ff_client.fit.estimate import Estimate, percentile_estimate

APPROACHES = ("parametric", "isoflop")
_SPAN = (1e-6, 1e12)  # the compute range searched for C_A, as multiples of the target


def _l_opt(approach: str, parameters: dict[str, float], ratio: float):
    """L_opt(C) of a fit given by its reported parameters (a replicate's, or the central fit's)."""
    if approach == "isoflop":
        return lambda c: parameters["l_coefficient"] * c ** parameters["l_exponent"]
    surface = ParametricFit(parameters["E"], parameters["A"], parameters["B"], parameters["alpha"],
                            parameters["beta"], 0.0, True, 0, (), ratio)
    return lambda c: surface.predict(c)["l_opt"]


def multiplier(l_opt_a, target_loss: float, compute: float) -> float:
    """C_A / C with L_opt_A(C_A) = target_loss; inf when A never gets there in the searched range."""
    f = lambda log_c: math.log(l_opt_a(math.exp(log_c))) - math.log(target_loss)  # noqa: E731
    low, high = math.log(compute * _SPAN[0]), math.log(compute * _SPAN[1])
    if f(low) < 0:
        return 0.0
    if f(high) > 0:
        return math.inf
    return math.exp(brentq(f, low, high, xtol=1e-10) - math.log(compute))


@dataclass(frozen=True)
class Comparison:
    a: Analysis
    b: Analysis
    approach: str
    targets: tuple[float, ...]
    multiplier: dict[float, Estimate]
    gap: dict[float, Estimate]
    exponent_difference: Estimate  # a_A - a_B, the N_opt exponents
    laws: tuple[Callable, Callable] = field(repr=False, default=None)  # L_opt(C) of A and of B
    replicated: list[tuple[Callable, Callable]] = field(repr=False, default_factory=list)

    def rows(self) -> list[dict]:
        return [{"flops": c, "multiplier": _json(self.multiplier[c]), "loss_gap": _json(self.gap[c])}
                for c in self.targets]

    def text(self) -> str:
        lines = [f"# {self.a.sweep} (A) against {self.b.sweep} (B), by their {self.approach} fits",
                 "multiplier: the compute A needs to reach B's loss, as a multiple of B's (> 1: B is the better "
                 "recipe); gap: L_opt(A) - L_opt(B) at equal compute", "",
                 "| FLOPs | multiplier | loss gap |", "|---|---|---|"]
        lines += [f"| {c:.3g} | {self.multiplier[c].text()} | {self.gap[c].text()} |" for c in self.targets]
        lines += ["", f"N_opt exponent a: A - B = {self.exponent_difference.text()}"]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"a": self.a.sweep, "b": self.b.sweep, "approach": self.approach, "rows": self.rows(),
                "exponent_difference": self.exponent_difference.to_json()}


def _ratio(analysis: Analysis) -> float:
    fit = analysis.fit("parametric")
    return fit.flops_per_param_token if fit is not None else 6.0


def compare(a: Analysis, b: Analysis, approach: str = "parametric", targets: tuple[float, ...] = ()) -> Comparison:
    """Compare two analyses at each target compute (default: the budgets both sweeps share, or B's)."""
    if approach not in APPROACHES:
        raise ValueError(f"approach {approach!r}: choose from {', '.join(APPROACHES)}")
    sides = [s.results.get(approach) for s in (a, b)]
    for side, result in zip((a, b), sides):
        if result is None or not result.parameters:
            raise ValueError(f"{side.sweep}: no {approach} fit to compare (see `ffctl analyze` on it)")
    if not targets:
        shared = sorted({p.budget for p in a.points} & {p.budget for p in b.points})
        targets = tuple(shared or sorted({p.budget for p in b.points}))
    central = [{k: v.value for k, v in r.parameters.items()} for r in sides]
    ratios = (_ratio(a), _ratio(b))
    laws = [_l_opt(approach, p, r) for p, r in zip(central, ratios)]
    pairs = list(zip(sides[0].replicates, sides[1].replicates))
    replicated = [(_l_opt(approach, ra, ratios[0]), _l_opt(approach, rb, ratios[1])) for ra, rb in pairs]
    mult, gap = {}, {}
    for c in targets:
        mult[c] = percentile_estimate(multiplier(laws[0], laws[1](c), c),
                                      [multiplier(la, lb(c), c) for la, lb in replicated])
        gap[c] = percentile_estimate(laws[0](c) - laws[1](c), [la(c) - lb(c) for la, lb in replicated])
    exponent = percentile_estimate(central[0]["a"] - central[1]["a"], [ra["a"] - rb["a"] for ra, rb in pairs])
    return Comparison(a, b, approach, tuple(targets), mult, gap, exponent, tuple(laws), replicated)


def _json(estimate: Estimate) -> dict:
    """An estimate as JSON; an infinite multiplier (A never reaches B's loss) is null, with "unreachable": true."""
    values = {k: v if v is None or math.isfinite(v) else None for k, v in estimate.to_json().items()}
    return values | ({"unreachable": True} if not math.isfinite(estimate.value) else {})
