"""Reconcile, as one pure function: (plan, execution settings, observed Jobs, previous status) -> actions.

State is recomputed from scratch every time: from the Jobs found by label, and from the terminal states
already recorded in the sweep's status (a Job deleted by its TTL is remembered there; an experiment
recorded terminal never gets a Job again). Job names are deterministic, so creating one that exists is
success and a restarted operator duplicates nothing.

The unit is a step (ff_core.steps): an experiment, or in a WSD sweep a trunk segment or a branch. A step's
Job is created only once every step it waits for has Succeeded (observed, or recorded in the status); a
step that waits for one that Failed fails too, and a TrunkFailed condition names the segment.

Packing (execution.experimentsPerGPU = k > 1): the steps to start are taken in order, sorted by cost and cut
into packs of up to k, one Job each (a Job is one slot of parallelism). A packed Job is read as one observed
Job per member: running while the Job runs; once it completes, each member's exit code from the pod's
termination message (0 succeeded, 3 or 4 failed for good, else failed and retried in a new pack: finished
pack-mates are not retried); a Job that failed (its pod died) fails every member, retryably. A member's row
records its pack while it runs, so a pack whose Job is not seen yet is recreated whole, under the same name.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ff_core import exit_codes
from ff_core.crd import ANNOTATION_PACK, LABEL_ATTEMPT, LABEL_EXPERIMENT, parse_pack
from ff_core.plan import Plan
from ff_core.spec import Execution
from ff_core.status import (ACTIVE_STATES, COMPLETE, FAILED, FAILURE_BUDGET_EXCEEDED, PENDING, PLAN_CHANGED,
                            QUEUED, RETRYING, RUNNING, STOPPED, SUCCEEDED, SUSPENDED, SUSPENDED_CONDITION,
                            TERMINAL_STATES as TERMINAL, TRUNK_FAILED, ExperimentRow, SweepStatus, experiment_rows)
from ff_core.steps import RUN, SEGMENT, Step, one_step_each
from ff_operator.jobs import pack_id

UNSEEN = "Unseen"  # recorded Running at attempt a, no Job of attempt a observed: (re)create attempt a, first


@dataclass(frozen=True)
class ObservedJob:
    name: str
    experiment: str
    attempt: int
    state: str  # "active" | "succeeded" | "failed"
    permanent: bool = False  # failed by the pod failure policy (trainer exit 3 or 4): no retry helps
    owner: str | None = None  # the uid of the ScalingSweep that owns it (its controller ownerReference)
    members: tuple[tuple[str, int], ...] = ()  # a packed Job: (step id, attempt) of each member
    pack: str = ""  # a member of a packed Job (after `members_of`): the pack's id
    queued: bool = False  # active but suspended: waiting for a queue's admission (Kueue), no pod runs
    started: bool = False  # it ran at some point (status.startTime): queued again, it was evicted (preempted)


def members_of(jobs: list[ObservedJob], exits: dict[str, dict[str, int]]) -> list[ObservedJob]:
    """Packed Jobs as one observed Job per member (`exits`: Job name -> each member's exit code, from the pod's
    termination message); other Jobs as they are."""
    out = []
    for job in jobs:
        if not job.members:
            out.append(job)
            continue
        codes = exits.get(job.name)
        for member, attempt in job.members:
            state, permanent = job.state, job.permanent
            if job.state == "succeeded":
                code = (codes or {}).get(member)
                if code is None:  # the pod's message is not seen yet: still running, for now
                    state = "active"
                elif code != exit_codes.DONE:
                    state, permanent = "failed", code in exit_codes.PERMANENT
            out.append(ObservedJob(job.name, member, attempt, state, permanent, job.owner, pack=job.experiment,
                                   queued=job.queued, started=job.started))
    return out


def observe(job: dict[str, Any]) -> ObservedJob:
    """Read what reconcile needs from a batch/v1 Job object: from its spec and status alone, never its pods (a
    MultiKueue manager cluster has none)."""
    labels = job["metadata"].get("labels", {})
    conditions = {c["type"]: c for c in job.get("status", {}).get("conditions", []) if c.get("status") == "True"}
    queued = False
    if "Complete" in conditions:
        state, permanent = "succeeded", False
    elif "Failed" in conditions:
        state, permanent = "failed", conditions["Failed"].get("reason") == "PodFailurePolicy"
    else:
        state, permanent = "active", False
        # Suspended by us (execution.queueName), by Kueue's webhook, or again by Kueue (evicted): not running.
        queued = bool((job.get("spec") or {}).get("suspend")) or "Suspended" in conditions
    references = job["metadata"].get("ownerReferences") or []
    owner = next((ref.get("uid") for ref in references if ref.get("controller")), None)
    members = parse_pack((job["metadata"].get("annotations") or {}).get(ANNOTATION_PACK, ""))
    return ObservedJob(job["metadata"]["name"], labels[LABEL_EXPERIMENT], int(labels[LABEL_ATTEMPT]), state, permanent,
                       owner, members, queued=queued, started=bool(job.get("status", {}).get("startTime")))


@dataclass(frozen=True)
class Actions:
    create: tuple[tuple[Step, int], ...]  # (step, attempt)
    delete: tuple[str, ...]                     # Job names
    status: dict[str, Any]
    events: tuple[tuple[str, str], ...] = field(default=())  # (reason, message) for key transitions
    packs: tuple[tuple[tuple[Step, int], ...], ...] = ()  # packed Jobs to create: their (step, attempt) members


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
        live = next((j for j in mine if j.state == "active"), None)
        active = live.name if live else None
        if row.state in TERMINAL:
            state = row.state
        elif any(j.state == "succeeded" for j in mine):
            state = SUCCEEDED
        elif row.state in ACTIVE_STATES and attempts > (mine[-1].attempt if mine else 0):
            state = UNSEEN  # created, but its Job has not reached the watch yet (or was deleted by hand)
        elif live:
            state = QUEUED if live.queued else RUNNING
        elif mine and mine[-1].state == "failed":
            state = FAILED if mine[-1].permanent or attempts > retries else RETRYING
        else:
            state = PENDING
        if state in (PENDING, RETRYING) and not mine and any(states[a][0] == FAILED for a in e.after):
            state = FAILED  # it waits for a step that failed for good: it cannot run
        states[e.id] = (state, attempts, active)
    return states


def preemptions(recorded: dict[str, ExperimentRow], disrupted: list[tuple[str, str]],
                states: dict, evicted: set[str] = frozenset()) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Per experiment: (preemptions so far, disrupted pod names already counted), for those with any.

    A preempted pod (condition DisruptionTarget) is replaced by the Job controller and costs no retry; it is
    counted once by name. Names are kept while the experiment runs and dropped once it ends: the count stays.
    `evicted`: experiments recorded Running whose Job a queue has suspended again after it started (Kueue's
    preemption, read from the Job alone: on a MultiKueue manager there are no pods): one more each.
    """
    seen: dict[str, set[str]] = defaultdict(set)
    for experiment, pod in disrupted:
        seen[experiment].add(pod)
    out = {}
    for eid, (state, _, _) in states.items():
        old = recorded.get(eid) or ExperimentRow(eid)
        known = set(old.disrupted_pods)
        count = old.preemptions + len(seen[eid] - known) + (eid in evicted)
        if count:
            out[eid] = (count, () if state in TERMINAL else tuple(sorted(known | seen[eid])))
    return out


