"""`ffctl suggest` and growing a sweep (issue 16): which runs to add, and a grown sweep that trains only them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ff_client.fit import suggest as core
from ff_client.fit.approaches.parametric import fit_parametric
from test_executor import ffctl
from test_operator import cluster  # noqa: F401  (fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.long
def test_the_chosen_addition_narrows_the_interval_on_a_synthetic_truth():
    """From a 2-budget start (the truth known), the suggested runs, trained from the truth, narrow N_opt's interval
    at 100x the largest budget, cost no more than doubling the largest budget, do no worse than it, and the
    interval still covers the truth (the short version of benchmarks/suggest_value.py)."""
    from suggest_value import one_seed

    result = one_seed(3, resamples=100, strategies=("suggested", "doubling"))
    assert result["suggested"][2] <= result["doubling"][2] * 1.0001  # no more FLOPs than the heuristic
    assert result["suggested"][0] < result["start"][0] and result["suggested"][0] <= result["doubling"][0] * 1.05, result
    assert result["suggested"][1], result  # covers the true N_opt


def test_candidates_sit_near_the_fitted_optimum_and_cost_what_they_train():
    from suggest_value import FAMILY, start

    points = start(np.random.default_rng(0))
    surface = fit_parametric(points)
    place = core.near_optimum(points, surface, FAMILY)
    found = {c.name.split(" (")[0]: c for c in core.candidates(points, place)}
    double = found["budget 6e+18"]
    assert len(double.points) == 5 and double.budgets == (6e18,)
    n_opt = surface.predict(6e18)["n_opt"]
    assert min(n for _, n, _ in double.points) < n_opt < max(n for _, n, _ in double.points)
    assert double.flops == sum(6 * n * d for _, n, d in double.points) and abs(double.flops / 3e19 - 1) < 1e-9
    assert "pointsPerBudget 5 -> 7" in found and len(found["pointsPerBudget 5 -> 7"].points) == 4


def test_a_sufficient_sweep_is_said_to_be_so(small_demo):
    done = ffctl("suggest", small_demo["results"], "--target-flops", "1e11", "--approach", "parametric",
                 "--bootstrap", "50", "--target-width", "1000")
    assert done.returncode == 0, done.stderr
    assert "already sufficient" in done.stderr and "candidate" not in done.stdout
    as_json = ffctl("suggest", small_demo["results"], "--target-flops", "1e11", "--approach", "parametric",
                    "--bootstrap", "50", "--target-width", "1000", "--json")
    found = json.loads(as_json.stdout)
    assert found["sufficient"] and found["suggested"] == [] and found["now"]["n_ratio"] <= 1000
    assert found["approach"] == "parametric" and found["target_flops"] == 1e11


def test_suggest_is_a_function_with_a_typed_result():
    """The SDK under `ffctl suggest`: the same scoring, in-process, its result as rows and JSON."""
    from suggest_value import CHINCHILLA, FAMILY, START, TARGET, optimum, start, trained

    from ff_client.fit.approach import Settings
    from ff_client.fit.approaches import APPROACHES
    from ff_core.errors import FlopsFitError

    settings = Settings(resamples=20, seed=3, workers=1)
    isoflop = next(a for a in APPROACHES if a.name == "isoflop")
    with pytest.raises(FlopsFitError, match="gives no interval of N_opt"):  # 2 budgets: no N_opt(C) law to narrow
        core.suggest(start(np.random.default_rng(3)), TARGET, isoflop, settings)
    budgets = START + (2 * START[-1],)
    runs = [(c, n, c / (6 * n)) for c in budgets for n in core.sizes_near(FAMILY, optimum(CHINCHILLA, c)[0], 5)]
    found = core.suggest(trained(runs, np.random.default_rng(3)), TARGET, isoflop, settings, spend=3e19)
    assert found.scored and found.chosen and not found.sufficient and found.approach == "isoflop"
    gains = [s.gain(found.before) for s in found.scored]
    assert gains == sorted(gains, reverse=True)  # best narrowing per FLOP first
    as_json = found.to_json(989.4e12, 0.35)
    assert as_json["suggested"] == [s.candidate.name for s in found.chosen]
    assert as_json["suggested_flops"] <= 3e19 and len(found.rows(989.4e12, 0.35)) == len(found.scored) + 1
    json.dumps(as_json)  # plain JSON


def test_suggest_writes_a_grown_sweep_that_trains_only_the_new_points(small_demo, tmp_path):
    """The grown sweep names the old sweep's folder: `ffctl run` trains only the new points, and `ffctl analyze`
    of the folder fits old and new together. (On a copy of the shared demo store.)"""
    import shutil

    shutil.copytree(small_demo["folder"] / "results", tmp_path / "results")
    store, results = f"file://{tmp_path / 'results'}", f"file://{tmp_path / 'results' / 'tiny'}"
    grown_file = tmp_path / "grown.yaml"
    trained_from = tmp_path / "tiny.yaml"
    shutil.copy(small_demo["sweep"], trained_from)
    kept = ffctl("suggest", results, "--target-flops", "1e12", "--write", str(trained_from))
    assert kept.returncode == 2 and "that file is sweep 'tiny', which the store was trained from" in kept.stderr
    assert trained_from.read_text() == small_demo["sweep"].read_text()  # not overwritten
    out = ffctl("suggest", results, "--target-flops", "1e12", "--approach", "parametric", "--bootstrap", "50",
                "--budget", "2e10", "--write", str(grown_file))  # room for the cheapest addition only
    assert out.returncode == 0, out.stderr
    assert "narrowing/EFLOP" in out.stdout and "suggested: " in out.stderr
    grown = yaml.safe_load(grown_file.read_text())
    assert grown["metadata"]["name"] == "tiny-grown" and grown["spec"]["storage"]["folder"] == "tiny"
    assert len(grown["spec"]["budgets"]) > 2 or grown["spec"]["pointsPerBudget"] == 7
    before = len(list((tmp_path / "results").glob("tiny/*/result.json")))
    run = ffctl("run", str(grown_file), "--store", store, "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert f"{before} already done, 0 failed" in run.stderr  # nothing trained twice
    after = len(list((tmp_path / "results").glob("tiny/*/result.json")))
    assert after > before
    analysis = ffctl("analyze", results, "--bootstrap", "0", "--json")
    assert json.loads(analysis.stdout)["points"] == after  # one folder, one recipe: one fit of old and new


@pytest.mark.long
def test_a_grown_sweep_on_the_emulated_cluster_trains_no_finished_experiment_again(
        cluster, tiny_manifest, s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    """On a cluster the plan of a ScalingSweep is immutable, so a grown sweep is a new one over the same store
    folder: its Jobs for the finished points find their results and exit at once; only the new points train."""
    import time

    import boto3
    import kubernetes

    from ff_core.crd import crd_manifest
    from ff_core.store import open_store
    from k8s_cluster import kubeconfig
    from kubelet import Kubelet
    from test_e2e import ffctl as kubectl_ffctl
    from test_operator import NS

    c, _ = cluster
    kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(crd_manifest())
    kubernetes.client.CoreV1Api().create_namespaced_secret(NS, {"metadata": {"name": "s3-creds"}, "stringData": {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}})
    monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", c.url))
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="ff-grow")
    tiny_manifest["metadata"] = {"name": "base"}
    tiny_manifest["spec"]["budgets"] = [6.0e8]  # 3 experiments, then 3 more
    tiny_manifest["spec"]["execution"] = {"image": "flops-fit/trainer:local", "gpusPerExperiment": 0, "cpu": "1",
                                          "memory": "1Gi", "parallelism": 3, "s3CredentialsSecret": "s3-creds"}
    tiny_manifest["spec"]["storage"] = {"uri": "s3://ff-grow/sweeps", "endpointURL": s3_endpoint}
    grown = json.loads(json.dumps(tiny_manifest))
    grown["metadata"] = {"name": "base-grown"}
    grown["spec"]["budgets"] = tiny_manifest["spec"]["budgets"] + [1.2e9]
    grown["spec"]["storage"]["folder"] = "base"

    def finish(manifest: dict) -> dict:
        path = tmp_path / f"{manifest['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        kubectl_ffctl(NS, "submit", str(path))
        deadline, state = time.monotonic() + 300, {}
        while time.monotonic() < deadline:
            state = json.loads(kubectl_ffctl(NS, "status", manifest["metadata"]["name"], "--json").stdout)
            if state["phase"] in ("Succeeded", "Failed", "Stopped", "Invalid"):
                break
            time.sleep(0.5)
        assert state["phase"] == "Succeeded", state
        return state

    with Kubelet(c, NS, tmp_path / "node"):
        first = finish(tiny_manifest)
        second = finish(grown)
    old = {r["id"] for r in first["experiments"]}
    assert old < {r["id"] for r in second["experiments"]}  # the grown sweep's plan contains the old points
    for experiment in old:  # their Jobs found the results and trained nothing
        assert "result exists" in kubectl_ffctl(NS, "logs", "base-grown", experiment).stdout
    keys = open_store("s3://ff-grow/sweeps", s3_endpoint).list("base/")
    assert sum(k.endswith("result.json") for k in keys) == len(second["experiments"])


def test_bad_suggest_inputs_are_refused_before_any_fit(tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("n_params,tokens,loss,budget\n")
    cases = [
        (["--data", str(points), "--target-flops", "1e12", "--write", "g.yaml"], "--write needs a result store"),
        (["--data", str(points), "--target-flops", "1e12", "--budget", "1e12", "--gpu-hours", "1"],
         "give --budget or --gpu-hours, not both"),
        (["--data", str(points), "--target-flops", "0"], "Invalid value for '--target-flops'"),
        (["--target-flops", "1e12"], "give a result store (SOURCE) or --data FILE"),
    ]
    for args, message in cases:
        refused = ffctl("suggest", *args)
        assert refused.returncode != 0 and message in refused.stderr, (args, refused.stderr)
