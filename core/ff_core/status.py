"""The ScalingSweep's status: sweep phases, condition types, the status itself (SweepStatus) and its rows.

The operator's reconcile writes it; `ffctl status` and the CRD's printer columns read it. A row is compact
({"id", "s", "a"} plus "p" and "dp" when there were preemptions, "k" for a WSD sweep's segments and branches)
so that the status of a 1,000-experiment sweep stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# An experiment's state (a row's "s")
SUCCEEDED, FAILED, RUNNING, RETRYING, PENDING = "Succeeded", "Failed", "Running", "Retrying", "Pending"
# Its Job exists but is suspended (spec.suspend, or the Job's Suspended condition): a queue such as Kueue has not
# admitted it yet, or took it back; no pod runs. It holds a slot of parallelism as a running one does.
QUEUED = "Queued"
TERMINAL_STATES = {SUCCEEDED, FAILED}
ACTIVE_STATES = {RUNNING, QUEUED}  # a Job exists for it

# The sweep's phase (.status.phase): Pending, Running, Queued (Jobs waiting for admission, none running),
# Succeeded, Failed as for experiments, and these
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
    return {row.id: row for row in SweepStatus.from_json(status).experiments}


@dataclass(frozen=True)
class SweepStatus:
    """.status of a reconciled sweep, as the operator writes it (to_json) and `ffctl status` reads it
    (from_json: a sweep not reconciled yet has no phase and no total)."""

    phase: str | None = None
    observed_generation: int | None = None
    plan_hash: str | None = None
    total: int | None = None
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    pending: int = 0
    preempted: int = 0  # a lower bound: a preempted pod deleted while the operator was down is not seen
    queued: int = 0
    conditions: tuple[dict[str, Any], ...] = ()
    experiments: tuple[ExperimentRow, ...] = ()

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def counts(self) -> dict[str, int | None]:
        return {key: getattr(self, key) for key in COUNTS}

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"phase": self.phase, "observedGeneration": self.observed_generation,
                                "planHash": self.plan_hash}
        return {k: v for k, v in data.items() if v is not None} | self.counts() | {
            "conditions": list(self.conditions), "experiments": [row.to_json() for row in self.experiments]}

    @classmethod
    def from_json(cls, status: dict[str, Any] | None) -> SweepStatus:
        status = status or {}
        return cls(status.get("phase"), status.get("observedGeneration"), status.get("planHash"), status.get("total"),
                   *(status.get(key, 0) for key in COUNTS[1:]), tuple(status.get("conditions", [])),
                   tuple(ExperimentRow.from_json(row) for row in status.get("experiments", [])))


# SweepStatus's counts, as JSON keys
COUNTS = ("total", "succeeded", "failed", "running", "pending", "preempted", "queued")
# The CRD's printer columns (kubectl get scalingsweeps): (name, type, the SweepStatus JSON key shown)
PRINTER_COLUMNS = (("Phase", "string", "phase"), ("Done", "integer", "succeeded"), ("Total", "integer", "total"),
                   ("Running", "integer", "running"), ("Queued", "integer", "queued"), ("Failed", "integer", "failed"))
