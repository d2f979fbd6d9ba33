"""The plan as steps to run: one run per experiment, or, with schedule wsd, trunks and branches (a DAG).

With a warmup-stable-decay schedule the runs of one size share everything up to where each cools down: one
trunk per size (and recipe) trains at constant learning rate, and is cut into segments that each end where a
run branches off (a checkpoint); each experiment is a branch that loads its segment's checkpoint and cools
down to its own token count. A step names the steps it waits for; both executors follow the same list.
Pure and deterministic: a segment's id depends only on its trunk and end step, a branch's id is its
experiment's id, so neither depends on which other points the sweep has.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from ff_core.errors import SpecError
from ff_core.plan import POINT_FIELDS, Experiment, Plan
from ff_core.schedules import SCHEDULES
from ff_core.spec import ScalingSweep

RUN, SEGMENT, BRANCH = "run", "segment", "branch"


@dataclass(frozen=True)
class Step:
    """One process to run: a whole experiment, a trunk segment (steps start..end at constant learning rate,
    ending in a checkpoint), or a branch (from its trunk's checkpoint at `start`, cool down to `end`)."""

    id: str
    kind: str
    start: int
    end: int
    after: tuple[str, ...] = ()
    trunk: str | None = None
    experiment: Experiment | None = None  # what it trains (a segment: one of its trunk's runs, for the model)
    size: str = ""
    flops_per_step: float = 0.0

    @property
    def index(self) -> int:
        """The experiment's place in the plan (a segment: its trunk's first run's)."""
        return self.experiment.index

    @property
    def flops(self) -> float:
        return self.flops_per_step * (self.end - self.start)

    @property
    def label(self) -> str:
        if self.kind != SEGMENT:
            return f"{self.id} ({self.size}, C={self.experiment.budget:.2g})"
        return f"{self.id} (trunk {self.trunk} of {self.size}, steps {self.start}-{self.end})"


def one_step_each(plan: Plan) -> tuple[Step, ...]:
    """Every experiment a run of its own (every schedule but wsd)."""
    return tuple(Step(e.id, RUN, 0, e.steps, experiment=e, size=e.size, flops_per_step=e.flops / e.steps)
                 for e in plan.experiments)


def trunk_id(experiment: Experiment) -> str:
    """The runs that share a trunk: the same identity but for the point's budget and tokens."""
    shared = {k: v for k, v in experiment.identity.items() if k not in POINT_FIELDS or k == "knobs"}
    return "t" + hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:11]


def segment_id(trunk: str, end: int) -> str:
    return "s" + hashlib.sha256(f"{trunk}:{end}".encode()).hexdigest()[:11]


def plan_steps(sweep: ScalingSweep, plan: Plan) -> tuple[Step, ...]:
    """The steps of the plan in an order that runs each after the steps it waits for."""
    cfg = sweep.spec.training
    if not SCHEDULES[cfg.schedule].trunks:
        return one_step_each(plan)
    per_step = {e.id: e.flops / e.steps for e in plan.experiments}
    trunks: dict[str, list[Experiment]] = defaultdict(list)
    for experiment in plan.experiments:
        trunks[trunk_id(experiment)].append(experiment)
    steps: list[Step] = []
    for trunk, members in trunks.items():
        for experiment in members:
            start, warmup = cfg.cooldown_start(experiment.steps), cfg.warmup_steps(experiment.steps)
            if warmup > start:
                raise SpecError(
                    f"{experiment.id} ({experiment.size}, {experiment.tokens} tokens): its cooldown starts at step "
                    f"{start}, inside the warmup of {warmup} steps; lower training.warmupTokens below "
                    f"{start * cfg.global_batch_tokens} or drop the budget")
        points = sorted({cfg.cooldown_start(e.steps) for e in members})
        first = members[0]
        previous = None
        for end in points:
            begin = 0 if previous is None else previous.end
            if end == begin:  # a run that branches at step 0 (no constant phase) needs no segment
                continue
            previous = Step(segment_id(trunk, end), SEGMENT, begin, end, (previous.id,) if previous else (),
                            trunk, first, first.size, per_step[first.id])
            steps.append(previous)
        by_end = {s.end: s.id for s in steps if s.trunk == trunk}
        for experiment in members:
            start = cfg.cooldown_start(experiment.steps)
            steps.append(Step(experiment.id, BRANCH, start, experiment.steps,
                              (by_end[start],) if start in by_end else (), trunk, experiment, experiment.size,
                              per_step[experiment.id]))
    return tuple(sorted(steps, key=lambda s: (s.start, s.kind != SEGMENT, s.trunk or "", s.id)))


def find_step(steps: tuple[Step, ...], step_id: str, sweep: str) -> Step:
    for step in steps:
        if step.id == step_id:
            return step
    known = ", ".join(s.id for s in steps[:5])
    raise SpecError(f"sweep {sweep!r} has no experiment {step_id!r} and no trunk segment of that id (ids look like: "
                    f"{known} ...; `ffctl plan` lists them)")


def steps_flops(steps: tuple[Step, ...]) -> float:
    return sum(step.flops for step in steps)