def _packed(waiting: list[Step], states: dict, recorded: dict[str, ExperimentRow], k: int, slots: int):
    """(single Jobs, packs) to create within `slots` Jobs: each pack not seen yet again as recorded (the same
    members and attempts: the same name), a step recorded without a pack as the single Job it was, then the
    others in order, sorted by cost and cut into packs of up to k (similar costs share a GPU)."""
    singles, again = [], defaultdict(list)
    for e in waiting:
        state, attempts, _ = states[e.id]
        if state == UNSEEN:
            pack = recorded[e.id].pack if e.id in recorded else ""
            (again[pack] if pack else singles).append((e, attempts))
    packs = [tuple(members) for members in again.values()]
    fresh = [e for e in waiting if states[e.id][0] != UNSEEN][: max(slots - len(singles) - len(packs), 0) * k]
    fresh.sort(key=lambda e: (e.flops, e.id))
    packs += [tuple((e, states[e.id][1] + 1) for e in fresh[i : i + k]) for i in range(0, len(fresh), k)]
    return singles[:max(slots, 0)], packs[:max(slots - len(singles), 0)]


def reconcile(plan: Plan, execution: Execution, jobs: list[ObservedJob], previous: dict[str, Any],
              generation: int, now: str, disrupted: list[tuple[str, str]] = (), owner_uid: str | None = None,
              steps: tuple[Step, ...] | None = None, exits: dict[str, dict[str, int]] | None = None) -> Actions:
    """What to create and delete, and the new status; `previous` is the sweep's current status (or {}).

    `disrupted` lists (experiment id, pod name) of our pods with the DisruptionTarget condition. With
    `owner_uid` (the sweep's uid), only Jobs it owns count: a deleted sweep's Jobs, not yet garbage-collected,
    carry the same labels when a sweep of the same name is created again. `steps` is the plan as steps
    (ff_core.steps.plan_steps; default: one per experiment). `exits`: per packed Job's name, each member's exit
    code (the pod's termination message).
    """
    steps = steps if steps is not None else one_step_each(plan)
    if owner_uid is not None:
        jobs = [j for j in jobs if j.owner in (owner_uid, None)]
    jobs = members_of(jobs, exits or {})
    if previous.get("planHash") not in (None, plan.hash):
        return _plan_changed(previous, generation, now)
    recorded = experiment_rows(previous)
    states = _experiment_states(steps, jobs, recorded, execution.retries_per_experiment)
    packs_of = {j.experiment: j.pack for j in jobs if j.pack and j.state == "active"}
    packs_of |= {eid: recorded[eid].pack for eid, (state, _, _) in states.items()
                 if state == UNSEEN and eid in recorded and recorded[eid].pack}
    counts = Counter(state for state, _, _ in states.values())
    budget = execution.max_failed_experiments
    stopped = budget is not None and counts[FAILED] > budget
    create, delete, packs = [], [], []
    if stopped:  # nothing new starts; what StopActive deletes, and what is recorded but gone, is not running
        stop_active = execution.failure_policy == "StopActive"
        delete = list(dict.fromkeys(active for _, _, active in states.values() if active)) if stop_active else []
        states = {eid: (PENDING, attempts, None) if state == UNSEEN or (stop_active and state in ACTIVE_STATES) else
                  (state, attempts, active) for eid, (state, attempts, active) in states.items()}
    elif not stopped and not execution.suspend:
        running_jobs = {active for state, _, active in states.values() if state in ACTIVE_STATES}  # a pack: one Job
        slots = execution.parallelism - len(running_jobs)
        ready = [e for e in steps if all(states[a][0] == SUCCEEDED for a in e.after)]  # never before its trunk
        waiting = [e for kind in (UNSEEN, RETRYING, PENDING) for e in ready if states[e.id][0] == kind]
        if execution.experiments_per_gpu == 1:
            create = [(e, states[e.id][1] + (states[e.id][0] != UNSEEN)) for e in waiting[:max(slots, 0)]]
        else:
            create, packs = _packed(waiting, states, recorded, execution.experiments_per_gpu, slots)
        for e, attempt in create + [member for pack in packs for member in pack]:
            # the status reports the state after these actions: a Job made suspended waits for its queue
            states[e.id] = (QUEUED if execution.queue_name else RUNNING, attempt, None)
        for pack in packs:
            packs_of |= {e.id: pack_id(pack) for e, _ in pack}
    evicted = {j.experiment for j in jobs if j.state == "active" and j.queued and j.started
               and recorded.get(j.experiment, ExperimentRow(j.experiment)).state == RUNNING}
    status = summarize(plan, execution, states, previous, generation, now, stopped,
                       preemptions(recorded, list(disrupted), states, evicted), steps, packs_of)
    return Actions(tuple(create), tuple(delete), status, _events(previous, status, create, packs), tuple(packs))


