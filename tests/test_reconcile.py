"""reconcile() transition by transition, and properties over random Job histories (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ff_core.plan import plan_sweep
from ff_core.spec import Execution, parse_sweep
from ff_operator.jobs import job_name
from ff_operator.reconcile import ObservedJob, observe, reconcile

from conftest import TINY

NOW = "2026-11-27T12:00:00Z"


@pytest.fixture
def plan(tiny_manifest):
    return plan_sweep(parse_sweep(tiny_manifest))  # 6 experiments


def ex(**kwargs) -> Execution:
    return Execution(**{"parallelism": 2, "retries_per_experiment": 1} | kwargs)


def job(plan, index: int, attempt: int, state: str, permanent: bool = False) -> ObservedJob:
    e = plan.experiments[index]
    return ObservedJob(job_name(plan.sweep, e.id, attempt), e.id, attempt, state, permanent)


def created(actions) -> list[tuple[int, int]]:
    return [(e.index, attempt) for e, attempt in actions.create]


def test_fresh_sweep_starts_parallelism_jobs(plan):
    actions = reconcile(plan, ex(), [], {}, 1, NOW)
    assert created(actions) == [(0, 1), (1, 1)]
    assert actions.status["phase"] == "Running" and actions.status["running"] == 2 and actions.status["pending"] == 4
    assert actions.status["observedGeneration"] == 1 and len(actions.status["planHash"]) == 16
    assert ("JobsCreated", actions.events[0][1]) == actions.events[0]


def test_the_status_is_a_sweep_status_and_the_crd_columns_read_it(plan):
    """reconcile writes ff_core.status.SweepStatus as JSON: it reads back to the same JSON, and each of the
    CRD's printer columns names one of its keys."""
    from ff_core.crd import crd_manifest
    from ff_core.status import SweepStatus

    status = reconcile(plan, ex(), [job(plan, 0, 1, "succeeded"), job(plan, 1, 1, "active")], {}, 1, NOW).status
    typed = SweepStatus.from_json(status)
    assert typed.to_json() == status and typed.done == 1 and typed.total == 6 and typed.running == 2
    assert typed.experiments[0].state == "Succeeded" and typed.experiments[0].attempts == 1
    columns = crd_manifest()["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = [c["jsonPath"].removeprefix(".status.") for c in columns if c["jsonPath"].startswith(".status.")]
    assert shown and all(key in status for key in shown)
    assert SweepStatus.from_json(None).total is None and SweepStatus.from_json({}).phase is None  # not reconciled


def test_running_jobs_fill_slots_only(plan):
    actions = reconcile(plan, ex(), [job(plan, 0, 1, "active")], {}, 1, NOW)
    assert created(actions) == [(1, 1)] and actions.status["running"] == 2  # the status after the action


def test_success_frees_a_slot_and_is_recorded(plan):
    actions = reconcile(plan, ex(), [job(plan, 0, 1, "succeeded"), job(plan, 1, 1, "active")], {}, 1, NOW)
    assert created(actions) == [(2, 1)] and actions.status["succeeded"] == 1
    assert actions.status["experiments"][0] == {"id": plan.experiments[0].id, "s": "Succeeded", "a": 1}


def test_retryable_failure_gets_a_new_attempt_first(plan):
    actions = reconcile(plan, ex(), [job(plan, 0, 1, "failed"), job(plan, 1, 1, "active")], {}, 1, NOW)
    assert created(actions) == [(0, 2)]


def test_retries_run_out(plan):
    jobs = [job(plan, 0, 1, "failed"), job(plan, 0, 2, "failed")]
    actions = reconcile(plan, ex(), jobs, {}, 1, NOW)
    assert actions.status["failed"] == 1 and (0, 3) not in created(actions)
    assert created(actions) == [(1, 1), (2, 1)]


def test_permanent_failure_is_not_retried(plan):
    actions = reconcile(plan, ex(retries_per_experiment=5), [job(plan, 0, 1, "failed", permanent=True)], {}, 1, NOW)
    assert actions.status["failed"] == 1 and created(actions) == [(1, 1), (2, 1)]


def test_recorded_terminal_state_survives_a_deleted_job(plan):
    first = reconcile(plan, ex(), [job(plan, 0, 1, "succeeded")], {}, 1, NOW)
    after_ttl = reconcile(plan, ex(), [], first.status, 1, NOW)  # the Job is gone; the status remembers
    assert (0, 1) not in created(after_ttl) and after_ttl.status["succeeded"] == 1


def test_attempts_survive_a_deleted_failed_job(plan):
    first = reconcile(plan, ex(retries_per_experiment=3), [job(plan, 0, 2, "failed")], {}, 1, NOW)
    again = reconcile(plan, ex(retries_per_experiment=3), [], first.status, 1, NOW)
    assert (0, 3) in created(again)


def test_suspend_creates_nothing_and_resuming_does(plan):
    suspended = reconcile(plan, ex(suspend=True), [], {}, 2, NOW)
    assert suspended.create == () and suspended.status["phase"] == "Suspended"
    resumed = reconcile(plan, ex(), [], suspended.status, 3, NOW)
    assert created(resumed) == [(0, 1), (1, 1)]


def test_failure_budget_stop_active_and_let_finish(plan):
    jobs = [job(plan, 0, 1, "failed", True), job(plan, 1, 1, "failed", True), job(plan, 2, 1, "active")]
    stop = reconcile(plan, ex(max_failed_experiments=1, failure_policy="StopActive"), jobs, {}, 1, NOW)
    assert stop.create == () and stop.delete == (jobs[2].name,) and stop.status["phase"] == "Stopped"
    let = reconcile(plan, ex(max_failed_experiments=1), jobs, {}, 1, NOW)
    assert let.create == () and let.delete == ()
    exceeded = {c["type"]: c for c in let.status["conditions"]}["FailureBudgetExceeded"]
    assert exceeded["status"] == "True" and exceeded["reason"] == "MaxFailedExperiments"


def test_finished_sweep_phase_and_stable_conditions(plan):
    done = [job(plan, i, 1, "succeeded") for i in range(6)]
    first = reconcile(plan, ex(), done, {}, 1, NOW)
    assert first.status["phase"] == "Succeeded" and first.create == ()
    later = reconcile(plan, ex(), done, first.status, 1, "2026-11-28T00:00:00Z")
    complete = {c["type"]: c for c in later.status["conditions"]}["Complete"]
    assert complete["status"] == "True" and complete["lastTransitionTime"] == NOW  # moves only on change
    assert not [e for e in later.events if e[0].startswith("Phase")]


def test_observe_reads_job_objects():
    base = {"metadata": {"name": "s-e1-a2", "labels": {"flopsfit.dev/experiment": "e1", "flopsfit.dev/attempt": "2"}}}
    assert observe(base).state == "active" and observe(base).attempt == 2
    done = base | {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert observe(done).state == "succeeded"
    failed = base | {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}}
    assert observe(failed).state == "failed" and observe(failed).permanent
    timeout = base | {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}
    assert not observe(timeout).permanent

    suspended = base | {"spec": {"suspend": True}}
    assert observe(suspended).state == "active" and observe(suspended).queued and not observe(base).queued
    by_condition = base | {"status": {"conditions": [{"type": "Suspended", "status": "True"}]}}
    assert observe(by_condition).queued  # the Job controller's JobSuspended condition
    done_while_suspended = done | {"spec": {"suspend": True}}
    assert observe(done_while_suspended).state == "succeeded" and not observe(done_while_suspended).queued


def test_queued_jobs_hold_their_slots_and_the_sweep_says_queued(plan):
    """A Job that a queue has not admitted holds a slot of parallelism and is counted queued, not running."""
    queued = [ObservedJob(j.name, j.experiment, 1, "active", queued=True) for j in (job(plan, 0, 1, "active"),
                                                                                  job(plan, 1, 1, "active"))]
    actions = reconcile(plan, ex(), queued, {}, 1, NOW)
    assert created(actions) == [] and actions.status["phase"] == "Queued"
    assert (actions.status["queued"], actions.status["running"], actions.status["pending"]) == (2, 0, 4)
    admitted = [queued[0], job(plan, 1, 1, "active")]
    actions = reconcile(plan, ex(), admitted, actions.status, 1, NOW)
    assert actions.status["phase"] == "Running" and (actions.status["queued"], actions.status["running"]) == (1, 1)
    # created with a queueName: suspended by us until Kueue admits them, so Queued from the start
    fresh = reconcile(plan, ex(queue_name="gpu"), [], {}, 1, NOW)
    assert created(fresh) == [(0, 1), (1, 1)] and fresh.status["queued"] == 2 and fresh.status["phase"] == "Queued"
    evicted = [ObservedJob(admitted[1].name, admitted[1].experiment, 1, "active", queued=True, started=True),
               queued[0]]
    after = reconcile(plan, ex(), evicted, actions.status, 1, NOW)  # Kueue took the running one back
    assert after.status["preempted"] == 1 and after.status["queued"] == 2 and created(after) == []
    assert reconcile(plan, ex(), evicted, after.status, 1, NOW).status["preempted"] == 1  # counted once
    unseen = reconcile(plan, ex(queue_name="gpu"), [], fresh.status, 1, NOW)  # the watch has not shown them yet
    assert created(unseen) == [(0, 1), (1, 1)]  # the same names: creating them again is success

# --- properties: a simulated cluster applies reconcile's actions, then random Jobs finish ---

outcomes = st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["succeeded", "failed", "permanent", "stay"])),
                    max_size=80)


