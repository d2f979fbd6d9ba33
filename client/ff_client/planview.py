"""A sweep's plan as ffctl shows it: the experiments table, a WSD sweep's trunks, the cost, and the JSON."""

from __future__ import annotations

import dataclasses

from ff_client.text import aligned, human
from ff_core.flops import H100_BF16_PEAK, gpu_hours
from ff_core.plan import Plan
from ff_core.spec import ScalingSweep
from ff_core.steps import SEGMENT, Step, steps_flops

DEFAULT_MFU = 0.35  # the cost estimate's assumed model FLOPs utilisation


@dataclasses.dataclass(frozen=True)
class PlanView:
    """What `ffctl plan` prints: `text()` (tables and cost) or `to_json()`; `notes` are the planner's warnings."""

    sweep: ScalingSweep
    plan: Plan
    steps: tuple[Step, ...]
    gpu_flops: float = H100_BF16_PEAK
    mfu: float = DEFAULT_MFU

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self.plan.notes)

    def text(self) -> str:
        parts = [plan_table(self.plan)]
        if any(s.kind == SEGMENT for s in self.steps):
            parts.append(trunk_table(self.steps))
        parts.append(plan_cost(self.plan, self.steps, self.gpu_flops, self.mfu))
        return "\n".join(parts)

    def to_json(self) -> dict:
        return plan_json(self.plan, self.steps) | {
            "gpuHours": gpu_hours(steps_flops(self.steps), self.gpu_flops, self.mfu),
            "assumed": {"gpuFlops": self.gpu_flops, "mfu": self.mfu}}


def plan_json(plan: Plan, steps: tuple[Step, ...]) -> dict:
    data = {
        "sweep": plan.sweep,
        "totalFlops": steps_flops(steps),
        "notes": list(plan.notes),
        "experiments": [
            {"id": e.id, "budget": e.budget, "size": e.size, "nParams": e.n_params, "tokens": e.tokens,
             "steps": e.steps, "flops": e.flops, "tokensPerParam": e.tokens_per_param}
            for e in plan.experiments
        ],
    }
    if any(s.kind == SEGMENT for s in steps):
        data["separateRunsFlops"] = plan.total_flops
        data["steps"] = [{"id": s.id, "kind": s.kind, "trunk": s.trunk, "size": s.size, "from": s.start, "to": s.end,
                          "after": list(s.after), "flops": s.flops} for s in steps]
    return data


def plan_cost(plan: Plan, steps: tuple[Step, ...], peak: float, mfu: float) -> str:
    """The sweep's cost: total FLOPs, and GPU-hours at an assumed utilisation of a GPU's peak; a WSD sweep's
    against the same points trained as separate runs."""
    total = steps_flops(steps)
    hours = gpu_hours(total, peak, mfu)
    largest = max(plan.experiments, key=lambda e: e.flops)
    text = (f"cost: {total:.3g} FLOPs = {hours:.3g} GPU-hours at {mfu:.0%} MFU of {peak:.3g} FLOP/s "
            f"(largest experiment {gpu_hours(largest.flops, peak, mfu):.3g} GPU-hours)")
    if any(s.kind == SEGMENT for s in steps):
        separate = plan.total_flops
        text += (f"\nWSD saving: the same points as separate runs cost {separate:.3g} FLOPs = "
                 f"{gpu_hours(separate, peak, mfu):.3g} GPU-hours; trunks and branches save {1 - total / separate:.0%}")
    return text


def trunk_table(steps: tuple[Step, ...]) -> str:
    """One row per WSD trunk: its size, its segments (steps where runs branch off) and its branches."""
    rows = [("trunk", "size", "segments (ends at step)", "branches", "FLOPs")]
    segments = sorted((s for s in steps if s.kind == SEGMENT), key=lambda s: (s.experiment.n_params, s.size))
    for trunk in dict.fromkeys(s.trunk for s in segments):
        mine = [s for s in steps if s.trunk == trunk]
        ends = ", ".join(str(s.end) for s in mine if s.kind == SEGMENT)
        rows.append((trunk, mine[0].size, ends, str(sum(s.kind != SEGMENT for s in mine)),
                     f"{sum(s.flops for s in mine):.2e}"))
    return aligned(rows)


def plan_table(plan: Plan) -> str:
    rows = [("id", "budget C", "size", "N", "D", "steps", "FLOPs", "D/N")]
    for e in plan.experiments:
        rows.append((e.id, f"ladder M={e.ladder:g}" if e.ladder is not None else f"{e.budget:.2e}", e.size,
                     human(e.n_params), human(e.tokens), str(e.steps), f"{e.flops:.2e}", f"{e.tokens_per_param:.1f}"))
    lines = [aligned(rows)]
    budgets = len({e.budget for e in plan.experiments if e.ladder is None})
    ladder = [e for e in plan.experiments if e.ladder is not None]
    rungs = f" and {len(ladder)} ladder runs (M = {', '.join(f'{m:g}' for m in sorted({e.ladder for e in ladder}))})"
    lines.append(f"{len(plan.experiments)} experiments over {budgets} budgets{rungs if ladder else ''}, "
                 f"{plan.total_flops:.3g} FLOPs in total")
    return "\n".join(lines)
