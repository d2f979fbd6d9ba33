"""Reconcile, as one pure function: (plan, execution settings, observed Jobs, previous status) -> actions.

State is recomputed from scratch every time: from the Jobs found by label, and from the terminal states
already recorded in the sweep's status (a Job deleted by its TTL is remembered there; an experiment
recorded terminal never gets a Job again). Job names are deterministic, so creating one that exists is
success and a restarted operator duplicates nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ff_core.crd import LABEL_ATTEMPT, LABEL_EXPERIMENT
from ff_core.plan import Experiment, Plan
from ff_core.spec import Execution
from ff_core.status import (COMPLETE, FAILED, FAILURE_BUDGET_EXCEEDED, PENDING, PLAN_CHANGED, RETRYING, RUNNING,
                            STOPPED, SUCCEEDED, SUSPENDED, SUSPENDED_CONDITION, TERMINAL_STATES as TERMINAL,
                            ExperimentRow, experiment_rows)

UNSEEN = "Unseen"  # recorded Running at attempt a, no Job of attempt a observed: (re)create attempt a, first


@dataclass(frozen=True)
class ObservedJob:
    name: str
    experiment: str
    attempt: int
    state: str  # "active" | "succeeded" | "failed"
    permanent: bool = False  # failed by the pod failure policy (trainer exit 3 or 4): no retry helps
    owner: str | None = None  # the uid of the ScalingSweep that owns it (its controller ownerReference)


def observe(job: dict[str, Any]) -> ObservedJob:
    """Read what reconcile needs from a batch/v1 Job object."""
    labels = job["metadata"].get("labels", {})
    conditions = {c["type"]: c for c in job.get("status", {}).get("conditions", []) if c.get("status") == "True"}
    if "Complete" in conditions:
        state, permanent = "succeeded", False
    elif "Failed" in conditions:
        state, permanent = "failed", conditions["Failed"].get("reason") == "PodFailurePolicy"
    else:
        state, permanent = "active", False
    owner = next((ref.get("uid") for ref in job["metadata"].get("ownerReferences") or [] if ref.get("controller")), None)
    return ObservedJob(job["metadata"]["name"], labels[LABEL_EXPERIMENT], int(labels[LABEL_ATTEMPT]), state, permanent,
                       owner)


@dataclass(frozen=True)
class Actions:
    create: tuple[tuple[Experiment, int], ...]  # (experiment, attempt)
    delete: tuple[str, ...]                     # Job names
    status: dict[str, Any]
    events: tuple[tuple[str, str], ...] = field(default=())  # (reason, message) for key transitions


def _experiment_states(plan: Plan, jobs: list[ObservedJob], recorded: dict[str, ExperimentRow], retries: int):
    """Per experiment id: (state, attempts so far, its active Job name or None)."""
    by_experiment: dict[str, list[ObservedJob]] = defaultdict(list)
    for job in jobs:
        by_experiment[job.experiment].append(job)
    states = {}
    for e in plan.experiments:
        mine = sorted(by_experiment.get(e.id, []), key=lambda j: j.attempt)
        row = recorded.get(e.id) or ExperimentRow(e.id)
        attempts = max([j.attempt for j in mine] + [row.attempts])
        active = next((j.name for j in mine if j.state == "active"), None)
        if row.state in TERMINAL:
            state = row.state
        elif any(j.state == "succeeded" for j in mine):
            state = SUCCEEDED
        elif row.state == RUNNING and attempts > (mine[-1].attempt if mine else 0):
            state = UNSEEN  # created, but its Job has not reached the watch yet (or was deleted by hand)
        elif active:
            state = RUNNING
        elif mine and mine[-1].state == "failed":
            state = FAILED if mine[-1].permanent or attempts > retries else RETRYING
        else:
            state = PENDING
        states[e.id] = (state, attempts, active)
    return states


def preemptions(recorded: dict[str, ExperimentRow], disrupted: list[tuple[str, str]],
                states: dict) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Per experiment: (preemptions so far, disrupted pod names already counted), for those with any.

    A preempted pod (condition DisruptionTarget) is replaced by the Job controller and costs no retry; it is
    counted once by name. Names are kept while the experiment runs and dropped once it ends: the count stays.
    """
    seen: dict[str, set[str]] = defaultdict(set)
    for experiment, pod in disrupted:
        seen[experiment].add(pod)
    out = {}
    for eid, (state, _, _) in states.items():
        old = recorded.get(eid) or ExperimentRow(eid)
        known = set(old.disrupted_pods)
        count = old.preemptions + len(seen[eid] - known)
        if count:
            out[eid] = (count, () if state in TERMINAL else tuple(sorted(known | seen[eid])))
    return out