@settings(max_examples=150, deadline=None)
@given(outcomes=outcomes, parallelism=st.integers(1, 4), retries=st.integers(0, 2))
def test_random_histories_respect_parallelism_and_lose_nothing(outcomes, parallelism, retries):
    """reconcile keeps no memory of its own: each call sees only the Jobs and the last status, as after a restart."""
    plan = plan_sweep(parse_sweep(TINY))
    execution = Execution(parallelism=parallelism, retries_per_experiment=retries)
    jobs: dict[str, ObservedJob] = {}
    status: dict = {}
    created_names: list[str] = []
    for pick, outcome in outcomes + [(0, "succeeded")] * 60:
        actions = reconcile(plan, execution, list(jobs.values()), status, 1, NOW)
        status = actions.status
        for e, attempt in actions.create:
            name = job_name(plan.sweep, e.id, attempt)
            assert name not in jobs, "never a duplicate Job"
            jobs[name] = ObservedJob(name, e.id, attempt, "active")
            created_names.append(name)
        assert sum(j.state == "active" for j in jobs.values()) <= parallelism
        active = [j for j in jobs.values() if j.state == "active"]
        if active and outcome != "stay":
            j = active[pick % len(active)]
            jobs[j.name] = ObservedJob(j.name, j.experiment, j.attempt, "failed" if outcome != "succeeded" else "succeeded",
                                       outcome == "permanent")
    final = reconcile(plan, execution, list(jobs.values()), status, 1, NOW).status
    assert len(created_names) == len(set(created_names))
    assert final["succeeded"] + final["failed"] == final["total"] == 6  # every experiment reached an end
    assert {row["id"] for row in final["experiments"]} == {e.id for e in plan.experiments}


