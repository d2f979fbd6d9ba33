"""WSD sweeps (issue 12): one constant-LR trunk per size, a cooldown branch per token count. The plan is a DAG of
steps; a branch equals an uninterrupted WSD run to its token count exactly on CPU."""

from __future__ import annotations

import copy

import pytest

from ff_core.errors import SpecError
from ff_core.plan import plan_sweep
from ff_core.spec import Training, parse_sweep
from ff_core.steps import BRANCH, RUN, SEGMENT, Step, plan_steps, steps_flops
from ff_core.store import open_store
from ff_core.schedules import lr_multiplier


@pytest.fixture
def wsd_manifest(tiny_manifest):
    tiny_manifest["spec"]["training"] |= {"schedule": "wsd", "warmupTokens": 1024, "cooldownFraction": 0.2}
    return tiny_manifest


def steps_of(manifest: dict) -> tuple[Step, ...]:
    sweep = parse_sweep(manifest)
    return plan_steps(sweep, plan_sweep(sweep))


def test_the_plan_is_a_dag_of_trunk_segments_and_branches(wsd_manifest):
    steps = steps_of(wsd_manifest)
    plan = plan_sweep(parse_sweep(wsd_manifest))
    assert {s.id for s in steps if s.kind == BRANCH} == {e.id for e in plan.experiments}
    seen = set()
    for step in steps:  # every step comes after the steps it waits for
        assert set(step.after) <= seen, step
        seen.add(step.id)
    for step in steps:
        if step.kind == BRANCH:  # a branch starts from the segment that ends where it cools down
            (segment,) = [s for s in steps if s.id in step.after]
            assert segment.kind == SEGMENT and segment.end == step.start and segment.trunk == step.trunk
            assert step.end - step.start == round(0.2 * step.end)
    assert len({s.trunk for s in steps}) == 3  # one trunk per size
    assert steps_flops(steps) < plan.total_flops  # the shared constant phase is trained once


def test_ids_do_not_depend_on_the_other_points(wsd_manifest):
    """Dropping a budget changes no remaining branch id and no remaining segment id (a segment is its trunk
    up to a step), although the segments now start elsewhere."""
    whole = {(s.kind, s.id) for s in steps_of(wsd_manifest)}
    fewer = copy.deepcopy(wsd_manifest)
    fewer["spec"]["budgets"] = [1.2e9]
    assert {(s.kind, s.id) for s in steps_of(fewer)} <= whole


def test_cosine_sweeps_keep_their_ids_and_run_one_step_per_experiment(tiny_manifest):
    steps = steps_of(tiny_manifest)
    assert all(s.kind == RUN and not s.after for s in steps)
    # the new knobs stay out of the ids of schedules that do not use them: ids recorded before are unchanged
    assert "cooldown_fraction" not in plan_sweep(parse_sweep(tiny_manifest)).experiments[0].identity["training"]


def test_wsd_needs_an_absolute_warmup_below_every_cooldown(wsd_manifest):
    relative = copy.deepcopy(wsd_manifest)
    del relative["spec"]["training"]["warmupTokens"]
    with pytest.raises(SpecError, match="schedule wsd needs warmupTokens"):
        parse_sweep(relative)
    wsd_manifest["spec"]["training"]["warmupTokens"] = 512 * 30
    with pytest.raises(SpecError, match="inside the warmup of 30 steps; lower training.warmupTokens"):
        steps_of(wsd_manifest)


def test_the_wsd_schedule_is_constant_then_cools_down_to_zero():
    cfg = Training(schedule="wsd", warmup_tokens=2 * 8192, cooldown_fraction=0.2, cooldown_shape="linear")
    lrs = [lr_multiplier(step, 100, cfg) for step in range(100)]
    assert lrs[:2] == [0.5, 1.0] and set(lrs[2:80]) == {1.0}
    assert lrs[80] == 1.0 and lrs[90] == pytest.approx(0.5) and 0 < lrs[99] < 0.06
    trunk = [lr_multiplier(step, None, cfg) for step in range(200)]
    assert trunk[:80] == lrs[:80] and set(trunk[2:]) == {1.0}
    sqrt = Training(schedule="wsd", warmup_tokens=0, cooldown_fraction=0.5)
    assert lr_multiplier(75, 100, sqrt) == pytest.approx(1 - 0.5 ** 0.5)


