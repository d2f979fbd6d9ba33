"""ffctl's cluster commands through CliRunner, against the emulated API server with the real operator running."""

from __future__ import annotations

import copy
import json

import kmock
import kubernetes
import pytest
import yaml
from click.testing import CliRunner

from conftest import TINY
from ff_client.cli import main
from ff_client.cluster.connection import ClusterError, Connection, explain, results_uri
from ff_core.crd import crd_manifest
from ff_core.plan import plan_sweep
from ff_core.layout import result_key
from ff_core.results import ResultRecord
from ff_core.spec import parse_sweep
from ff_core.store import open_store
from k8s_cluster import kubeconfig
from test_operator import GROUP, NS, PLURAL, VERSION, cluster, finish, jobs, wait_for  # noqa: F401  (fixture)


@pytest.fixture
def ffctl(cluster, tmp_path):  # noqa: F811
    c, operator = cluster
    kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(crd_manifest())  # the chart's job
    env = {"KUBECONFIG": kubeconfig(tmp_path / "kubeconfig", c.url), "NO_COLOR": "1"}

    def run(*args: str, code: int = 0):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result
    run.cluster, run.tmp, run.operator = c, tmp_path, operator
    return run


def write_sweep(tmp_path, store: str, **execution) -> str:
    body = copy.deepcopy(TINY) | {"metadata": {"name": "unit"}}
    body["spec"]["storage"] = {"uri": store}
    body["spec"]["execution"] = {"parallelism": 2} | execution
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def synthetic_results(store_uri: str) -> None:
    """Result records as the trainer writes them, losses from a known law, for `ffctl analyze NAME`."""
    sweep = parse_sweep(copy.deepcopy(TINY))
    store = open_store(store_uri)
    for e in plan_sweep(sweep).experiments:
        loss = 1.7 + 400 / e.n_params**0.34 + 410 / e.tokens**0.28
        record = ResultRecord(sweep="unit", experiment=e.id, budget=e.budget, size=e.size, knobs=e.knobs,
                              n_params=e.n_params, n_params_non_embedding=e.n_params, tokens=e.tokens,
                              flops={"6nd": e.flops}, status="completed", final_loss=loss, eval_loss=loss,
                              loss_curve=[{"step": e.steps, "tokens": e.tokens, "loss": loss}], tokens_per_second=1.0,
                              wall_seconds=1.0, world_size=1, device="cpu", seed=0, versions={})
        store.put_json(result_key("unit", e.id), record.model_dump(mode="json"))


def test_submit_status_logs_analyze_delete(ffctl):
    store = f"file://{ffctl.tmp / 'store'}"
    sweep_file = write_sweep(ffctl.tmp, store)
    dry = ffctl("submit", sweep_file, "--dry-run")
    assert "GPU-hours" in dry.output and "kind: ScalingSweep" in dry.output
    assert kubernetes.client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"] == []

    submitted = ffctl("submit", sweep_file)
    assert "sweep unit created in namespace default" in submitted.output and "ffctl status unit --watch" in submitted.output
    first = wait_for(lambda: len(jobs()) == 2 and jobs(), "the operator's first Jobs")
    wait_for(lambda: "Running" in ffctl("status").output, "the listing shows Running")
    listing = ffctl("status").output
    assert "unit" in listing and "0/6" in listing

    detail = json.loads(ffctl("status", "unit", "--json").output)
    assert detail["counts"]["total"] == 6 and len(detail["experiments"]) == 6
    assert sorted(r["state"] for r in detail["experiments"]).count("Running") == 2
    assert "EXPERIMENT" in ffctl("status", "unit").output

    experiment = first[0].metadata.labels["flopsfit.dev/experiment"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "trainer-pod", "namespace": NS,
                                                           "labels": dict(first[0].spec.template.metadata.labels)},
           "spec": {"containers": [{"name": "trainer", "image": "x"}]}}
    kubernetes.client.CoreV1Api().create_namespaced_pod(NS, pod)
    ffctl.cluster.logs[NS, "trainer-pod"] = "step 10 loss 4.2\n"
    logs = ffctl("logs", "unit", experiment)
    assert "step 10 loss 4.2" in logs.output and "pod trainer-pod" in logs.output
    assert "no pod of experiment" in ffctl("logs", "unit", "e000000000000", code=1).output

    synthetic_results(store)
    analysis = ffctl("analyze", "unit", "--bootstrap", "0", "--json")
    report = json.loads(analysis.output[analysis.output.index("{"):])
    assert report["points"] == 6 and report["sweep"] == "unit"

    deleted = ffctl("delete", "unit")
    assert f"results stay in {store}/unit" in deleted.output
    wait_for(lambda: jobs() == [], "the sweep's Jobs go with it")
    assert "no sweep 'unit' in namespace 'default'" in ffctl("status", "unit", code=1).output


