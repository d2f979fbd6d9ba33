"""The learning-rate schedules as one table: what each computes and what it asks of the rest of flops-fit.

Every schedule starts with the same linear warmup. After it, a schedule says its multiplier of the peak learning
rate (`after_warmup`), which Training fields its experiment ids leave out (`ignores`: a knob it never reads must
not change the ids of sweeps that do not set it), and whether the runs of one size share a trunk (`trunks`:
WSD's warmup and constant phase are the same for every token count, so the plan trains them once and branches
each run's cooldown off it; such a schedule needs warmupTokens, and logs on a grid fixed by the warmup). The
spec's choices, the trainer's learning rate, the planned steps and the report all read this table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Schedule:
    name: str
    after_warmup: Callable[[int, int, int, Any], float]  # (step, steps, warmup steps, Training) -> multiplier
    ignores: frozenset[str]  # Training fields (python names) this schedule never reads
    trunks: bool = False  # the runs of one size share their warmup and constant phase (trained once)
    describe: Callable[[dict[str, Any]], str] = lambda training: ""  # a recipe's schedule in words (report)


def _decay(shape: Callable[[float], float]):
    def after_warmup(step: int, steps: int, warmup: int, cfg) -> float:
        progress = min(1.0, (step - warmup) / max(1, steps - warmup - 1))
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape(progress)

    return after_warmup


def _wsd(step: int, steps: int, warmup: int, cfg) -> float:
    start = cfg.cooldown_start(steps)
    if step < start:
        return 1.0
    progress = (step - start) / (steps - start)
    return 1.0 - (math.sqrt(progress) if cfg.cooldown_shape == "1-sqrt" else progress)


COOLDOWN_FRACTION, COOLDOWN_SHAPE = 0.2, "1-sqrt"  # WSD's defaults (spec.Training's, and a record's unset ones)


def _wsd_words(training: dict[str, Any]) -> str:
    fraction = training.get("cooldown_fraction", COOLDOWN_FRACTION)
    shape = training.get("cooldown_shape", COOLDOWN_SHAPE)
    return (f"wsd (each point a cooldown of the last {fraction:.0%} of its steps, {shape}, branched from its "
            "size's constant-LR trunk)")


_WSD_ONLY = frozenset({"cooldown_fraction", "cooldown_shape"})
SCHEDULES = {s.name: s for s in (
    Schedule("cosine", _decay(lambda p: 0.5 * (1.0 + math.cos(math.pi * p))), _WSD_ONLY),
    Schedule("linear", _decay(lambda p: 1.0 - p), _WSD_ONLY),
    Schedule("constant", lambda step, steps, warmup, cfg: 1.0, _WSD_ONLY),  # min_lr_ratio kept in its ids, as ever
    Schedule("wsd", _wsd, frozenset({"min_lr_ratio"}), trunks=True, describe=_wsd_words),  # its cooldown ends at 0
)}
NAMES = tuple(SCHEDULES)  # the spec's choices, in this order


def lr_multiplier(step: int, steps: int | None, cfg) -> float:
    """Multiplier of the peak learning rate for optimizer step `step` (0-based) of a run of `steps` steps.

    `steps` None is a trunk (a schedule with `trunks`): warmup, then constant for as long as it trains (every
    run of its size has the same learning rate there, which is why its checkpoints can be shared).
    """
    warmup = cfg.warmup_steps(steps or 0)
    if step < warmup:
        return (step + 1) / warmup
    if steps is None:
        return 1.0
    return SCHEDULES[cfg.schedule].after_warmup(step, steps, warmup, cfg)


def describe(training: dict[str, Any]) -> str:
    """A recorded recipe's schedule in words (its identity's training fields), for the report."""
    schedule = SCHEDULES.get(training.get("schedule", ""))
    if schedule is None:
        return training.get("schedule") or ""
    return schedule.describe(training) or schedule.name