def test_recorded_running_but_unseen_is_recreated_at_the_same_attempt(plan):
    """The watch lags the create: the status says Running a1, the index has no Job yet -> same name again (409)."""
    first = reconcile(plan, ex(), [], {}, 1, NOW)
    again = reconcile(plan, ex(), [], first.status, 1, NOW)
    assert created(again) == [(0, 1), (1, 1)]  # the same Job names: "already exists" is success
    assert again.status["running"] == 2


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["succeeded", "failed", "permanent", "stay"]),
                                st.booleans()), max_size=80),
       parallelism=st.integers(1, 4), retries=st.integers(0, 2))
def test_a_lagging_watch_never_overfills_or_duplicates(steps, parallelism, retries):
    """The operator sees Jobs through a watch that may miss the newest ones; the cluster must still hold at most
    `parallelism` active Jobs and never two live attempts of one experiment."""
    plan = plan_sweep(parse_sweep(TINY))
    execution = Execution(parallelism=parallelism, retries_per_experiment=retries)
    cluster: dict[str, ObservedJob] = {}
    view: dict[str, ObservedJob] = {}  # the watch delivers events in order: the view is the cluster some time ago
    status: dict = {}
    for pick, outcome, caught_up in steps + [(0, "succeeded", True)] * 60:
        if caught_up:
            view = dict(cluster)
        actions = reconcile(plan, execution, list(view.values()), status, 1, NOW)
        status = actions.status
        for e, attempt in actions.create:
            cluster.setdefault(job_name(plan.sweep, e.id, attempt), ObservedJob(
                job_name(plan.sweep, e.id, attempt), e.id, attempt, "active"))  # exists -> 409, kept as is
        active = [j for j in cluster.values() if j.state == "active"]
        assert len(active) <= parallelism
        assert len({j.experiment for j in active}) == len(active), "two live attempts of one experiment"
        if active and outcome != "stay":
            j = active[pick % len(active)]
            cluster[j.name] = ObservedJob(j.name, j.experiment, j.attempt,
                                          "failed" if outcome != "succeeded" else "succeeded", outcome == "permanent")
    final = reconcile(plan, execution, list(cluster.values()), status, 1, NOW).status
    assert final["succeeded"] + final["failed"] == 6


