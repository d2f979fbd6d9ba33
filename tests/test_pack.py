"""Packing (issue 15): several experiments sharing one GPU as k trainer processes in one pod.

The pack launcher (`python -m ff_trainer.pack`) with real trainer processes; the packed Job manifest; the
operator's reconcile of packed Jobs (one Job per pack against parallelism, each experiment's own outcome from
the pod's termination message, retries of the failed ones only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings, strategies as st

from ff_core import exit_codes
from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep

TESTS = Path(__file__).resolve().parent


def env_for(tmp_path: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(TESTS), OMP_NUM_THREADS="1",
                FF_TERMINATION_LOG=str(tmp_path / "termination-log"))


def test_a_pack_trains_each_experiment_as_alone_and_one_failing_leaves_the_others(tiny_manifest, write_sweep,
                                                                                   tmp_path):
    """Three experiments in one pack, two of which cannot build their model (exit 3): the third trains to the
    very record it gets alone, and the termination log holds every experiment's exit code."""
    tiny_manifest["spec"]["budgets"] = [6.0e8]
    tiny_manifest["spec"]["model"] = {"plugin": "helper_plugins:GPTNarrowOnly"}  # only d_model 16 builds
    sweep = write_sweep(tiny_manifest)
    ids = {e.size: e.id for e in plan_sweep(parse_sweep(tiny_manifest)).experiments}
    pack = subprocess.run([sys.executable, "-m", "ff_trainer.pack", "--sweep", str(sweep), "--steps",
                           ",".join(ids.values()), "--store", f"file://{tmp_path / 'packed'}"],
                          env=env_for(tmp_path), capture_output=True, text=True, timeout=300)
    assert pack.returncode == exit_codes.DONE, pack.stderr[-2000:]
    codes = json.loads((tmp_path / "termination-log").read_text())["exit"]
    assert codes == {ids["xs"]: 0, ids["s"]: exit_codes.BAD_CONFIG, ids["m"]: exit_codes.BAD_CONFIG}
    alone = subprocess.run([sys.executable, "-m", "ff_trainer", "--sweep", str(sweep), "--experiment", ids["xs"],
                            "--store", f"file://{tmp_path / 'alone'}"], env=env_for(tmp_path), capture_output=True,
                           text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr[-2000:]
    packed, single = (json.loads((tmp_path / where / "unit" / ids["xs"] / "result.json").read_text())
                      for where in ("packed", "alone"))
    assert (packed["eval_loss"], packed["loss_curve"]) == (single["eval_loss"], single["loss_curve"])
    assert not (tmp_path / "packed" / "unit" / ids["s"] / "result.json").exists()


# --- reconcile of packed Jobs (pure) --------------------------------------------------------------------------

NOW = "2026-11-28T12:00:00Z"


def _packs(manifest: dict, k: int = 3, parallelism: int = 1):
    from ff_core.spec import Execution

    sweep = parse_sweep(manifest)
    return plan_sweep(sweep), Execution(experiments_per_gpu=k, parallelism=parallelism, retries_per_experiment=1)


def _observed(sweep_name: str, members, state: str):
    from ff_operator.jobs import job_name, pack_annotation, pack_id
    from ff_core.crd import parse_pack
    from ff_operator.reconcile import ObservedJob

    pid = pack_id(members)
    attempt = max(a for _, a in members)
    return ObservedJob(job_name(sweep_name, pid, attempt), pid, attempt, state,
                       members=parse_pack(pack_annotation(members)))


def test_packs_of_similar_cost_are_one_job_each_against_parallelism(tiny_manifest):
    from ff_operator.jobs import pack_id
    from ff_operator.reconcile import reconcile

    plan, execution = _packs(tiny_manifest, k=3, parallelism=1)
    actions = reconcile(plan, execution, [], {}, 1, NOW)
    assert actions.create == () and len(actions.packs) == 1 and len(actions.packs[0]) == 3
    pack = actions.packs[0]
    assert [e.flops for e, _ in pack] == sorted(e.flops for e, _ in pack) and {a for _, a in pack} == {1}
    rows = {r["id"]: r for r in actions.status["experiments"]}
    assert {rows[e.id]["pk"] for e, _ in pack} == {pack_id(pack)} and actions.status["running"] == 3
    assert "pack " + pack_id(pack) + " of 3" in actions.events[0][1]
    # the pack runs: one Job holds the one slot, nothing more starts
    running = reconcile(plan, execution, [_observed(plan.sweep, pack, "active")], actions.status, 1, NOW)
    assert running.create == () and running.packs == ()


def test_each_member_has_its_own_outcome_and_only_the_failed_are_retried(tiny_manifest):
    from ff_operator.reconcile import reconcile

    plan, execution = _packs(tiny_manifest, k=3, parallelism=1)
    first = reconcile(plan, execution, [], {}, 1, NOW)
    pack = first.packs[0]
    (a, _), (b, _), (c, _) = pack
    done = _observed(plan.sweep, pack, "succeeded")
    waiting = reconcile(plan, execution, [done], first.status, 1, NOW)  # no termination message seen yet
    assert waiting.packs == () and waiting.status["running"] == 3
    exits = {done.name: {a.id: 0, b.id: exit_codes.BAD_CONFIG, c.id: 1}}
    after = reconcile(plan, execution, [done], first.status, 1, NOW, exits=exits)
    rows = {r["id"]: r for r in after.status["experiments"]}
    assert (rows[a.id]["s"], rows[b.id]["s"]) == ("Succeeded", "Failed") and "pk" not in rows[a.id]
    retry = next(p for p in after.packs if any(e.id == c.id for e, _ in p))
    assert (c.id, 2) in [(e.id, attempt) for e, attempt in retry]  # c again, at its second attempt
    assert not any(e.id in (a.id, b.id) for p in after.packs for e, _ in p)  # its pack-mates are not


def test_a_pack_not_seen_yet_is_recreated_whole_under_the_same_name(tiny_manifest):
    from ff_operator.jobs import pack_id
    from ff_operator.reconcile import reconcile

    plan, execution = _packs(tiny_manifest, k=2, parallelism=3)
    first = reconcile(plan, execution, [], {}, 1, NOW)
    assert len(first.packs) == 3
    again = reconcile(plan, execution, [], first.status, 1, NOW)  # created, but no Job in the watch yet
    assert sorted(pack_id(p) for p in again.packs) == sorted(pack_id(p) for p in first.packs)


# --- on the emulated cluster: the real operator, a local kubelet, the pack launcher -----------------------------

def test_a_packed_sweep_on_the_emulated_cluster_retries_only_the_crashed_members(tiny_manifest, s3_endpoint,
                                                                                 tmp_path, monkeypatch):
    """6 experiments, 3 to a GPU, 2 Jobs at a time: two packs; in them both d_model 24 experiments crash once
    (exit 1) while their pack-mates finish. Then new packs (one, or one each, as the packs end) hold just those
    two, at attempt 2, and the sweep succeeds; every result in S3 once."""
    import boto3
    import kubernetes
    import yaml

    from ff_core.crd import ANNOTATION_PACK, crd_manifest, parse_pack
    from ff_core.store import open_store
    from k8s_cluster import Cluster, kubeconfig
    from kubelet import Kubelet
    from test_e2e import ffctl, settled
    from test_operator import NS, Operator, _server, wait_for, watching

    tiny_manifest["metadata"] = {"name": "packs"}
    tiny_manifest["spec"]["model"] = {"plugin": "helper_plugins:CrashTwiceGPT"}
    tiny_manifest["spec"]["execution"] = {"image": "flops-fit/trainer:local", "gpusPerExperiment": 0, "cpu": "1",
                                          "memory": "1Gi", "parallelism": 2, "experimentsPerGPU": 3,
                                          "retriesPerExperiment": 1, "s3CredentialsSecret": "s3-creds"}
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="ff-packs")
    tiny_manifest["spec"]["storage"] = {"uri": "s3://ff-packs/sweeps", "endpointURL": s3_endpoint}
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(tiny_manifest))
    (tmp_path / "crashes").mkdir()
    monkeypatch.setenv("FF_CRASH_DIR", str(tmp_path / "crashes"))
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # the kubelet's trainers import helper_plugins
    ids = {e.id: e.size for e in plan_sweep(parse_sweep(tiny_manifest)).experiments}
    with Cluster() as c:
        _server["url"] = c.url
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=c.url))
        operator = Operator().start()
        try:
            wait_for(lambda: watching(c) >= 3, "kopf watching")
            kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(crd_manifest())
            keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}
            kubernetes.client.CoreV1Api().create_namespaced_secret(NS, {"metadata": {"name": "s3-creds"},
                                                                        "stringData": keys})
            monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", c.url))
            with Kubelet(c, NS, tmp_path / "node") as kubelet:
                assert "created" in ffctl(NS, "submit", str(sweep)).output
                state = settled(NS, "packs")
                assert state["phase"] == "Succeeded", state
                assert state["counts"]["succeeded"] == state["counts"]["total"] == 6
                jobs = kubernetes.client.BatchV1Api().list_namespaced_job(NS).items
                members = {j.metadata.name: dict(parse_pack(j.metadata.annotations[ANNOTATION_PACK])) for j in jobs}
                assert sorted(kubelet.seen) == sorted(members)
                first = [m for name, m in members.items() if name.endswith("-a1")]
                assert len(first) == 2 and sorted(len(m) for m in first) == [3, 3]
                retried = {e: a for name, m in members.items() if name.endswith("-a2") for e, a in m.items()}
                assert sorted(ids[e] for e in retried) == ["s", "s"] and set(retried.values()) == {2}
                log = ffctl(NS, "logs", "packs", next(iter(retried)))
                assert log.exit_code == 0 and "pack:" in log.output
        finally:
            operator.stop()
    results = [k for k in open_store("s3://ff-packs/sweeps", s3_endpoint).list("packs/") if k.endswith("result.json")]
    assert len(results) == 6


