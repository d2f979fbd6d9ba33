"""Two recipes in compute-equivalent terms: how much more compute recipe A needs to reach B's loss.

Each side is analysed as `ffctl analyze` would (same settings, its own bootstrap). At a target compute C:

    multiplier(C) = C_A / C, where L_opt_A(C_A) = L_opt_B(C)   (> 1: A needs more compute, B is better)
    gap(C)        = L_opt_A(C) - L_opt_B(C)                      (> 0: B reaches a lower loss at equal compute)

Inside the budgets both sweeps measured the comparison is model-free: each side's L_opt(C) is its measured
frontier (its budgets' isoFLOP minima interpolated in log C, ff_client.fit.frontier) and the intervals pair
the two frontiers' bootstrap replicates. Only where C or C_A lies beyond the measured budgets does it use
a fitted law: the parametric surface's (default; it has the irreducible term, so it flattens) or the
isoFLOP law; each row says which it used and how far beyond the data it reaches, and intervals then pair
the two sides' bootstrap replicates of the law (replicate i of A with replicate i of B). Where the
multiplier passes 1 between two targets, the recipes cross over, and the comparison says where. The
difference of the N_opt exponents a_A - a_B is reported too. A target loss that A cannot reach at any
compute (below its irreducible loss E) gives an infinite multiplier, reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from scipy.optimize import brentq

from ff_client.fit.analysis import Analysis
from ff_client.fit.approaches import APPROACHES as REGISTRY
from ff_client.fit.estimate import Estimate, percentile_estimate
from ff_client.fit.frontier import Frontier, frontier_replicates, measured_frontier
from ff_core.flops import FLOPS_PER_PARAM_TOKEN

APPROACHES = {a.name: a for a in REGISTRY if a.allocates}  # those whose L_opt(C) can be compared
_SPAN = (1e-6, 1e12)  # the compute range searched for C_A, as multiples of the target
FAR = 10.0  # a law row reaching further than this beyond the measured budgets is warned about


def _l_opt(approach: str, parameters: dict[str, float], ratio: float):
    """L_opt(C) of a fit given by its reported parameters (a replicate's, or the central fit's)."""
    return APPROACHES[approach].l_opt_law(parameters, ratio)


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
    basis: dict[float, str] = field(default_factory=dict)  # per target: "measured" or "law"
    reach: dict[float, float] = field(default_factory=dict)  # how far beyond the measured budgets (1: inside)
    crossovers: tuple[tuple[float, float, float], ...] = ()  # (between C1, and C2, at about C)
    warnings: tuple[str, ...] = ()
    frontiers: tuple[Frontier | None, Frontier | None] = (None, None)

    def rows(self) -> list[dict]:
        return [{"flops": c, "multiplier": _json(self.multiplier[c]), "loss_gap": _json(self.gap[c]),
                 "basis": self.basis.get(c, "law"), "reach": self.reach.get(c, 1.0)} for c in self.targets]

    def _basis_text(self, c: float) -> str:
        if self.basis.get(c) == "measured":
            return "measured"
        reach = self.reach.get(c, 1.0)
        return f"{self.approach} law" + (f", x{reach:.3g} beyond the data" if reach > 1 else "")

    def text(self) -> str:
        lines = [f"# {self.a.sweep} (A) against {self.b.sweep} (B)",
                 "multiplier: the compute A needs to reach B's loss, as a multiple of B's (> 1: B is the better "
                 "recipe); gap: L_opt(A) - L_opt(B) at equal compute; basis: the sweeps' measured frontiers, or a "
                 "fitted law beyond them", "",
                 "| FLOPs | multiplier | loss gap | basis |", "|---|---|---|---|"]
        lines += [f"| {c:.3g} | {self.multiplier[c].text()} | {self.gap[c].text()} | {self._basis_text(c)} |"
                  for c in self.targets]
        lines += ["", f"N_opt exponent a: A - B = {self.exponent_difference.text()}"]
        lines += [f"crossover: the better recipe changes between C={lo:.3g} and C={hi:.3g} (at about C={at:.3g})"
                  for lo, hi, at in self.crossovers]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"a": self.a.sweep, "b": self.b.sweep, "approach": self.approach, "rows": self.rows(),
                "exponent_difference": self.exponent_difference.to_json(),
                "crossovers": [{"between": [lo, hi], "at": at} for lo, hi, at in self.crossovers],
                "warnings": list(self.warnings)}


def _ratio(analysis: Analysis) -> float:
    fit = analysis.fit("parametric")
    return fit.flops_per_param_token if fit is not None else FLOPS_PER_PARAM_TOKEN


def _measured(fronts, c: float) -> tuple[float, float] | None:
    """(multiplier, gap) at c from the two measured frontiers, or None where c or C_A lies beyond them."""
    fa, fb = fronts
    if fa is None or fb is None or not (fa.covers(c) and fb.covers(c)):
        return None
    target = fb.loss_at(c)
    c_a = fa.compute_for(target)
    return None if c_a is None else (c_a / c, fa.loss_at(c) - target)


def _reach(analyses, c: float, c_a: float) -> float:
    """How far c (B's side) and c_a (A's) lie beyond the budgets each sweep measured, as a factor (1: inside)."""
    def beyond(analysis, compute):
        budgets = [p.budget for p in analysis.points]
        if not budgets or not math.isfinite(compute) or compute <= 0:
            return math.inf
        return max(compute / max(budgets), min(budgets) / compute, 1.0)
    return max(beyond(analyses[1], c), beyond(analyses[0], c_a))


def crossovers(targets, multipliers: dict[float, Estimate]) -> tuple[tuple[float, float, float], ...]:
    """(C1, C2, C*) wherever the multiplier passes 1 between consecutive targets (C* interpolated in log-log)."""
    found = []
    ordered = sorted(targets)
    for lo, hi in zip(ordered, ordered[1:]):
        m_lo, m_hi = multipliers[lo].value, multipliers[hi].value
        if not all(0 < m < math.inf for m in (m_lo, m_hi)) or (m_lo - 1) * (m_hi - 1) >= 0:
            continue
        share = -math.log(m_lo) / (math.log(m_hi) - math.log(m_lo))
        found.append((lo, hi, math.exp(math.log(lo) + share * (math.log(hi) - math.log(lo)))))
    return tuple(found)


def compare(a: Analysis, b: Analysis, approach: str = "parametric", targets: tuple[float, ...] = ()) -> Comparison:
    """Compare two analyses at each target compute (default: the budgets both sweeps share, or B's)."""
    if approach not in APPROACHES:
        raise ValueError(f"approach {approach!r}: choose from {', '.join(APPROACHES)}")
    sides = [s.results.get(approach) for s in (a, b)]
    for side, result in zip((a, b), sides):
        if result is None or not result.parameters:
            raise ValueError(f"{side.sweep}: no {approach} fit to compare (see `ffctl analyze` on it)")
    shared = sorted({p.budget for p in a.points} & {p.budget for p in b.points})
    warnings = [] if shared else [f"{a.sweep} and {b.sweep} share no compute budget: every row compares fitted laws, "
                                  "and none is checked by both sweeps' measurements"]
    if not targets:
        targets = tuple(shared or sorted({p.budget for p in b.points}))
    central = [{k: v.value for k, v in r.parameters.items()} for r in sides]
    ratios = (_ratio(a), _ratio(b))
    laws = [_l_opt(approach, p, r) for p, r in zip(central, ratios)]
    pairs = list(zip(sides[0].replicates, sides[1].replicates))
    replicated = [(_l_opt(approach, ra, ratios[0]), _l_opt(approach, rb, ratios[1])) for ra, rb in pairs]
    fronts = tuple(measured_frontier(s.fit("isoflop")) for s in (a, b))
    resamples, seed = a.settings.resamples, a.settings.seed
    paired = list(zip(*[frontier_replicates(s.points, f, resamples, seed) if f else []
                        for s, f in zip((a, b), fronts)]))
    mult, gap, basis, reach = {}, {}, {}, {}
    for c in targets:
        measured = _measured(fronts, c)
        if measured is not None:
            again = [m for pair in paired if (m := _measured(pair, c)) is not None]
            mult[c] = percentile_estimate(measured[0], [m for m, _ in again])
            gap[c] = percentile_estimate(measured[1], [g for _, g in again])
            basis[c], reach[c] = "measured", 1.0
            continue
        mult[c] = percentile_estimate(multiplier(laws[0], laws[1](c), c),
                                      [multiplier(la, lb(c), c) for la, lb in replicated])
        gap[c] = percentile_estimate(laws[0](c) - laws[1](c), [la(c) - lb(c) for la, lb in replicated])
        basis[c], reach[c] = "law", _reach((a, b), c, mult[c].value * c)
        warnings += _law_warnings(c, mult[c].value, reach[c], approach)
    exponent = percentile_estimate(central[0]["a"] - central[1]["a"], [ra["a"] - rb["a"] for ra, rb in pairs])
    return Comparison(a, b, approach, tuple(targets), mult, gap, exponent, tuple(laws), replicated, basis, reach,
                      crossovers(targets, mult), tuple(warnings), fronts)


def _law_warnings(c: float, value: float, reach: float, approach: str) -> list[str]:
    if value == 0.0:
        return [f"C={c:.3g}: A reaches B's loss with under {_SPAN[0]:g} of the compute by the {approach} laws: the "
                "recipes' laws share no range to compare; the multiplier 0 means nothing measured"]
    if reach > FAR:
        return [f"C={c:.3g}: the {approach} laws extrapolate {reach:.3g}x beyond the measured budgets; trust the "
                "multiplier there less, or measure budgets nearer it"]
    return []
def _json(estimate: Estimate) -> dict:
    """An estimate as JSON; an infinite multiplier (A never reaches B's loss) is null, with "unreachable": true."""
    values = {k: v if v is None or math.isfinite(v) else None for k, v in estimate.to_json().items()}
    return values | ({"unreachable": True} if not math.isfinite(estimate.value) else {})
