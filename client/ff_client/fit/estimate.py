"""A reported number with its bootstrap interval, as one value (lmfit's Parameter carries value and stderr)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95       # the intervals' nominal coverage
MIN_REPLICATES = 10  # fewer good replicates than this give no interval
MAX_FAILED_SHARE = 0.5  # when more than half the resamples' fits fail, the survivors are no interval: none is given


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None = None
    high: float | None = None

    def to_json(self) -> dict:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}

    def text(self) -> str:
        """'0.4975  [0.41, 0.58]' (4 significant digits), or the value alone without an interval."""
        if self.low is None:
            return f"{self.value:.4g}"
        return f"{self.value:.4g}  [{self.low:.4g}, {self.high:.4g}]"


def percentile_estimate(value: float, replicates: list[float]) -> Estimate:
    """The central value with the percentile interval of its replicates (none below MIN_REPLICATES)."""
    if len(replicates) < MIN_REPLICATES:
        return Estimate(value)
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(np.array(replicates), [tail, 100 - tail])
    return Estimate(value, float(low), float(high))