def test_a_branch_equals_an_uninterrupted_wsd_run_exactly(wsd_manifest, tmp_path):
    """Segments then the branch, each as the trainer runs them, against one uninterrupted run on CPU."""
    from ff_trainer.run import _plugins, _train_step, build_checked_model, run_experiment
    from ff_trainer.signals import StopFlag
    from ff_trainer.world import setup_world, teardown_world

    wsd_manifest["spec"]["budgets"] = [6.0e8, 1.2e9]
    wsd_manifest["spec"]["sizes"] = wsd_manifest["spec"]["sizes"][:1]  # xs: 24 and 49 steps
    sweep = parse_sweep(wsd_manifest)
    steps = plan_steps(sweep, plan_sweep(sweep))
    store = open_store(f"file://{tmp_path / 'dag'}")
    for step in steps:
        assert run_experiment(sweep, step.id, store) == 0
    longest = max((s for s in steps if s.kind == BRANCH), key=lambda s: s.end)
    assert longest.start > max(s.start for s in steps if s.kind == SEGMENT)  # it starts from the second segment
    record = store.get_json(f"unit/{longest.id}/result.json")
    assert record["branch_tokens"] == longest.start * 512

    whole = Step(longest.id, RUN, 0, longest.end, experiment=longest.experiment, size=longest.size)
    plugins = _plugins(sweep)
    model, _ = build_checked_model(sweep, longest.experiment, plugins[0])
    world = setup_world()
    try:
        with StopFlag(install=False) as stop:
            outcome, _ = _train_step(sweep, whole, open_store(f"file://{tmp_path / 'whole'}"), world, plugins, model,
                                     stop)
    finally:
        teardown_world()
    assert record["eval_loss"] == outcome.eval_loss and record["final_loss"] == outcome.final_loss
    assert record["loss_curve"] == outcome.curve


@pytest.mark.long
def test_ffctl_runs_the_dag_then_analyzes_and_a_rerun_trains_nothing(wsd_manifest, write_sweep, tmp_path):
    """`ffctl run` trains the segments before the branches that start from them, K at a time; the branches'
    results are ordinary end points for `ffctl analyze`; --clean-checkpoints removes the trunks only at the end."""
    from test_executor import ffctl

    sweep, store = write_sweep(wsd_manifest), tmp_path / "store"  # 2 budgets x 3 sizes: 3 trunks, 6 branches
    parsed = parse_sweep(wsd_manifest)
    steps = plan_steps(parsed, plan_sweep(parsed))
    plan = ffctl("plan", str(sweep))
    assert plan.returncode == 0 and "WSD saving" in plan.stdout and "segments (ends at step)" in plan.stdout
    run = ffctl("run", str(sweep), "--store", f"file://{store}", "--workers", "2", "--clean-checkpoints")
    assert run.returncode == 0, run.stderr
    branches = [s for s in steps if s.kind == BRANCH]
    assert f"{len(branches)} trained, 0 already done, 0 failed" in run.stderr
    logs = {p.stem: p.read_text() for p in (store / "unit" / "logs").glob("*.log")}
    for step in steps:  # each ran once; a branch that starts mid-trunk resumed from the trunk's checkpoint
        assert step.id in logs
        if step.start > 0:
            assert f"resuming at step {step.start}/" in logs[step.id], logs[step.id]
    assert not list((store / "unit").glob("trunks/*/*.pt"))  # cleaned once every branch was done
    again = ffctl("run", str(sweep), "--store", f"file://{store}")
    assert f"0 trained, {len(branches)} already done" in again.stderr  # no trunk retrained for finished branches
    analysis = ffctl("analyze", f"file://{store}/unit", "--out", str(tmp_path / "out"), "--bootstrap", "20")
    assert analysis.returncode == 0, analysis.stderr
    report = (tmp_path / "out" / "report.txt").read_text()
    assert "learning-rate schedule: wsd (each point a cooldown of the last 20% of its steps" in report
    assert "WSD branches' curves are mid-schedule" in report  # Approach 1 does not read trunk curves as end points


def test_ffctl_submit_shows_the_trunks_of_a_wsd_sweep(wsd_manifest, write_sweep):
    from test_executor import ffctl

    submitted = ffctl("submit", str(write_sweep(wsd_manifest)), "--dry-run")
    assert submitted.returncode == 0, submitted.stderr
    assert "segments (ends at step)" in submitted.stdout and "schedule: wsd" in submitted.stdout