@settings(max_examples=120, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["ended", "crashed", "stay"]), st.booleans()),
                      max_size=60),
       parallelism=st.integers(1, 3), k=st.integers(2, 4), retries=st.integers(0, 2))
def test_packs_under_a_lagging_watch_never_overfill_duplicate_or_lose(steps, parallelism, k, retries):
    """Packed Jobs seen through a watch that may miss the newest ones (and their pods' messages): at most
    `parallelism` packs run, no experiment runs in two at once, and every experiment reaches an end."""
    from conftest import TINY
    from ff_core.spec import Execution
    from ff_operator.jobs import job_name, pack_annotation, pack_id
    from ff_core.crd import parse_pack
    from ff_operator.reconcile import ObservedJob, reconcile

    plan = plan_sweep(parse_sweep(TINY))
    execution = Execution(parallelism=parallelism, retries_per_experiment=retries, experiments_per_gpu=k)
    cluster: dict[str, ObservedJob] = {}
    exits: dict[str, dict[str, int]] = {}
    view, seen_exits, status = {}, {}, {}
    for pick, outcome, caught_up in steps + [(0, "ended", True)] * 80:
        if caught_up:
            view, seen_exits = dict(cluster), {n: dict(c) for n, c in exits.items()}
        actions = reconcile(plan, execution, list(view.values()), status, 1, NOW, exits=seen_exits)
        status = actions.status
        assert actions.create == ()  # every experiment was started in a pack
        for members in actions.packs:
            attempt = max(a for _, a in members)
            name = job_name(plan.sweep, pack_id(members), attempt)
            cluster.setdefault(name, ObservedJob(name, pack_id(members), attempt, "active",
                                                 members=parse_pack(pack_annotation(members))))
        active = [j for j in cluster.values() if j.state == "active"]
        assert len(active) <= parallelism
        live = [m for j in active for m, _ in j.members]
        assert len(live) == len(set(live)), "an experiment in two running packs"
        if active and outcome != "stay":
            j = active[pick % len(active)]
            if outcome == "crashed":  # the pod died: the Job failed, every member retryable
                cluster[j.name] = ObservedJob(j.name, j.experiment, j.attempt, "failed", members=j.members)
            else:  # the launcher ran every member to its end: each its own exit code
                cluster[j.name] = ObservedJob(j.name, j.experiment, j.attempt, "succeeded", members=j.members)
                exits[j.name] = {m: (0, 1, 3)[(pick + i) % 3] for i, (m, _) in enumerate(j.members)}
    final = reconcile(plan, execution, list(cluster.values()), status, 1, NOW, exits=exits).status
    assert final["succeeded"] + final["failed"] == 6


