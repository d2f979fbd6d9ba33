"""Expand a sweep spec into its ordered experiments: pure, deterministic, no user code needed."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ff_core.errors import SpecError
from ff_core.flops import flops_per_token, tokens_for_budget
from ff_core.spec import ScalingSweep, SizeEntry, SweepSpec

# Training knobs that change what an experiment computes (logging and checkpoint cadence do not, nor how the same
# numbers are computed: compiled, deterministic kernels, the readout taken in chunks).
_IDENTITY_EXCLUDED = {"log_points", "checkpoint_every_steps", "compile", "deterministic", "fused_readout"}
MIN_POINTS_FOR_FIT = 3


@dataclass(frozen=True)
class Experiment:
    """One (budget C, model size N, tokens D) point of the sweep."""

    id: str
    index: int
    budget: float
    size: str
    knobs: dict[str, Any] = field(hash=False, compare=True)
    n_params: int
    tokens: int
    steps: int
    flops: float
    identity: dict[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)  # what id hashes
    ladder: float | None = None  # an over-training ladder run's token multiplier M; None on the isoFLOP grid

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.n_params


@dataclass(frozen=True)
class Plan:
    """The experiments in run order, plus a note for every budget that got fewer points than asked."""

    sweep: str
    experiments: tuple[Experiment, ...]
    notes: tuple[str, ...]

    @property
    def total_flops(self) -> float:
        return sum(e.flops for e in self.experiments)

    @property
    def hash(self) -> str:
        """A hash of the plan's experiment ids, in order: the same plan, the same hash."""
        return hashlib.sha256(",".join(e.id for e in self.experiments).encode()).hexdigest()[:16]

    def by_id(self, experiment_id: str) -> Experiment:
        for experiment in self.experiments:
            if experiment.id == experiment_id:
                return experiment
        known = ", ".join(e.id for e in self.experiments[:5])
        raise SpecError(f"sweep {self.sweep!r} has no experiment {experiment_id!r} (ids look like: {known} ...)")


# The parts of an experiment's identity that are its point (where on the N-D plane); the rest is its recipe.
POINT_FIELDS = ("budget", "knobs", "tokens", "ladder")


def _rates_in_range(sweep: ScalingSweep, experiments: list[Experiment]) -> None:
    """A learning-rate law must give every planned point a rate in (0, 1], as a number must be."""
    training = sweep.spec.training
    for e in experiments:
        rate = training.at(e.n_params, e.tokens).learning_rate
        if not (0 < rate <= 1) or math.isnan(rate):
            raise SpecError(f"sweep {sweep.name!r}: spec.training.learningRate's law gives experiment {e.id} (N "
                            f"{e.n_params:.3g}, D {e.tokens:.3g}) a learning rate of {rate:.3g}, outside (0, 1]; "
                            "check its c and exponents")