@pytest.mark.long
def test_a_wsd_sweep_on_the_emulated_cluster_runs_segments_before_branches_through_a_restart(
        wsd_manifest, s3_endpoint, tmp_path, monkeypatch):
    """The real operator (restarted once mid-sweep), a stand-in kubelet running each Job's trainer command,
    S3 from moto: every segment and branch runs once, in order, and the branches' results analyse."""
    import json

    import boto3
    import kubernetes
    import yaml
    from click.testing import CliRunner

    from ff_client.cli import main
    from ff_core.crd import crd_manifest
    from k8s_cluster import Cluster, kubeconfig
    from kubelet import Kubelet
    from test_e2e import ffctl, settled
    from test_operator import NS, Operator, _server, wait_for, watching

    wsd_manifest["metadata"] = {"name": "wsd"}
    wsd_manifest["spec"]["sizes"] = wsd_manifest["spec"]["sizes"][:2]  # 2 trunks, 4 branches, 4 segments
    wsd_manifest["spec"]["execution"] = {"image": "flops-fit/trainer:local", "gpusPerExperiment": 0, "cpu": "1",
                                         "memory": "1Gi", "parallelism": 2, "retriesPerExperiment": 0,
                                         "s3CredentialsSecret": "s3-creds"}
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="ff-wsd")
    wsd_manifest["spec"]["storage"] = {"uri": "s3://ff-wsd/sweeps", "endpointURL": s3_endpoint}
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(wsd_manifest))
    parsed = parse_sweep(wsd_manifest)
    steps = plan_steps(parsed, plan_sweep(parsed))
    with Cluster() as c:
        _server["url"] = c.url
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=c.url))
        operator = Operator().start()
        wait_for(lambda: watching(c) >= 3, "kopf watching")
        kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(crd_manifest())
        kubernetes.client.CoreV1Api().create_namespaced_secret(NS, {"metadata": {"name": "s3-creds"}, "stringData": {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}})
        monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", c.url))
        try:
            with Kubelet(c, NS, tmp_path / "node") as kubelet:
                assert "created" in ffctl(NS, "submit", str(sweep)).output
                wait_for(lambda: len(kubelet.seen) >= 2, "the first segments' Jobs", timeout=60)
                operator.stop()  # a restart while segments run
                operator = Operator().start()
                state = settled(NS, "wsd")
                assert state["phase"] == "Succeeded", state
                assert state["counts"]["succeeded"] == state["counts"]["total"] == len(steps)
                assert {r["kind"] for r in state["experiments"]} == {"segment", "branch"}
                assert sorted(kubelet.seen) == sorted(f"wsd-{s.id}-a1" for s in steps)  # each once
                late = max((s for s in steps if s.kind == BRANCH), key=lambda s: s.start)
                assert f"resuming at step {late.start}/" in ffctl(NS, "logs", "wsd", late.id).stdout
                out = CliRunner().invoke(main, ["analyze", "wsd", "--endpoint-url", s3_endpoint, "--bootstrap", "0",
                                                "--json", "--namespace", NS])  # 2 sizes: no parabola (exit 1)
                assert json.loads(out.stdout)["points"] == sum(s.kind == BRANCH for s in steps), out.output
        finally:
            operator.stop()


def test_the_schedule_table_is_what_the_spec_offers_and_ignored_fields_change_no_rate():
    """ff_core.schedules: the spec's choices are its names; a field a schedule says it ignores (left out of the
    experiment ids) changes none of its learning rates; only schedules with trunks need warmupTokens."""
    from typing import get_args

    from ff_core.errors import SpecError
    from ff_core.schedules import SCHEDULES
    from ff_core.spec import Training

    assert get_args(Training.model_fields["schedule"].annotation) == tuple(SCHEDULES)
    changed = {"cooldown_fraction": 0.5, "cooldown_shape": "linear", "min_lr_ratio": 0.3}
    for name, schedule in SCHEDULES.items():
        base = Training(schedule=name, warmup_tokens=1024)
        for field in schedule.ignores:
            other = base.model_copy(update={field: changed[field]})
            assert [lr_multiplier(s, 100, base) for s in range(100)] == [lr_multiplier(s, 100, other) for s in range(100)]
        if schedule.trunks:
            with pytest.raises((SpecError, ValueError), match="needs warmupTokens"):
                Training(schedule=name)
        else:
            Training(schedule=name)
