"""What an analysis approach is: one small Protocol, the data it fits, and what the analysis keeps of it.

An approach (isoFLOP parabolas, the parametric surface, ...) is one module that owns its fit, the numbers
it reports (parameters, and N_opt, D_opt, L_opt at a compute budget when it predicts them), its warm start
for bootstrap replicates, its report section and its JSON part. The analysis iterates over a registry of
approaches (ff_client.fit.approaches.APPROACHES) and knows none of them by name; adding one is a module and
a registry line, and a test can pass its own to `analyze(..., approaches=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ff_client.fit.estimate import Estimate
from ff_client.fit.laws import HUBER_DELTA
from ff_client.fit.points import Point
from ff_core.results import ResultRecord

QUANTITIES = ("n_opt", "d_opt", "l_opt")  # what an approach predicts at a compute budget


@dataclass(frozen=True)
class Settings:
    targets: tuple[float, ...] = ()   # compute budgets to predict at, beyond the table's
    resamples: int = 1000             # bootstrap resamples (0: no intervals)
    seed: int = 0
    workers: int | None = None        # processes for the bootstrap (default: all cores)
    exclude_outliers: bool = False    # drop the points the residual rule flags (default: flag, keep)
    delta: float = HUBER_DELTA        # Huber delta of the surface fits (on log-loss)


@dataclass(frozen=True)
class FitData:
    """What an approach fits: the points, and the result records behind them (for their loss curves)."""

    points: tuple[Point, ...]
    records: tuple[ResultRecord, ...] = ()


@dataclass(frozen=True)
class Row:
    """One approach's compute-optimal allocation at one budget: a row of the Chinchilla-style table."""

    approach: str
    flops: float
    n_opt: Estimate
    d_opt: Estimate
    l_opt: Estimate
    kind: str  # "sweep" (a budget of the sweep) | "extrapolated" | "target" (asked for)
    reach: float = 1.0  # flops as a multiple of the sweep's largest budget, where beyond it (extrapolation)

    @property
    def tokens_per_param(self) -> float:
        return self.d_opt.value / self.n_opt.value

    @property
    def label(self) -> str:
        """The kind, and how far beyond the largest budget an extrapolated or target row reaches: 'extrapolated x10'."""
        return self.kind if self.reach <= 1 else f"{self.kind} x{self.reach:.3g}"

    def to_json(self) -> dict:
        return {"approach": self.approach, "flops": self.flops, "kind": self.kind, "reach": self.reach,
                "n_opt": self.n_opt.to_json(), "d_opt": self.d_opt.to_json(), "l_opt": self.l_opt.to_json(),
                "tokens_per_param": self.tokens_per_param}


class Approach(Protocol):
    name: str      # its key in the table, the intervals and the bootstrap failures
    json_key: str  # its key under "approaches" in the JSON
    listed: bool   # listed in the JSON (as null) even when it could not be fitted
    # Capabilities, read by the modules that use them instead of naming approaches:
    allocates: bool  # its law gives N_opt, D_opt, L_opt at any C: compare, suggest and the backtest use it, and
    #                  it defines l_opt_law(parameters, flops_per_param_token) -> (C -> L_opt)
    style: tuple[str, str] | None  # (colour, line style) of its laws in the allocation plot; None: not drawn

    def fit(self, data: FitData, settings: Settings) -> Any | None:
        """The fit of all the data, or None when the data do not allow one."""

    def refit(self, data: FitData, central: Any, settings: Settings) -> Any | None:
        """The fit of a bootstrap resample, warm-started from the central fit where that helps."""

    def parameters(self, fit: Any) -> dict[str, float] | None:
        """The numbers it reports of a fit (None: the fit located nothing to report)."""

    def predict(self, fit: Any, compute: float) -> dict[str, float] | None:
        """{n_opt, d_opt, l_opt} at a compute budget, or None when it does not predict an allocation."""

    def warnings(self, result: Result) -> list[str]:
        """What a reader should know about the fit (a minimum at an edge, a parameter on its bound)."""

    def section(self, result: Result) -> list[str]:
        """Its lines of the text report, heading first."""

    def to_json(self, result: Result) -> dict[str, Any]:
        """Its part of the JSON (only called with a fit)."""


@dataclass(frozen=True)
class Result:
    """What the analysis keeps of one approach: the fit, its numbers with intervals, its table rows."""

    approach: Approach
    fit: Any | None
    parameters: dict[str, Estimate]
    rows: tuple[Row, ...] = ()
    failed: int | None = None  # bootstrap replicates whose fit failed (None: not bootstrapped)
    replicates: tuple[dict[str, float], ...] = ()  # the good replicates' parameters
    settings: Settings = Settings()

    def parameter_lines(self) -> list[str]:
        return [f"  {name:14} {value.text()}" for name, value in self.parameters.items()]

    def parameters_json(self) -> dict[str, dict]:
        return {name: value.to_json() for name, value in self.parameters.items()}

    def rows_json(self) -> list[dict]:
        return [{"flops": r.flops, "kind": r.kind, "reach": r.reach, "n_opt": r.n_opt.to_json(),
                 "d_opt": r.d_opt.to_json(), "l_opt": r.l_opt.to_json()} for r in self.rows]