def test_status_watch_ends_when_the_sweep_does(ffctl):
    ffctl("submit", write_sweep(ffctl.tmp, f"file://{ffctl.tmp}/store", parallelism=6))
    wait_for(lambda: len(jobs()) == 6, "six Jobs")
    for job in jobs():
        finish(job, "Complete")
    watched = ffctl("status", "unit", "--watch", "--interval", "0.2")
    assert "Succeeded" in watched.output and "ffctl analyze unit" in watched.output


def test_invalid_sweeps_are_refused_before_anything_is_applied(ffctl):
    bad = write_sweep(ffctl.tmp, f"file://{ffctl.tmp}/store")
    text = open(bad).read().replace("parallelism: 2", "parallelism: 0")
    open(bad, "w").write(text)
    result = ffctl("submit", bad, code=1)
    assert "parallelism" in result.output and "greater than or equal to 1" in result.output
    assert kubernetes.client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"] == []


def test_cluster_errors_say_what_to_do(ffctl, tmp_path):
    env_runner = CliRunner()
    missing = env_runner.invoke(main, ["status"], env={"KUBECONFIG": str(tmp_path / "nope")})
    assert missing.exit_code == 1 and "no cluster configured" in missing.output and "KUBECONFIG" in missing.output
    down = env_runner.invoke(main, ["status"], env={"KUBECONFIG": kubeconfig(tmp_path / "down", "http://127.0.0.1:9")})
    assert down.exit_code == 1 and "cannot reach the API server at http://127.0.0.1:9" in down.output
    ffctl.operator.stop()  # it would watch a resource about to vanish
    del ffctl.cluster.emulator.resources["flopsfit.dev/v1alpha1/scalingsweeps"]
    assert "CRD is not installed" in ffctl("status", code=1).output and "helm install" in ffctl("status", code=1).output
    conn = Connection(None, "research", "https://k8s")
    denied = explain(kubernetes.client.ApiException(status=403, reason="Forbidden"), conn, "listing sweeps")
    assert isinstance(denied, ClusterError) and "permission denied while listing sweeps in namespace 'research'" in str(denied)


def test_missing_permissions_name_the_namespace_and_the_role(ffctl):
    ffctl.cluster.emulator[kmock.namespace("locked")] << 403  # the API server's RBAC says no in this namespace
    result = ffctl("status", "--namespace", "locked", code=1)
    assert "permission denied while listing sweeps in namespace 'locked'" in result.output
    assert "flops-fit-user ClusterRole" in result.output


def test_every_example_is_valid_against_the_crd_schema():
    from pathlib import Path

    from ff_client.cluster.validate import validate
    from ff_core.spec import load_sweep

    for path in sorted(Path(__file__).resolve().parents[1].glob("examples/*.yaml")):
        validate(load_sweep(str(path)).to_manifest(), None)


