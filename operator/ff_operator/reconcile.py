"""Reconcile, as one pure function: (plan, execution settings, observed Jobs, previous status) -> actions.

State is recomputed from scratch every time: from the Jobs found by label, and from the terminal states
already recorded in the sweep's status (a Job deleted by its TTL is remembered there; an experiment
recorded terminal never gets a Job again). Job names are deterministic, so creating one that exists is
success and a restarted operator duplicates nothing.

The unit is a step (ff_core.steps): an experiment, or in a WSD sweep a trunk segment or a branch. A step's
Job is created only once every step it waits for has Succeeded (observed, or recorded in the status); a
step that waits for one that Failed fails too, and a TrunkFailed condition names the segment.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ff_core.crd import LABEL_ATTEMPT, LABEL_EXPERIMENT
from ff_core.plan import Plan
from ff_core.spec import Execution
from ff_core.status import (COMPLETE, FAILED, FAILURE_BUDGET_EXCEEDED, PENDING, PLAN_CHANGED, RETRYING, RUNNING,
                            STOPPED, SUCCEEDED, SUSPENDED, SUSPENDED_CONDITION, TERMINAL_STATES as TERMINAL,
                            TRUNK_FAILED, ExperimentRow, experiment_rows)
from ff_core.steps import RUN, SEGMENT, Step, one_step_each

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
    create: tuple[tuple[Step, int], ...]  # (step, attempt)
    delete: tuple[str, ...]                     # Job names
    status: dict[str, Any]
    events: tuple[tuple[str, str], ...] = field(default=())  # (reason, message) for key transitions


def _experiment_states(steps: tuple[Step, ...], jobs: list[ObservedJob], recorded: dict[str, ExperimentRow],
                       retries: int):
    """Per step id: (state, attempts so far, its active Job name or None). Steps come after those they wait
    for, so a step whose prerequisite failed for good is failed here too (it never started)."""
    by_experiment: dict[str, list[ObservedJob]] = defaultdict(list)
    for job in jobs:
        by_experiment[job.experiment].append(job)
    states = {}
    for e in steps:
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
        if state in (PENDING, RETRYING) and not mine and any(states[a][0] == FAILED for a in e.after):
            state = FAILED  # it waits for a step that failed for good: it cannot run
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
              generation: int, now: str, disrupted: list[tuple[str, str]] = (), owner_uid: str | None = None,
              steps: tuple[Step, ...] | None = None) -> Actions:
    """What to create and delete, and the new status; `previous` is the sweep's current status (or {}).

    `disrupted` lists (experiment id, pod name) of our pods with the DisruptionTarget condition. With
    `owner_uid` (the sweep's uid), only Jobs it owns count: a deleted sweep's Jobs, not yet garbage-collected,
    carry the same labels when a sweep of the same name is created again. `steps` is the plan as steps
    (ff_core.steps.plan_steps; default: one per experiment).
    """
    steps = steps if steps is not None else one_step_each(plan)
    if owner_uid is not None:
        jobs = [j for j in jobs if j.owner in (owner_uid, None)]
    if previous.get("planHash") not in (None, plan.hash):
        return _plan_changed(previous, generation, now)
    recorded = experiment_rows(previous)
    states = _experiment_states(steps, jobs, recorded, execution.retries_per_experiment)
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
        ready = [e for e in steps if all(states[a][0] == SUCCEEDED for a in e.after)]  # never before its trunk
        waiting = [e for kind in (UNSEEN, RETRYING, PENDING) for e in ready if states[e.id][0] == kind]
        create = [(e, states[e.id][1] + (states[e.id][0] != UNSEEN)) for e in waiting[:max(slots, 0)]]
        for e, attempt in create:  # the status reports the state after these actions, not before
            states[e.id] = (RUNNING, attempt, None)
    status = summarize(plan, execution, states, previous, generation, now, stopped,
                       preemptions(recorded, list(disrupted), states), steps)
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


def _trunk_failed(steps: tuple[Step, ...], states: dict, previous: dict, now: str) -> dict[str, str]:
    """The TrunkFailed condition: which segments failed for good, and how many steps wait on them in vain."""
    failed = [s for s in steps if s.kind == SEGMENT and states[s.id][0] == FAILED
              and not any(states[a][0] == FAILED for a in s.after)]
    blocked = sum(1 for s in steps if states[s.id][0] == FAILED and any(states[a][0] == FAILED for a in s.after))
    named = ", ".join(f"{s.id} (trunk {s.trunk} of {s.size}, steps {s.start}-{s.end})" for s in failed[:3])
    message = (f"segment {named} failed: {blocked} step(s) that start from it cannot run; see its Job's logs, fix, "
               "and create the sweep again (finished steps are kept in the store)") if failed else ""
    return _condition(previous, TRUNK_FAILED, bool(failed), "SegmentFailed" if failed else "TrunksHealthy", message, now)


def summarize(plan: Plan, execution: Execution, states: dict, previous: dict, generation: int, now: str,
              stopped: bool, preempted: dict[str, tuple[int, tuple[str, ...]]] | None = None,
              steps: tuple[Step, ...] | None = None) -> dict[str, Any]:
    """The status from scratch: phase, counts, conditions, observedGeneration, plan hash, compact rows."""
    steps = steps if steps is not None else one_step_each(plan)
    counts = Counter(RUNNING if state == UNSEEN else state for state, _, _ in states.values())
    preempted = preempted or {}
    total = len(steps)
    unit = "experiments" if all(s.kind == RUN for s in steps) else "steps"
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
            _condition(previous, COMPLETE, done == total, phase, f"{done}/{total} {unit} finished", now),
            _condition(previous, SUSPENDED_CONDITION, execution.suspend, "Suspend" if execution.suspend else "Active",
                       "spec.execution.suspend is true: no Jobs are created" if execution.suspend else "", now),
            _condition(previous, FAILURE_BUDGET_EXCEEDED, stopped, "MaxFailedExperiments" if stopped else "WithinBudget",
                       f"{counts[FAILED]} failed {unit}, budget {execution.max_failed_experiments}", now),
        ] + ([_trunk_failed(steps, states, previous, now)] if unit == "steps" else []),
        # compact: a short row per experiment (id, one state word, attempts) stays small for 1,000 experiments
        "experiments": [ExperimentRow(e.id, RUNNING if states[e.id][0] == UNSEEN else states[e.id][0], states[e.id][1],
                                      *preempted.get(e.id, (0, ())), "" if e.kind == RUN else e.kind).to_json()
                        for e in steps],
    }


def _events(previous: dict, status: dict, create: list) -> tuple[tuple[str, str], ...]:
    events = []
    if create:
        shown = ", ".join(f"{e.id} attempt {a}" for e, a in create[:5])
        events.append(("JobsCreated", f"created {len(create)} Job(s): {shown}" + (" ..." if len(create) > 5 else "")))
    if previous.get("phase") != status["phase"]:
        events.append(("Phase" + status["phase"], f"phase {previous.get('phase', 'None')} -> {status['phase']}"))
    return tuple(events)