def reconcile(plan: Plan, execution: Execution, jobs: list[ObservedJob], previous: dict[str, Any],
              generation: int, now: str, disrupted: list[tuple[str, str]] = (), owner_uid: str | None = None) -> Actions:
    """What to create and delete, and the new status; `previous` is the sweep's current status (or {}).

    `disrupted` lists (experiment id, pod name) of our pods with the DisruptionTarget condition. With
    `owner_uid` (the sweep's uid), only Jobs it owns count: a deleted sweep's Jobs, not yet garbage-collected,
    carry the same labels when a sweep of the same name is created again.
    """
    if owner_uid is not None:
        jobs = [j for j in jobs if j.owner in (owner_uid, None)]
    if previous.get("planHash") not in (None, plan.hash):
        return _plan_changed(previous, generation, now)
    recorded = experiment_rows(previous)
    states = _experiment_states(plan, jobs, recorded, execution.retries_per_experiment)
    counts = Counter(state for state, _, _ in states.values())
    budget = execution.max_failed_experiments
    stopped = budget is not None and counts[FAILED] > budget
    create, delete = [], []
    if stopped:  # nothing new starts; what StopActive deletes, and what is recorded but gone, is not running
        stop_active = execution.failure_policy == "StopActive"
        delete = [active for state, _, active in states.values() if active] if stop_active else []
        states = {eid: (PENDING, attempts, None) if state == UNSEEN or (stop_active and state == RUNNING) else
                  (state, attempts, active) for eid, (state, attempts, active) in states.items()}
    elif not stopped and not execution.suspend:
        slots = execution.parallelism - counts[RUNNING]
        waiting = [e for kind in (UNSEEN, RETRYING, PENDING) for e in plan.experiments if states[e.id][0] == kind]
        create = [(e, states[e.id][1] + (states[e.id][0] != UNSEEN)) for e in waiting[:max(slots, 0)]]
        for e, attempt in create:  # the status reports the state after these actions, not before
            states[e.id] = (RUNNING, attempt, None)
    status = summarize(plan, execution, states, previous, generation, now, stopped,
                       preemptions(recorded, list(disrupted), states))
    return Actions(tuple(create), tuple(delete), status, _events(previous, status, create))


def _plan_changed(previous: dict[str, Any], generation: int, now: str) -> Actions:
    """The spec now plans other experiments (the CRD's CEL rules forbid it; an API server without them may not):
    keep the recorded status, create and delete nothing, and say how to get out."""
    message = ("the plan-defining fields of spec changed after creation, so the experiment ids no longer match the "
               "running ones; revert spec to the original (planHash " + previous["planHash"] + ") or create a new sweep")
    conditions = [c for c in previous.get("conditions", []) if c["type"] != PLAN_CHANGED]
    conditions.append(_condition(previous, PLAN_CHANGED, True, "ImmutableFieldChanged", message, now))
    status = previous | {"observedGeneration": generation, "conditions": conditions}
    events = () if any(c["type"] == PLAN_CHANGED for c in previous.get("conditions", [])) else ((PLAN_CHANGED, message),)
    return Actions((), (), status, events)


def _phase(counts: Counter, total: int, suspended: bool, stopped: bool) -> str:
    if counts[SUCCEEDED] + counts[FAILED] == total:
        return SUCCEEDED if counts[FAILED] == 0 else FAILED
    if stopped:
        return STOPPED
    if suspended and counts[RUNNING] == 0:
        return SUSPENDED
    return RUNNING if counts[RUNNING] or counts[SUCCEEDED] or counts[FAILED] else PENDING


def _condition(previous: dict, kind: str, true: bool, reason: str, message: str, now: str) -> dict[str, str]:
    """A condition whose lastTransitionTime moves only when its status changes."""
    status = "True" if true else "False"
    old = next((c for c in previous.get("conditions", []) if c["type"] == kind), None)
    since = old["lastTransitionTime"] if old and old["status"] == status else now
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}


def summarize(plan: Plan, execution: Execution, states: dict, previous: dict, generation: int, now: str,
              stopped: bool, preempted: dict[str, tuple[int, tuple[str, ...]]] | None = None) -> dict[str, Any]:
    """The status from scratch: phase, counts, conditions, observedGeneration, plan hash, compact rows."""
    counts = Counter(RUNNING if state == UNSEEN else state for state, _, _ in states.values())
    preempted = preempted or {}
    total = len(plan.experiments)
    phase = _phase(counts, total, execution.suspend, stopped)
    done = counts[SUCCEEDED] + counts[FAILED]
    return {
        "phase": phase,
        "observedGeneration": generation,
        "planHash": plan.hash,
        "total": total, "succeeded": counts[SUCCEEDED], "failed": counts[FAILED], "running": counts[RUNNING],
        "pending": counts[PENDING] + counts[RETRYING],
        "preempted": sum(count for count, _ in preempted.values()),
        "conditions": [
            _condition(previous, COMPLETE, done == total, phase, f"{done}/{total} experiments finished", now),
            _condition(previous, SUSPENDED_CONDITION, execution.suspend, "Suspend" if execution.suspend else "Active",
                       "spec.execution.suspend is true: no Jobs are created" if execution.suspend else "", now),
            _condition(previous, FAILURE_BUDGET_EXCEEDED, stopped, "MaxFailedExperiments" if stopped else "WithinBudget",
                       f"{counts[FAILED]} failed experiments, budget {execution.max_failed_experiments}", now),
        ],
        # compact: a short row per experiment (id, one state word, attempts) stays small for 1,000 experiments
        "experiments": [ExperimentRow(e.id, RUNNING if states[e.id][0] == UNSEEN else states[e.id][0], states[e.id][1],
                                      *preempted.get(e.id, (0, ()))).to_json() for e in plan.experiments],
    }


def _events(previous: dict, status: dict, create: list) -> tuple[tuple[str, str], ...]:
    events = []
    if create:
        shown = ", ".join(f"{e.id} attempt {a}" for e, a in create[:5])
        events.append(("JobsCreated", f"created {len(create)} Job(s): {shown}" + (" ..." if len(create) > 5 else "")))
    if previous.get("phase") != status["phase"]:
        events.append(("Phase" + status["phase"], f"phase {previous.get('phase', 'None')} -> {status['phase']}"))
    return tuple(events)
