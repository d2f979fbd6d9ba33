"""The ScalingSweep's status: sweep phases, condition types and the per-experiment row.

The operator's reconcile writes it; `ffctl status` reads it. A row is compact ({"id", "s", "a"} plus "p"
and "dp" when there were preemptions, "k" for a WSD sweep's segments and branches) so that the status of a
1,000-experiment sweep stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# An experiment's state (a row's "s")
SUCCEEDED, FAILED, RUNNING, RETRYING, PENDING = "Succeeded", "Failed", "Running", "Retrying", "Pending"
TERMINAL_STATES = {SUCCEEDED, FAILED}

# The sweep's phase (.status.phase): Pending, Running, Succeeded, Failed as for experiments, and these
STOPPED, SUSPENDED, INVALID = "Stopped", "Suspended", "Invalid"
TERMINAL_PHASES = {SUCCEEDED, FAILED, INVALID, STOPPED}

# Condition types
COMPLETE, SUSPENDED_CONDITION = "Complete", "Suspended"
FAILURE_BUDGET_EXCEEDED, PLAN_CHANGED, VALID = "FailureBudgetExceeded", "PlanChanged", "Valid"
TRUNK_FAILED = "TrunkFailed"  # a WSD trunk segment failed for good: the steps that start from it cannot run
# (type, status) pairs that `ffctl status` shows: the ones a user should act on
NOTEWORTHY = {(VALID, "False"), (FAILURE_BUDGET_EXCEEDED, "True"), (SUSPENDED_CONDITION, "True"),
              (PLAN_CHANGED, "True"), (TRUNK_FAILED, "True")}


@dataclass(frozen=True)
class ExperimentRow:
    """One experiment in the sweep's status."""

    id: str
    state: str = PENDING
    attempts: int = 0
    preemptions: int = 0
    disrupted_pods: tuple[str, ...] = ()  # preempted pods already counted (kept while the experiment runs)
    kind: str = ""  # WSD sweeps: "segment" (a stretch of a trunk) or "branch" (an experiment's cooldown)
    pack: str = ""  # while running in a packed Job (execution.experimentsPerGPU): the pack's id

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "s": self.state, "a": self.attempts}
        if self.kind:
            row["k"] = self.kind
        if self.pack:
            row["pk"] = self.pack
        if self.preemptions:
            row["p"] = self.preemptions
        if self.disrupted_pods:
            row["dp"] = list(self.disrupted_pods)
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> ExperimentRow:
        return cls(row["id"], row.get("s", PENDING), row.get("a", 0), row.get("p", 0), tuple(row.get("dp", ())),
                   row.get("k", ""), row.get("pk", ""))


def experiment_rows(status: dict[str, Any] | None) -> dict[str, ExperimentRow]:
    """The rows of a sweep's status, by experiment id."""
    return {row["id"]: ExperimentRow.from_json(row) for row in (status or {}).get("experiments", [])}