def _plan_changed(previous: dict[str, Any], generation: int, now: str) -> Actions:
    """The spec now plans other experiments (the CRD's CEL rules forbid it; an API server without them may not):
    keep the recorded status, create and delete nothing, and say how to get out."""
    message = ("the plan-defining fields of spec changed after creation, so the experiment ids no longer match the "
               f"running ones; revert spec to the original (planHash {previous['planHash']}) or create a new sweep")
    conditions = [c for c in previous.get("conditions", []) if c["type"] != PLAN_CHANGED]
    conditions.append(_condition(previous, PLAN_CHANGED, True, "ImmutableFieldChanged", message, now))
    status = previous | {"observedGeneration": generation, "conditions": conditions}
    told = any(c["type"] == PLAN_CHANGED for c in previous.get("conditions", []))
    events = () if told else ((PLAN_CHANGED, message),)
    return Actions((), (), status, events)


def _phase(counts: Counter, total: int, suspended: bool, stopped: bool) -> str:
    if counts[SUCCEEDED] + counts[FAILED] == total:
        return SUCCEEDED if counts[FAILED] == 0 else FAILED
    if stopped:
        return STOPPED
    if suspended and counts[RUNNING] + counts[QUEUED] == 0:
        return SUSPENDED
    if counts[QUEUED] and not counts[RUNNING]:
        return QUEUED  # every Job it has waits for a queue's admission
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
    reason = "SegmentFailed" if failed else "TrunksHealthy"
    return _condition(previous, TRUNK_FAILED, bool(failed), reason, message, now)


