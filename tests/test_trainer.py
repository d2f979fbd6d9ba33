"""The trainer as the executor and Kubernetes run it: a real `python -m ff_trainer` process per call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ff_core import exit_codes
from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep

TESTS = Path(__file__).resolve().parent


def trainer(sweep: Path, experiment: str, store: Path, wait: bool = True):
    env = dict(os.environ, PYTHONPATH=str(TESTS), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ff_trainer", "--sweep", str(sweep), "--experiment", experiment,
           "--store", f"file://{store}"]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def first_id(manifest: dict, index: int = 0) -> str:
    return plan_sweep(parse_sweep(manifest)).experiments[index].id


def result(store: Path, manifest: dict, experiment: str) -> dict:
    return json.loads((store / manifest["metadata"]["name"] / experiment / "result.json").read_text())


def test_smoke_run_writes_a_valid_record_then_skips(tiny_manifest, write_sweep, tmp_path):
    exp = first_id(tiny_manifest)
    proc = trainer(write_sweep(tiny_manifest), exp, tmp_path / "store")
    assert proc.returncode == exit_codes.DONE, proc.stderr
    record = result(tmp_path / "store", tiny_manifest, exp)
    assert record["status"] == "completed" and record["schema_version"] == 1
    assert record["n_params"] == 7920 and record["n_params_non_embedding"] == 3312
    assert record["tokens"] == 25 * 512
    assert record["flops"]["6nd"] == 6 * 7920 * 25 * 512
    assert record["loss_curve"][-1]["step"] == 25 and len(record["loss_curve"]) >= 10
    assert record["loss_curve"][-1]["loss"] < record["loss_curve"][0]["loss"]  # it learned something
    assert 0 < record["eval_loss"] < 5.6  # below uniform over 256 bytes (ln 256 = 5.55)
    assert record["untrained_loss"] == pytest.approx(5.545, abs=1e-3)  # the data plugin's, for analysis
    # every FLOP count: 6ND, the plan's, the model's exact count and PyTorch's measurement of one step
    flops = record["flops"]
    assert set(flops) == {"6nd", "planned", "model", "measured"}
    # torch's counter has no formula for the CPU flash-attention kernel, so on CPU "measured" misses the
    # attention term (1/8 of this tiny model's count); on a GPU the two agreed within 2% (H200, 10.8M GPT)
    assert flops["measured"] == pytest.approx(flops["model"], rel=0.15)
    assert record["mfu"] is None and record["device"] == "cpu"  # no GPU peak to compare with
    again = trainer(write_sweep(tiny_manifest), exp, tmp_path / "store")
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_same_seed_same_losses_on_cpu(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["training"]["deterministic"] = True  # deterministic kernels: same ids, same losses
    exp = first_id(tiny_manifest)
    for name in ("a", "b"):
        assert trainer(write_sweep(tiny_manifest), exp, tmp_path / name).returncode == 0
    a, b = (result(tmp_path / n, tiny_manifest, exp) for n in ("a", "b"))
    assert a["eval_loss"] == b["eval_loss"] and a["loss_curve"] == b["loss_curve"]
    assert a["seed"] == 0 and {"python", "torch", "numpy", "flops-fit"} <= set(a["versions"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One uninterrupted run of a ~410-step experiment (checkpoints every 20 steps), the reference that both
    kill tests resume to: (manifest, sweep file, experiment id, its result)."""
    import copy

    from conftest import TINY

    manifest = copy.deepcopy(TINY)
    manifest["spec"]["budgets"] = [1.0e10]  # xs: ~410 steps, long enough to kill part-way
    manifest["spec"]["training"]["checkpointEverySteps"] = 20
    folder = tmp_path_factory.mktemp("uninterrupted")
    sweep = folder / "sweep.json"
    sweep.write_text(json.dumps(manifest))
    exp = first_id(manifest)
    assert trainer(sweep, exp, folder / "whole").returncode == 0
    return manifest, sweep, exp, result(folder / "whole", manifest, exp)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killed_run_resumes_to_the_uninterrupted_loss(uninterrupted, tmp_path, sig):
    manifest, sweep, exp, whole = uninterrupted
    ckpt = tmp_path / "cut" / "unit" / exp / "checkpoint" / "latest.pt"
    proc = trainer(sweep, exp, tmp_path / "cut", wait=False)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == (exit_codes.INTERRUPTED if sig == signal.SIGTERM else -signal.SIGKILL), output
    assert not (tmp_path / "cut" / "unit" / exp / "result.json").exists()
    resumed = trainer(sweep, exp, tmp_path / "cut")
    assert resumed.returncode == 0 and "resuming at step" in resumed.stderr
    cut = result(tmp_path / "cut", manifest, exp)
    assert cut["eval_loss"] == whole["eval_loss"]
    assert cut["loss_curve"] == whole["loss_curve"]