def test_a_field_the_clusters_older_crd_would_prune_is_refused(cluster, tmp_path):  # noqa: F811
    c, _ = cluster
    old = crd_manifest()
    del old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["execution"][
        "properties"]["nodesPerExperiment"]  # as installed by an older chart
    kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(old)
    env = {"KUBECONFIG": kubeconfig(tmp_path / "kubeconfig", c.url)}
    result = CliRunner().invoke(main, ["submit", write_sweep(tmp_path, f"file://{tmp_path}/store", nodesPerExperiment=2)], env=env)
    assert result.exit_code == 1 and "does not know spec.execution.nodesPerExperiment" in result.output
    assert "upgrade the chart" in result.output
    assert kubernetes.client.CustomObjectsApi().list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"] == []
    fine = CliRunner().invoke(main, ["submit", write_sweep(tmp_path, f"file://{tmp_path}/store")], env=env)
    assert fine.exit_code == 0, fine.output  # a field left at its default is not sent, so nothing is lost


def test_context_picks_the_kubeconfig_context_and_its_namespace(ffctl, tmp_path):
    config = yaml.safe_load(open(kubeconfig(tmp_path / "two", ffctl.cluster.url)))
    config["contexts"].append({"name": "research", "context": {"cluster": "emu", "user": "me", "namespace": "research"}})
    (tmp_path / "two").write_text(yaml.safe_dump(config))
    body = copy.deepcopy(TINY) | {"metadata": {"name": "theirs", "namespace": "research"}}
    kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, "research", PLURAL, body)
    runner = CliRunner()
    mine = runner.invoke(main, ["status"], env={"KUBECONFIG": str(tmp_path / "two")})
    theirs = runner.invoke(main, ["status", "--context", "research"], env={"KUBECONFIG": str(tmp_path / "two")})
    assert mine.exit_code == theirs.exit_code == 0 and "theirs" not in mine.output and "theirs" in theirs.output
    via_env = runner.invoke(main, ["status"], env={"KUBECONFIG": str(tmp_path / "two"), "FF_NAMESPACE": "research"})
    assert "theirs" in via_env.output
    unknown = runner.invoke(main, ["status", "--context", "nope"], env={"KUBECONFIG": str(tmp_path / "two")})
    assert unknown.exit_code == 1 and "cannot use kubeconfig context 'nope'" in unknown.output
    assert "kubectl config get-contexts" in unknown.output


def test_the_results_of_a_sweep_resource_are_in_its_storage_folder_else_under_its_name():
    storage = {"uri": "s3://b/sweeps/", "folder": "base"}
    assert results_uri({"spec": {"storage": storage}}, "base-grown") == "s3://b/sweeps/base"
    assert results_uri({"spec": {"storage": {"uri": "s3://b/sweeps"}}}, "unit") == "s3://b/sweeps/unit"
    assert results_uri({"spec": {}}, "unit") is None


def test_submit_and_status_are_functions(ffctl, monkeypatch):
    """ff_client.api.submit and status in-process (the SDK under the commands): typed results, as printed."""
    from ff_client import api

    monkeypatch.setenv("KUBECONFIG", kubeconfig(ffctl.tmp / "kubeconfig", ffctl.cluster.url))
    sweep_file = write_sweep(ffctl.tmp, f"file://{ffctl.tmp / 'store'}")
    dry = api.submit(sweep_file, dry_run=True)
    assert dry.verb is None and yaml.safe_load(dry.text())["kind"] == "ScalingSweep"
    done = api.submit(sweep_file)
    assert done.verb == "created" and done.namespace == NS and done.text().startswith("sweep unit created")
    assert done.to_json()["plan"]["experiments"] == dry.view.to_json()["experiments"]
    wait_for(lambda: api.status("unit").to_json()["counts"]["running"] == 2, "two running in api.status")
    listing = api.status()
    assert [s["name"] for s in listing.to_json()] == ["unit"] and "unit" in listing.text()
    assert not listing.finished and api.status("unit").text().startswith("sweep unit (default): Running")