def test_preemptions_are_counted_once_and_cost_no_retry(plan):
    running = [job(plan, 0, 1, "active"), job(plan, 1, 1, "active")]
    e0 = plan.experiments[0].id
    first = reconcile(plan, ex(retries_per_experiment=0), running, {}, 1, NOW, disrupted=[(e0, "pod-x")])
    row = first.status["experiments"][0]
    assert row["p"] == 1 and row["dp"] == ["pod-x"] and first.status["preempted"] == 1 and first.create == ()
    # the same pod seen again is not a new preemption; after it is gone, the count stays
    again = reconcile(plan, ex(retries_per_experiment=0), running, first.status, 1, NOW, disrupted=[(e0, "pod-x")])
    later = reconcile(plan, ex(retries_per_experiment=0), running, again.status, 1, NOW, disrupted=[(e0, "pod-y")])
    assert later.status["experiments"][0]["p"] == 2 and later.status["failed"] == 0
    done = [job(plan, 0, 1, "succeeded"), running[1]]
    final = reconcile(plan, ex(retries_per_experiment=0), done, later.status, 1, NOW)
    assert final.status["experiments"][0] == {"id": e0, "s": "Succeeded", "a": 1, "p": 2}  # names dropped


def test_a_changed_plan_creates_and_deletes_nothing_and_says_why(plan, tiny_manifest):
    running = reconcile(plan, ex(), [job(plan, 0, 1, "active")], {}, 1, NOW)
    tiny_manifest["spec"]["budgets"] = [6e8, 2.4e9]  # slipped past an API server without the CEL rules
    other = plan_sweep(parse_sweep(tiny_manifest))
    changed = reconcile(other, ex(), [job(plan, 0, 1, "active")], running.status, 2, NOW)
    assert changed.create == () and changed.delete == ()
    condition = {c["type"]: c for c in changed.status["conditions"]}["PlanChanged"]
    assert condition["status"] == "True" and "create a new sweep" in condition["message"]
    assert changed.status["experiments"] == running.status["experiments"] and changed.events[0][0] == "PlanChanged"
    again = reconcile(other, ex(), [], changed.status, 2, NOW)
    assert again.events == () and again.create == ()


# --- WSD sweeps: steps wait for their trunk segments ---