def test_a_stopped_pack_checkpoints_every_member_and_the_retry_resumes_them(tiny_manifest, write_sweep, tmp_path):
    """SIGTERM to the pack (preemption, deletion): every trainer gets it, checkpoints and exits 75; the pack
    exits as interrupted (retryable) and the next pack resumes each member from its checkpoint."""
    import signal
    import time

    tiny_manifest["spec"]["budgets"] = [1.0e10]  # ~410 steps for xs: long enough to stop part-way
    tiny_manifest["spec"]["training"]["checkpointEverySteps"] = 20
    sweep = write_sweep(tiny_manifest)
    ids = [e.id for e in plan_sweep(parse_sweep(tiny_manifest)).experiments][:2]
    cmd = [sys.executable, "-m", "ff_trainer.pack", "--sweep", str(sweep), "--steps", ",".join(ids), "--store",
           f"file://{tmp_path / 'store'}"]
    pack = subprocess.Popen(cmd, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoints = [tmp_path / "store" / "unit" / i / "checkpoint" / "latest.pt" for i in ids]
    deadline = time.monotonic() + 120
    while not all(c.exists() for c in checkpoints) and time.monotonic() < deadline and pack.poll() is None:
        time.sleep(0.05)
    pack.send_signal(signal.SIGTERM)
    output, _ = pack.communicate(timeout=120)
    assert pack.returncode == exit_codes.INTERRUPTED, output[-2000:]
    assert json.loads((tmp_path / "termination-log").read_text())["exit"] == {i: exit_codes.INTERRUPTED for i in ids}
    again = subprocess.run(cmd, env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert again.returncode == exit_codes.DONE and again.stderr.count("resuming at step") == 2, again.stderr[-2000:]
    assert json.loads((tmp_path / "termination-log").read_text())["exit"] == {i: 0 for i in ids}