def summarize(plan: Plan, execution: Execution, states: dict, previous: dict, generation: int, now: str,
              stopped: bool, preempted: dict[str, tuple[int, tuple[str, ...]]] | None = None,
              steps: tuple[Step, ...] | None = None, packs: dict[str, str] | None = None) -> dict[str, Any]:
    """The status from scratch: phase, counts, conditions, observedGeneration, plan hash, compact rows (a running
    member of a pack names its pack)."""
    steps = steps if steps is not None else one_step_each(plan)
    packs = packs or {}
    counts = Counter(RUNNING if state == UNSEEN else state for state, _, _ in states.values())
    preempted = preempted or {}
    total = len(steps)
    unit = "experiments" if all(s.kind == RUN for s in steps) else "steps"
    phase = _phase(counts, total, execution.suspend, stopped)
    done = counts[SUCCEEDED] + counts[FAILED]
    return SweepStatus(
        phase, generation, plan.hash, total, counts[SUCCEEDED], counts[FAILED], counts[RUNNING],
        counts[PENDING] + counts[RETRYING], sum(count for count, _ in preempted.values()), counts[QUEUED],
        (
            _condition(previous, COMPLETE, done == total, phase, f"{done}/{total} {unit} finished", now),
            _condition(previous, SUSPENDED_CONDITION, execution.suspend, "Suspend" if execution.suspend else "Active",
                       "spec.execution.suspend is true: no Jobs are created" if execution.suspend else "", now),
            _condition(previous, FAILURE_BUDGET_EXCEEDED, stopped,
                       "MaxFailedExperiments" if stopped else "WithinBudget",
                       f"{counts[FAILED]} failed {unit}, budget {execution.max_failed_experiments}", now),
        ) + ((_trunk_failed(steps, states, previous, now),) if unit == "steps" else ()),
        # compact: a short row per experiment (id, one state word, attempts) stays small for 1,000 experiments
        tuple(ExperimentRow(e.id, RUNNING if states[e.id][0] == UNSEEN else states[e.id][0], states[e.id][1],
                            *preempted.get(e.id, (0, ())), "" if e.kind == RUN else e.kind,
                            packs.get(e.id, "") if states[e.id][0] in (RUNNING, QUEUED, UNSEEN) else "")
              for e in steps),
    ).to_json()


def _events(previous: dict, status: dict, create: list, packs: list = ()) -> tuple[tuple[str, str], ...]:
    events = []
    if create or packs:
        made = [f"{e.id} attempt {a}" for e, a in create] + [
            f"pack {pack_id(p)} of {len(p)} ({', '.join(e.id for e, _ in p)})" for p in packs]
        shown = ", ".join(made[:5])
        events.append(("JobsCreated", f"created {len(made)} Job(s): {shown}" + (" ..." if len(made) > 5 else "")))
    if previous.get("phase") != status["phase"]:
        events.append(("Phase" + status["phase"], f"phase {previous.get('phase', 'None')} -> {status['phase']}"))
    return tuple(events)