def _wsd():
    import copy

    from ff_core.steps import plan_steps

    manifest = copy.deepcopy(TINY)
    manifest["spec"]["training"] |= {"schedule": "wsd", "warmupTokens": 1024}
    sweep = parse_sweep(manifest)
    plan = plan_sweep(sweep)
    return plan, plan_steps(sweep, plan)


def step_job(plan, step, attempt: int, state: str, permanent: bool = False) -> ObservedJob:
    return ObservedJob(job_name(plan.sweep, step.id, attempt), step.id, attempt, state, permanent)


def test_a_branch_waits_for_its_segment_and_a_failed_segment_fails_its_steps_visibly():
    plan, steps = _wsd()
    first = reconcile(plan, ex(parallelism=20), [], {}, 1, NOW, steps=steps)
    assert {s.id for s, _ in first.create} == {s.id for s in steps if not s.after}  # the trunks' first segments
    assert all(s.kind == "segment" for s, _ in first.create)
    assert {r["k"] for r in first.status["experiments"]} == {"segment", "branch"}
    segment = first.create[0][0]
    waiting = [s for s in steps if segment.id in s.after]
    done = reconcile(plan, ex(parallelism=20), [step_job(plan, segment, 1, "succeeded")], first.status, 1, NOW,
                     steps=steps)
    assert {s.id for s in waiting} <= {s.id for s, _ in done.create}  # now, and not before
    broken = reconcile(plan, ex(parallelism=20), [step_job(plan, segment, 1, "failed", permanent=True)],
                       first.status, 1, NOW, steps=steps)
    rows = {r["id"]: r["s"] for r in broken.status["experiments"]}
    assert all(rows[s.id] == "Failed" for s in waiting) and not any(s.id in {w.id for w in waiting}
                                                                      for s, _ in broken.create)
    condition = next(c for c in broken.status["conditions"] if c["type"] == "TrunkFailed")
    assert condition["status"] == "True" and segment.id in condition["message"] and segment.trunk in condition["message"]


@settings(max_examples=100, deadline=None)
@given(history=st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["succeeded", "failed", "permanent", "stay"]),
                                  st.booleans()), max_size=80),
       parallelism=st.integers(1, 4), retries=st.integers(0, 2))
def test_wsd_steps_never_start_before_their_segment_nor_twice_under_a_lagging_watch(history, parallelism, retries):
    """As the property above, with a WSD plan: a step's Job is created only when every step it waits for has a
    succeeded Job in the cluster (whatever the watch shows), once; in the end every step is terminal."""
    plan, steps = _wsd()
    after = {s.id: s.after for s in steps}
    execution = Execution(parallelism=parallelism, retries_per_experiment=retries)
    cluster: dict[str, ObservedJob] = {}
    view: dict[str, ObservedJob] = {}
    status: dict = {}
    for pick, outcome, caught_up in history + [(0, "succeeded", True)] * 80:
        if caught_up:
            view = dict(cluster)
        actions = reconcile(plan, execution, list(view.values()), status, 1, NOW, steps=steps)
        status = actions.status
        for step, attempt in actions.create:
            name = job_name(plan.sweep, step.id, attempt)
            if name in cluster:
                continue  # exists: 409, kept as is
            assert all(any(j.experiment == a and j.state == "succeeded" for j in cluster.values())
                       for a in after[step.id]), f"{step.id} created before the steps it waits for succeeded"
            cluster[name] = ObservedJob(name, step.id, attempt, "active")
        active = [j for j in cluster.values() if j.state == "active"]
        assert len(active) <= parallelism
        assert len({j.experiment for j in active}) == len(active)
        if active and outcome != "stay":
            j = active[pick % len(active)]
            cluster[j.name] = ObservedJob(j.name, j.experiment, j.attempt,
                                          "failed" if outcome != "succeeded" else "succeeded", outcome == "permanent")
    final = reconcile(plan, execution, list(cluster.values()), status, 1, NOW, steps=steps).status
    assert final["succeeded"] + final["failed"] == final["total"] == len(steps)