def test_wrong_nparams_fails_fast_with_exit_3(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["sizes"][0]["nParams"] = 7000
    proc = trainer(write_sweep(tiny_manifest), first_id(tiny_manifest), tmp_path)
    assert proc.returncode == exit_codes.BAD_CONFIG
    assert "spec says nParams=7000 but the model built from knobs" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("role,plugin,message", [
    ("model", "no_such_pkg.mod:GPT", "plugin 'no_such_pkg.mod:GPT': cannot import module 'no_such_pkg.mod'"),
    ("model", "ff_plugins.gpt:Nope", "plugin 'ff_plugins.gpt:Nope': module 'ff_plugins.gpt' has no attribute 'Nope'"),
    ("model", "helper_plugins:NotAModel", "model plugin 'helper_plugins:NotAModel' does not satisfy the ModelPlugin protocol: missing count_params"),
    ("data", "ff_plugins.gpt:GPT", "data plugin 'ff_plugins.gpt:GPT' does not satisfy the DataPlugin protocol: missing batches"),
    ("data", "helper_plugins:BrokenData", "data plugin 'helper_plugins:BrokenData': cannot be built with args {}: "
                                          "RuntimeError: the dataset server is down"),
])
def test_bad_plugins_exit_3_naming_the_path(tiny_manifest, write_sweep, tmp_path, role, plugin, message):
    exp = first_id(tiny_manifest)
    tiny_manifest["spec"][role] = {"plugin": plugin}
    proc = trainer(write_sweep(tiny_manifest), plan_sweep(parse_sweep(tiny_manifest)).experiments[0].id, tmp_path)
    assert proc.returncode == exit_codes.BAD_CONFIG, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert exp  # the plan itself needs no plugin code


def test_unknown_experiment_is_a_config_error(tiny_manifest, write_sweep, tmp_path):
    proc = trainer(write_sweep(tiny_manifest), "e000000000000", tmp_path)
    assert proc.returncode == exit_codes.BAD_CONFIG and "has no experiment 'e000000000000'" in proc.stderr


def test_out_of_memory_names_the_setting_to_lower(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["model"] = {"plugin": "helper_plugins:OutOfMemoryGPT"}
    tiny_manifest["spec"]["training"]["microBatchSize"] = 8  # set by the user: kept, never changed
    proc = trainer(write_sweep(tiny_manifest), first_id(tiny_manifest), tmp_path)
    assert proc.returncode == exit_codes.BAD_CONFIG, proc.stderr
    assert "out of GPU memory with 8 sequences of 32 tokens" in proc.stderr
    assert "lower spec.training.microBatchSize" in proc.stderr
    del tiny_manifest["spec"]["training"]["microBatchSize"]  # unset: halved to 1 sequence, then the error
    proc = trainer(write_sweep(tiny_manifest), first_id(tiny_manifest), tmp_path)
    assert proc.returncode == exit_codes.BAD_CONFIG, proc.stderr
    assert "out of GPU memory even with 1 sequence of 32 tokens per forward pass on cpu (microBatchSize unset: " \
           "tried 16 down to 1)" in proc.stderr


def test_an_unset_micro_batch_is_halved_until_it_fits(tiny_manifest, write_sweep, tmp_path):
    """microBatchSize unset and the per-process batch (16 sequences) too large: the first step halves it to
    the 4 that fit, and the run equals one told microBatchSize 4 (the same accumulation) exactly."""
    tiny_manifest["spec"]["model"] = {"plugin": "helper_plugins:GPTFitsFour"}
    exp = first_id(tiny_manifest)
    proc = trainer(write_sweep(tiny_manifest), exp, tmp_path / "auto")
    assert proc.returncode == exit_codes.DONE, proc.stderr
    assert "out of memory with 16 sequences per forward pass; now 8" in proc.stderr
    assert "out of memory with 8 sequences per forward pass; now 4 (4 accumulated" in proc.stderr
    tiny_manifest["spec"]["training"]["microBatchSize"] = 4
    told = trainer(write_sweep(tiny_manifest), first_id(tiny_manifest), tmp_path / "told")
    assert told.returncode == exit_codes.DONE and "out of memory" not in told.stderr
    auto = result(tmp_path / "auto", tiny_manifest, exp)
    fixed = result(tmp_path / "told", tiny_manifest, first_id(tiny_manifest))
    assert (auto["eval_loss"], auto["loss_curve"]) == (fixed["eval_loss"], fixed["loss_curve"])


def test_nan_loss_records_diverged_and_exits_4(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["loss"] = {"plugin": "helper_plugins:nan_after_ten"}
    exp = first_id(tiny_manifest)
    proc = trainer(write_sweep(tiny_manifest), exp, tmp_path)
    assert proc.returncode == exit_codes.DIVERGED, proc.stderr
    record = result(tmp_path, tiny_manifest, exp)
    assert record["status"] == "diverged" and record["eval_loss"] is None


def test_vit_on_cifar_format_files(tmp_path):
    """The image path end to end: ViT + CIFAR-10 python batches (generated), FLOPs per image from the plugin."""
    from test_data import write_cifar

    from ff_plugins.vit import ViT, vit_flops_per_image

    knobs = {"width": 16, "depth": 1, "heads": 2, "patch_size": 8}
    manifest = {
        "apiVersion": "flopsfit.dev/v1alpha1", "kind": "ScalingSweep", "metadata": {"name": "vit"},
        "spec": {
            "model": {"plugin": "ff_plugins.vit:ViT"},
            "data": {"plugin": "ff_plugins.cifar:CIFAR10", "args": {"source": str(write_cifar(tmp_path / "c"))}},
            "flops": {"plugin": "ff_plugins.vit:vit_flops_per_image"},
            "budgets": [vit_flops_per_image(knobs) * 16 * 30], "pointsPerBudget": 3,
            "tokensPerParam": {"min": 0.001, "max": 1000},
            "sizes": [{"name": "t", "knobs": knobs, "nParams": ViT().count_params(knobs, 1)[0],
                       "flopsPerToken": vit_flops_per_image(knobs)}],
            "training": {"globalBatchTokens": 16, "sequenceLength": 1, "evalTokens": 32, "learningRate": 3e-3},
        },
    }
    sweep = tmp_path / "vit.json"
    sweep.write_text(json.dumps(manifest))
    exp = first_id(manifest)
    proc = trainer(sweep, exp, tmp_path / "store")
    assert proc.returncode == 0, proc.stderr
    record = result(tmp_path / "store", manifest, exp)
    assert record["tokens"] == 16 * 30 and record["status"] == "completed"
    assert record["flops"]["plugin"] == pytest.approx(vit_flops_per_image(knobs) * 16 * 30)
    assert record["flops"]["planned"] == record["flops"]["plugin"]
    assert record["eval_loss"] < 2.31  # below chance over 10 classes (ln 10)


def test_a_data_stream_that_ends_is_a_configuration_error(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["data"] = {"plugin": "helper_plugins:FiniteData"}
    proc = trainer(write_sweep(tiny_manifest), first_id(tiny_manifest), tmp_path)
    assert proc.returncode == exit_codes.BAD_CONFIG, proc.stderr
    assert "the data plugin's 'train' stream ended after 3 batch(es); batches() must not end" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.long
def test_the_compiled_step_trains_to_the_eager_losses(short_run):
    """training.compile: torch.compile over the forward pass and the loss together (the step's one compiled
    unit); on the CPU the compiled kernels reorder float sums, so the losses agree closely, not bit for bit."""
    eager, compiled = short_run(compile=False), short_run(compile=True)
    assert compiled == pytest.approx(eager, rel=1e-4)
    assert compiled[-2] < compiled[0]


def test_a_store_it_cannot_write_is_exit_3_before_training(tiny_manifest, write_sweep, tmp_path):
    """The results folder cannot be created (here a file stands where it goes; in a container, a mount the
    trainer's uid cannot write): exit 3 naming the fix at once, not a crash at the first checkpoint."""
    (tmp_path / tiny_manifest["metadata"]["name"]).write_text("not a folder")  # where its results folder goes
    proc = trainer(write_sweep(tiny_manifest), first_id(tiny_manifest), tmp_path)
    assert proc.returncode == exit_codes.BAD_CONFIG, proc.stderr[-2000:]
    assert "cannot be written here" in proc.stderr and "chown -R" in proc.stderr and "Traceback" not in proc.stderr
    assert "eval loss" not in proc.stderr  # nothing trained


def test_a_learning_rate_law_trains_each_point_at_its_own_rate(tiny_manifest, write_sweep, tmp_path):
    """training.learningRate as a law (c N^a D^b, what ffctl transfer --data fits): a point trains exactly as it
    would with the rate the law gives it as a number, and the law is part of its id."""
    import copy

    law = {"law": "power", "c": 3e-3 * 7920**0.3, "nExponent": -0.3, "dExponent": 0.0}
    with_law = copy.deepcopy(tiny_manifest)
    with_law["spec"]["training"]["learningRate"] = law
    planned = plan_sweep(parse_sweep(with_law)).experiments
    point = planned[0]
    rate = law["c"] * point.n_params ** law["nExponent"]
    numeric = copy.deepcopy(tiny_manifest)
    numeric["spec"]["training"]["learningRate"] = rate
    assert point.id != first_id(numeric) and len({e.id for e in planned}) == len(planned)
    for manifest, store in ((with_law, tmp_path / "law"), (numeric, tmp_path / "number")):
        exp = first_id(manifest)
        done = trainer(write_sweep(manifest), exp, store)
        assert done.returncode == exit_codes.DONE, done.stderr[-2000:]
    by_law, by_number = result(tmp_path / "law", with_law, point.id), result(tmp_path / "number", numeric,
                                                                               first_id(numeric))
    assert (by_law["final_loss"], by_law["eval_loss"]) == (by_number["final_loss"], by_number["eval_loss"])


def test_compile_without_a_compiler_is_exit_3_naming_the_fix(tiny_manifest, write_sweep, tmp_path):
    """training.compile in an image with no C++ compiler (a PyTorch runtime base): exit 3 saying so, not
    inductor's InvalidCxxCompiler as a crash (exit 1, retried) at the first step."""
    tiny_manifest["spec"]["training"]["compile"] = True
    env = {k: v for k, v in os.environ.items() if k != "CXX"} | {
        "PATH": str(tmp_path / "empty-bin"), "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "ff_trainer", "--sweep", str(write_sweep(tiny_manifest)),
                           "--experiment", first_id(tiny_manifest), "--store", f"file://{tmp_path}"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == exit_codes.BAD_CONFIG, proc.stderr[-2000:]
    assert "no C++ compiler" in proc.stderr and "compile: false" in proc.stderr and "Traceback" not in proc.stderr


def test_compile_without_pythons_headers_is_named(monkeypatch, tmp_path):
    """The other half of inductor's toolchain: its C++ wrapper (and Triton's launcher) include Python.h, which a
    Debian python3 without python3-dev lacks (found building the trainer image on a Debian base)."""
    import sysconfig

    from ff_trainer.run import compile_toolchain_missing

    assert compile_toolchain_missing() is None  # this environment has both
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"include": str(tmp_path)})
    assert "Python.h" in compile_toolchain_missing() and "python3-dev" in compile_toolchain_missing()


def test_an_eval_plugin_records_task_metrics_at_each_checkpoint_without_changing_training(
        tiny_manifest, write_sweep, tmp_path):
    """spec.evaluation (the built-in multiple-choice task on the held-out data): its metrics at every checkpoint
    and at the end go into the record, with the same losses as the run without it (an evaluation restores every
    RNG); it is not part of the id. A plugin that returns a non-number is exit 3, naming it."""
    import copy

    tiny_manifest["spec"]["training"]["deterministic"] = True
    evaluated = copy.deepcopy(tiny_manifest)
    evaluated["spec"]["evaluation"] = {"plugin": "ff_plugins.tasks:NextChunkChoice", "args": {"items": 16}}
    exp = first_id(tiny_manifest)
    assert first_id(evaluated) == exp
    for manifest, store in ((tiny_manifest, tmp_path / "plain"), (evaluated, tmp_path / "tasks")):
        done = trainer(write_sweep(manifest), exp, store)
        assert done.returncode == exit_codes.DONE, done.stderr[-2000:]
    plain, tasks = result(tmp_path / "plain", tiny_manifest, exp), result(tmp_path / "tasks", evaluated, exp)
    assert plain["task_metrics"] is None and (plain["eval_loss"], plain["loss_curve"]) == (tasks["eval_loss"],
                                                                                          tasks["loss_curve"])
    steps = [t["step"] for t in tasks["task_metrics"]]
    assert steps == [5, 10, 15, 20, 25]  # checkpointEverySteps 5, and the end (step 25)
    last = tasks["task_metrics"][-1]["metrics"]
    assert set(last) == {"accuracy", "error", "loglik"} and last["error"] == pytest.approx(1 - last["accuracy"])
    assert last["loglik"] > tasks["task_metrics"][0]["metrics"]["loglik"]  # the right answer grows likelier
    evaluated["spec"]["evaluation"] = {"plugin": "helper_plugins:BadEval"}
    broken = trainer(write_sweep(evaluated), exp, tmp_path / "broken")
    assert broken.returncode == exit_codes.BAD_CONFIG and "helper_plugins:BadEval" in broken.stderr
    assert "finite number" in broken.stderr