def experiment_identity(spec: SweepSpec, budget: float, size: SizeEntry, tokens: int,
                        ladder: float | None = None) -> dict[str, Any]:
    """Everything that defines the experiment's result: its point and its recipe (plugins, training knobs).
    Result records carry it, so an id can be checked and two recipes in one store told apart."""
    return ({"ladder": ladder} if ladder is not None else {}) | {
        "budget": f"{budget:.6e}",
        "model": spec.model.model_dump(mode="json"),
        "knobs": size.knobs,
        "tokens": tokens,
        "data": spec.data.model_dump(mode="json"),
        "loss": spec.loss.model_dump(mode="json"),
        "training": spec.training.model_dump(mode="json", exclude=_IDENTITY_EXCLUDED | spec.training.unused()),
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def identity_id(identity: dict[str, Any]) -> str:
    """The experiment id of an identity: a short, stable, DNS-safe hash."""
    return "e" + _digest(identity)[:11]


def recipe_hash(identity: dict[str, Any]) -> str:
    """A hash of the identity without its point: the same for every experiment of one recipe."""
    return _digest({k: v for k, v in identity.items() if k not in POINT_FIELDS})[:12]


def experiment_id(spec: SweepSpec, budget: float, size: SizeEntry, tokens: int) -> str:
    """A short, stable, DNS-safe hash of everything that defines the experiment's result."""
    return identity_id(experiment_identity(spec, budget, size, tokens))


def _require_counts(spec: SweepSpec) -> None:
    missing = [f"sizes[{i}] ({s.name})" for i, s in enumerate(spec.sizes) if s.n_params is None]
    if missing:
        raise SpecError(
            f"{', '.join(missing)}: nParams is missing; run `ffctl plan SWEEP --write` to fill it "
            "from the model plugin, or write it by hand"
        )


def _candidates(spec: SweepSpec, budget: float) -> tuple[list[tuple[SizeEntry, int, int]], list[str]]:
    """Sizes whose D/N lies in the window at this budget, as (size, steps, tokens); and why others left."""
    batch = spec.training.global_batch_tokens
    window = spec.tokens_per_param
    kept, dropped = [], []
    for size in sorted(spec.sizes, key=lambda s: (s.n_params, s.name)):
        target = tokens_for_budget(budget, size.n_params, size.flops_per_token)
        steps = round(target / batch)
        if steps < 1:
            dropped.append(f"{size.name}: D={target:.3g} is less than one global batch ({batch} tokens)")
            continue
        ratio = steps * batch / size.n_params
        if not window.min <= ratio <= window.max:
            dropped.append(f"{size.name}: D/N={ratio:.3g} outside [{window.min:g}, {window.max:g}]")
            continue
        kept.append((size, steps, steps * batch))
    return kept, dropped


def _centred(candidates: list, count: int, spec: SweepSpec) -> list:
    """The `count` consecutive candidates whose middle D/N sits closest to the window's geometric centre."""
    if len(candidates) <= count:
        return candidates
    centre = 0.5 * (math.log(spec.tokens_per_param.min) + math.log(spec.tokens_per_param.max))

    def distance(start: int) -> float:
        size, _, tokens = candidates[start + count // 2]
        return abs(math.log(tokens / size.n_params) - centre)

    best = min(range(len(candidates) - count + 1), key=distance)
    return candidates[best : best + count]


def plan_sweep(sweep: ScalingSweep) -> Plan:
    """Expand the sweep: per budget (ascending), up to pointsPerBudget sizes (ascending N)."""
    spec = sweep.spec
    _require_counts(spec)
    experiments: list[Experiment] = []
    notes: list[str] = []
    for budget in sorted(spec.budgets):
        candidates, dropped = _candidates(spec, budget)
        chosen = _centred(candidates, spec.points_per_budget, spec)
        if len(chosen) < MIN_POINTS_FOR_FIT:
            notes.append(
                f"budget {budget:.3g}: only {len(chosen)} point(s), fewer than the "
                f"{MIN_POINTS_FOR_FIT} an isoFLOP parabola needs ({'; '.join(dropped) or 'too few sizes'}); "
                "add sizes or widen tokensPerParam"
            )
        elif len(chosen) < spec.points_per_budget:
            notes.append(
                f"budget {budget:.3g}: {len(chosen)} of {spec.points_per_budget} points "
                f"({'; '.join(dropped) or 'too few sizes in the family'})"
            )
        for size, steps, tokens in chosen:
            identity = experiment_identity(spec, budget, size, tokens)
            experiments.append(
                Experiment(
                    id=identity_id(identity),
                    index=len(experiments),
                    budget=budget,
                    size=size.name,
                    knobs=dict(size.knobs),
                    n_params=size.n_params,
                    tokens=tokens,
                    steps=steps,
                    flops=flops_per_token(size.n_params, size.flops_per_token) * tokens,
                    identity=identity,
                )
            )
    experiments += _ladder(spec, experiments, notes)
    if not experiments:
        raise SpecError(f"sweep {sweep.name!r} plans no experiments: " + " | ".join(notes))
    _rates_in_range(sweep, experiments)
    return Plan(sweep=sweep.name, experiments=tuple(experiments), notes=tuple(notes))


def _ladder(spec: SweepSpec, grid: list[Experiment], notes: list[str]) -> list[Experiment]:
    """The ladder's runs, after the grid's: per size (ascending N), D = M N rounded to whole global batches for
    each M (ascending); a point the grid already trains is not planned twice, and one under a batch is a note."""
    if spec.ladder is None:
        return []
    batch = spec.training.global_batch_tokens
    names = set(spec.ladder.sizes or [s.name for s in spec.sizes])
    planned = {(e.size, e.tokens) for e in grid}
    out: list[Experiment] = []
    for size in sorted((s for s in spec.sizes if s.name in names), key=lambda s: (s.n_params, s.name)):
        for m in spec.ladder.token_multipliers:
            steps = round(m * size.n_params / batch)
            if steps < 1:
                notes.append(f"ladder: {size.name} at M={m:g} is less than one global batch ({batch} tokens); left out")
                continue
            tokens = steps * batch
            if (size.name, tokens) in planned:
                continue
            planned.add((size.name, tokens))
            flops = flops_per_token(size.n_params, size.flops_per_token) * tokens
            identity = experiment_identity(spec, flops, size, tokens, ladder=m)
            out.append(Experiment(id=identity_id(identity), index=len(grid) + len(out), budget=float(f"{flops:.6e}"),
                                  size=size.name, knobs=dict(size.knobs), n_params=size.n_params, tokens=tokens,
                                  steps=steps, flops=flops, identity=identity, ladder=m))
    return out
