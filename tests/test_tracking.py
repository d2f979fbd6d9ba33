"""Experiment tracking with the real libraries: `ffctl run` and `ffctl analyze --track` into MLflow (sqlite
store), W&B (offline run folders) and TensorBoard (event files), each read back as its tool stores it."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import TINY, built_once
from ff_client.cli import main
from ff_core import exit_codes, trackers
from ff_core.plan import plan_sweep
from ff_core.spec import Tracking, parse_sweep
from ff_core.store import open_store
from ff_core.trackers import BACKENDS, open_tracker
from ff_core.tracking import RunInfo, Tracker
from tracked_runs import mlflow_history, mlflow_runs, tb_scalars, tensorboard_run, wandb_offline_runs

TESTS = Path(__file__).resolve().parent


def with_tracking(folder: Path, manifest: dict) -> dict:
    manifest["spec"]["tracking"] = {
        "mlflow": {"trackingURI": f"sqlite:///{folder / 'mlflow.db'}"},
        "wandb": {"project": "flops-fit-tests", "mode": "offline"},
        "tensorboard": {"logDir": str(folder / "tb")},
    }
    manifest["spec"]["storage"] = {"uri": f"file://{folder / 'store'}"}
    return manifest


def env_for(folder: Path) -> dict:
    return dict(os.environ, WANDB_DIR=str(folder), PYTHONPATH=str(TESTS), OMP_NUM_THREADS="1",
                WANDB_SILENT="true")


def ffctl(args: list[str], folder: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ff_client.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=folder, env=env or env_for(folder))


EXPERIMENTS = 9  # the tracked sweep's


def _train_tracked(folder: Path) -> dict:
    manifest = with_tracking(folder, copy.deepcopy(TINY))
    manifest["spec"]["budgets"] = [6.0e8, 1.2e9, 2.4e9]
    sweep = folder / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(manifest, sort_keys=False))
    run = ffctl(["run", str(sweep), "--workers", "2"], folder)
    assert run.returncode == 0, run.stderr[-3000:]
    fit = ffctl(["analyze", f"file://{folder / 'store' / 'unit'}", "--track", "--bootstrap", "20", "--out",
                 str(folder / "fit")], folder)
    assert fit.returncode == 0, fit.stderr[-3000:]
    return {"fit": fit.stderr}


@pytest.fixture(scope="session")
def tracked(tmp_path_factory):
    """The TINY sweep with a third budget (9 experiments: enough for the surface's table) run with all three
    backends, then analysed with --track: once per test run (tests only read it)."""
    folder, built = built_once(tmp_path_factory, "tracked", _train_tracked)
    assert "tracked the fit in mlflow, wandb, tensorboard" in built["fit"]
    records = {}
    for path in (folder / "store" / "unit").glob("*/result.json"):
        record = json.loads(path.read_text())
        records[record["experiment"]] = record
    assert len(records) == EXPERIMENTS
    return {"folder": folder, "records": records, "uri": f"sqlite:///{folder / 'mlflow.db'}"}


def _curve(record: dict) -> list[tuple[int, float]]:
    return [(p["step"], p["loss"]) for p in record["loss_curve"]]


def test_mlflow_holds_one_run_per_experiment_and_one_per_fit(tracked):
    runs = mlflow_runs(tracked["uri"], "unit")
    by_kind = {}
    for run in runs:
        by_kind.setdefault(run.data.tags["kind"], []).append(run)
    assert sorted(by_kind) == ["experiment", "fit"] and len(by_kind["experiment"]) == EXPERIMENTS and len(by_kind["fit"]) == 1
    for run in by_kind["experiment"]:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        record = tracked["records"][tags["experiment"]]
        assert run.info.status == "FINISHED" and tags["status"] == "completed" and tags["sweep"] == "unit"
        assert tags["size"] == record["size"] and float(tags["budget"]) == pytest.approx(record["budget"], rel=1e-2)
        assert int(params["n_params"]) == record["n_params"] and int(params["tokens"]) == record["tokens"]
        assert params["training.learningRate"] == "0.003"
        # the curve as the record keeps it (thinned) is a subset of every logged point
        history = mlflow_history(tracked["uri"], run.info.run_id, "train/loss")
        assert set(_curve(record)) <= set(history) and history[-1][0] == record["loss_curve"][-1]["step"]
        assert len(mlflow_history(tracked["uri"], run.info.run_id, "train/lr")) == len(history)
        assert metrics["eval/loss"] == record["eval_loss"]
        assert metrics["flops/6nd"] == record["flops"]["6nd"]
        assert metrics["flops/measured"] == record["flops"]["measured"]
        assert metrics["n_params"] == record["n_params"] and metrics["budget"] == record["budget"]
    fit = by_kind["fit"][0]
    assert fit.info.status == "FINISHED"
    metrics = fit.data.metrics
    assert {"fit/parametric/alpha", "fit/parametric/alpha_low", "fit/parametric/alpha_high", "points"} <= set(metrics)
    alpha = [metrics[f"fit/parametric/alpha{end}"] for end in ("_low", "", "_high")]
    assert alpha == sorted(alpha)
    assert any(k.startswith("table/parametric/C6e08/") for k in metrics)
    from mlflow.tracking import MlflowClient

    files = {a.path for a in MlflowClient(tracked["uri"]).list_artifacts(fit.info.run_id)}
    assert {"table.md", "table.csv", "report.txt", "isoflop.png", "optimal.png"} <= files


def test_wandb_offline_runs_are_grouped_by_sweep(tracked):
    runs = wandb_offline_runs(tracked["folder"])
    experiments = [r for r in runs if r["job_type"] == "experiment"]
    assert len(experiments) == EXPERIMENTS and len({r["id"] for r in experiments}) == EXPERIMENTS
    for run in experiments:
        record = tracked["records"][run["name"]]
        assert run["id"] == f"unit-{record['experiment']}" and run["group"] == "unit"
        assert f"size:{record['size']}" in run["tags"] and run["config"]["n_params"] == record["n_params"]
        logged = {(row["train/step"], row["train/loss"]) for row in run["history"]}
        assert set(_curve(record)) <= logged
        assert run["summary"]["eval/loss"] == record["eval_loss"] and run["summary"]["status"] == "completed"
        assert run["exit"] == 0
    [fit] = [r for r in runs if r["job_type"] == "fit"]
    assert fit["group"] == "unit" and "fit/parametric/alpha_low" in fit["summary"]
    assert any(row.get("plots/isoflop/_type") == "image-file" for row in fit["history"])  # the plots as images


def test_tensorboard_event_files_per_run(tracked):
    for experiment, record in tracked["records"].items():
        accumulator = tensorboard_run(str(tracked["folder"] / "tb" / "unit" / experiment))
        as_float32 = {(step, float(np.float32(loss))) for step, loss in _curve(record)}  # TensorBoard keeps float32
        assert as_float32 <= {(step, float(np.float32(loss))) for step, loss in tb_scalars(accumulator, "train/loss")}
        assert tb_scalars(accumulator, "eval/loss")[0][1] == pytest.approx(record["eval_loss"], rel=1e-6)  # float32
    [fit] = list((tracked["folder"] / "tb" / "unit").glob("fit-*"))
    accumulator = tensorboard_run(str(fit))
    assert {"plots/isoflop", "plots/optimal"} <= set(accumulator.Tags()["images"])
    assert "fit/parametric/alpha" in accumulator.Tags()["scalars"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_resumed_experiment_continues_its_run(tmp_path, sig):
    """Stopped after a checkpoint (SIGTERM: it checkpoints and pauses its runs; SIGKILL: nothing), then the same
    trainer again: one run per tool, its curve continued; after SIGKILL, TensorBoard drops the points logged
    after the checkpoint (the resumed run logs those steps again)."""
    manifest = with_tracking(tmp_path, copy.deepcopy(TINY))
    manifest["spec"]["budgets"] = [1.0e10]  # xs: ~410 steps
    manifest["spec"]["training"] |= {"checkpointEverySteps": 20, "logPoints": 200}
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps(manifest))
    experiment = plan_sweep(parse_sweep(manifest)).experiments[0].id
    cmd = [sys.executable, "-m", "ff_trainer", "--sweep", str(sweep), "--experiment", experiment]
    ckpt = tmp_path / "store" / "unit" / experiment / "checkpoint" / "latest.pt"
    proc = subprocess.Popen(cmd, env=env_for(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # log some steps past the checkpoint
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    resumed = subprocess.run(cmd, env=env_for(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == exit_codes.DONE and "resuming at step" in resumed.stderr, resumed.stderr[-2000:]
    resumed_at = int(resumed.stderr.split("resuming at step ")[1].split("/")[0])
    record = json.loads((tmp_path / "store" / "unit" / experiment / "result.json").read_text())

    [run] = mlflow_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "unit")
    assert run.info.status == "FINISHED" and run.data.metrics["eval/loss"] == record["eval_loss"]
    history = mlflow_history(f"sqlite:///{tmp_path / 'mlflow.db'}", run.info.run_id, "train/loss")
    assert set(_curve(record)) <= set(history) and history[-1][0] == record["loss_curve"][-1]["step"]

    first, second = wandb_offline_runs(tmp_path)
    assert second["id"] == f"unit-{experiment}" and second["exit"] == 0  # `wandb sync` appends it to the first
    assert min(row["train/step"] for row in second["history"]) > resumed_at
    if sig == signal.SIGTERM:  # paused: flushed, marked failed until the resumed run finishes it
        assert first["id"] == second["id"] and first["exit"] != 0
        assert max(row["train/step"] for row in first["history"]) <= resumed_at
    else:  # W&B's own service had not written what it buffered when its trainer was killed
        assert "history" in first

    points = tb_scalars(tensorboard_run(str(tmp_path / "tb" / "unit" / experiment)), "train/loss")
    assert [s for s, _ in points] == sorted({s for s, _ in points})  # no step twice: the stale ones purged
    logged = dict(points)
    for step, loss in _curve(record):
        assert logged[step] == pytest.approx(loss, rel=1e-6)  # TensorBoard keeps float32


def test_failing_backends_are_warnings_never_failed_experiments(tiny_manifest, tmp_path):
    """MLflow down, W&B without credentials, a TensorBoard folder that cannot be made: the experiment trains and
    records its result; each backend is one warning."""
    (tmp_path / "file").write_text("")
    tiny_manifest["spec"]["tracking"] = {"mlflow": {"trackingURI": "http://127.0.0.1:9"},
                                         "wandb": {"project": "p", "mode": "online"},
                                         "tensorboard": {"logDir": str(tmp_path / "file" / "tb")}}
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps(tiny_manifest))
    experiment = plan_sweep(parse_sweep(tiny_manifest)).experiments[0].id
    env = {k: v for k, v in env_for(tmp_path).items() if not k.startswith("WANDB_API")} | {"HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "ff_trainer", "--sweep", str(sweep), "--experiment", experiment,
                           "--store", f"file://{tmp_path / 'store'}"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == exit_codes.DONE, proc.stderr[-2000:]
    assert (tmp_path / "store" / "unit" / experiment / "result.json").is_file()
    for name in ("mlflow", "wandb", "tensorboard"):
        assert proc.stderr.count(f"warning: tracking: {name} could not open run unit/{experiment}") == 1, proc.stderr


def test_an_mlflow_server_that_never_answers_costs_its_probe_not_mlflow_timeouts(tiny_manifest, tmp_path):
    """A server that accepts connections and never answers: the run goes on without it after the /health probe
    (ff_core.trackers.PROBE_SECONDS), said in one warning, instead of waiting out MLflow's timeout and retry."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # the kernel accepts connections; nobody reads or answers them
    try:
        tiny_manifest["spec"]["tracking"] = {"mlflow": {"trackingURI": f"http://127.0.0.1:{listener.getsockname()[1]}"}}
        sweep = tmp_path / "sweep.json"
        sweep.write_text(json.dumps(tiny_manifest))
        experiment = plan_sweep(parse_sweep(tiny_manifest)).experiments[0].id
        proc = subprocess.run([sys.executable, "-m", "ff_trainer", "--sweep", str(sweep), "--experiment", experiment,
                               "--store", f"file://{tmp_path / 'store'}"], env=env_for(tmp_path), cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    finally:
        listener.close()
    assert proc.returncode == exit_codes.DONE, proc.stderr[-2000:]
    assert proc.stderr.count("warning: tracking: mlflow") == 1, proc.stderr
    assert "did not answer within 3 s" in proc.stderr, proc.stderr


def test_ffctl_run_says_once_on_its_own_output_that_a_backend_failed(tiny_manifest, write_sweep, tmp_path):
    """The trainers' warnings are in their logs; `ffctl run` says so once, with the count, the first and its log."""
    (tmp_path / "file").write_text("")
    tiny_manifest["spec"]["budgets"] = [6.0e8]
    tiny_manifest["spec"]["tracking"] = {"tensorboard": {"logDir": str(tmp_path / "file" / "tb")}}
    experiments = plan_sweep(parse_sweep(tiny_manifest)).experiments
    proc = subprocess.run([sys.executable, "-m", "ff_client.cli", "run", str(write_sweep(tiny_manifest)), "--store",
                           f"file://{tmp_path / 'store'}", "--workers", "2"], env=dict(os.environ, NO_COLOR="1"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("tracking:") == 1, proc.stderr
    assert f"warning: tracking: {len(experiments)} step(s) trained without a tracking backend; the first" in proc.stderr
    assert "tensorboard could not open run unit/" in proc.stderr and "(its log: " in proc.stderr


class _Flaky:
    """A backend whose server goes away after its first point."""

    def __init__(self):
        self.points = []

    def log(self, step, metrics):
        if self.points:
            raise ConnectionError("server went away")
        self.points.append(step)

    def finish(self, summary, status):
        self.points.append(status)


class _Steady(_Flaky):
    def log(self, step, metrics):
        self.points.append(step)


def test_a_backend_failing_mid_run_is_dropped_and_the_others_go_on():
    warnings = []
    flaky, steady = _Flaky(), _Steady()
    tracker = Tracker({"mlflow": flaky, "wandb": steady}, warn=warnings.append)
    for step in (1, 2, 3):
        tracker.log(step, {"train/loss": 1.0 / step, "train/mfu": None})
    tracker.finish({"eval/loss": 0.5}, "completed")
    assert flaky.points == [1] and steady.points == [1, 2, 3, "completed"]
    assert len(warnings) == 1 and "mlflow failed to log (ConnectionError: server went away)" in warnings[0]
    assert tracker.finished == ["wandb"]


def test_tensorboard_writes_to_s3(s3_endpoint, tmp_path):
    config = Tracking.model_validate({"tensorboard": {"logDir": "s3://ff-test/tb"}})
    tracker = open_tracker(config, RunInfo("s3sweep", "e1", "experiment", {"size": "xs"}), s3_endpoint)
    assert tracker.active == ["tensorboard"]
    for step in (10, 20, 30):
        tracker.log(step, {"train/loss": 3.0 - step / 100})
    tracker.finish({"eval/loss": 2.5}, "completed")
    store = open_store("s3://ff-test/tb/s3sweep/e1", s3_endpoint)
    [name] = store.list()
    store.get_file(name, tmp_path / name)
    accumulator = tensorboard_run(str(tmp_path))
    assert [s for s, _ in tb_scalars(accumulator, "train/loss")] == [10, 20, 30]
    assert tb_scalars(accumulator, "eval/loss") == [(30, 2.5)]


def test_the_backends_table_names_the_specs_backends_and_the_contract_imports_no_backend():
    assert list(BACKENDS) == list(Tracking.model_fields)
    assert Tracking(tensorboard={"logDir": "tb"}).backends == ["tensorboard"]
    source = (Path(__file__).resolve().parents[1] / "core" / "ff_core" / "tracking.py").read_text()
    assert "trackers" not in source.split('"""', 2)[2]  # the contract knows no backend: no import circle


def test_a_backend_whose_package_is_missing_is_refused_before_any_training(tiny_manifest, write_sweep, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setitem(trackers.BACKENDS, "wandb", ("wandb_is_not_installed_here", trackers.WandbRun))
    tiny_manifest["spec"]["tracking"] = {"wandb": {"project": "p", "mode": "offline"}}
    sweep = write_sweep(tiny_manifest)
    result = CliRunner().invoke(main, ["run", str(sweep), "--store", f"file://{tmp_path / 'store'}"])
    assert result.exit_code != 0
    assert "spec.tracking.wandb needs the wandb_is_not_installed_here package" in result.output
    assert "pip install 'flops-fit[wandb]'" in result.output
    assert not (tmp_path / "store").exists()
    planned = CliRunner().invoke(main, ["plan", str(sweep)])  # a plan may be for a cluster: a warning only
    assert planned.exit_code == 0 and "pip install 'flops-fit[wandb]'" in planned.output


def test_analyze_track_needs_a_sweep_with_tracking(tracked, tmp_path):
    store = tmp_path / "unit"
    shutil.copytree(tracked["folder"] / "store" / "unit", store)
    sweep = json.loads((store / "sweep.json").read_text())
    del sweep["spec"]["tracking"]
    (store / "sweep.json").write_text(json.dumps(sweep))
    result = CliRunner().invoke(main, ["analyze", str(store), "--track", "--bootstrap", "0"])
    assert result.exit_code != 0 and "sweep unit has no spec.tracking" in result.output
    (tmp_path / "points.csv").write_text("n_params,tokens,loss\n1e6,2e7,3.1\n")
    points = CliRunner().invoke(main, ["analyze", "--data", str(tmp_path / "points.csv"), "--track"])
    assert points.exit_code != 0 and "not --data" in points.output
