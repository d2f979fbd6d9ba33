"""Learning-rate schedules: linear warmup, then cosine (or linear) decay that ends exactly at the last step, or
constant, or warmup-stable-decay (WSD: constant, then a cooldown to 0 over the last cooldownFraction of steps)."""

from __future__ import annotations

import math

from ff_core.spec import Training


def lr_multiplier(step: int, steps: int | None, cfg: Training) -> float:
    """Multiplier of the peak learning rate for optimizer step `step` (0-based) of a run of `steps` steps.

    `steps` None is a WSD trunk: warmup, then constant for as long as it trains (every run of its size has
    the same learning rate there, which is why its checkpoints can be shared).
    """
    warmup = cfg.warmup_steps(steps or 0)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant" or steps is None:
        return 1.0
    if cfg.schedule == "wsd":
        start = cfg.cooldown_start(steps)
        if step < start:
            return 1.0
        progress = (step - start) / (steps - start)
        return 1.0 - (math.sqrt(progress) if cfg.cooldown_shape == "1-sqrt" else progress)
    decay_steps = max(1, steps - warmup - 1)
    progress = min(1.0, (step - warmup) / decay_steps)
    if cfg.schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape
