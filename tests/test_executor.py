"""The local executor through `ffctl run`: trains everything, survives Ctrl-C, and a rerun skips what is done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep

FFCTL = [sys.executable, "-m", "ff_client.cli"]


def ffctl(*args: str, **kwargs):
    return subprocess.run([*FFCTL, *args], capture_output=True, text=True, timeout=600, **kwargs)


def results(store: Path) -> set[str]:
    return {p.parent.name for p in store.glob("*/*/result.json")}


@pytest.mark.long
def test_interrupted_run_resumes_and_skips_finished(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["budgets"] = [6.0e8, 3.0e9]  # the larger budget runs for a few seconds
    sweep = write_sweep(tiny_manifest)
    store = tmp_path / "store"
    ids = {e.id for e in plan_sweep(parse_sweep(tiny_manifest)).experiments}

    # SIGINT as a terminal delivers it: a suite started in the background (`make test &`) runs with SIGINT
    # ignored, which its children would inherit and keep (Python leaves an ignored SIGINT ignored)
    proc = subprocess.Popen([*FFCTL, "run", str(sweep), "--store", f"file://{store}", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not results(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err
    done_first = results(store)
    assert done_first and done_first < ids
    # nothing half-written: no stray temporary files, and every record present is complete
    assert not [p for p in store.rglob("*.tmp")]

    rerun = ffctl("run", str(sweep), "--store", f"file://{store}", "--workers", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(ids) - len(done_first)} trained, {len(done_first)} already done, 0 failed" in rerun.stderr
    assert results(store) == ids
    assert f"next: ffctl analyze file://{store}/unit" in rerun.stderr

    third = ffctl("run", str(sweep), "--store", f"file://{store}")
    assert f"0 trained, {len(ids)} already done" in third.stderr


def test_wrong_nparams_is_refused_before_anything_trains(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["sizes"][0]["nParams"] = 7000
    proc = ffctl("run", str(write_sweep(tiny_manifest)), "--store", f"file://{tmp_path}/s")
    assert proc.returncode == 1
    assert "size 'xs': nParams is 7000 but the model plugin counts 7920" in proc.stderr
    assert not (tmp_path / "s").exists()


def test_a_sweep_every_job_would_fail_is_refused_before_anything_trains(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["data"]["args"]["source"] = str(tmp_path / "missing.txt")  # every trainer would exit 3
    proc = ffctl("run", str(write_sweep(tiny_manifest)), "--store", f"file://{tmp_path}/s",
                 env=dict(os.environ, NO_COLOR="1"))
    assert proc.returncode == 1 and "missing.txt' is not a file or folder" in proc.stderr
    assert "data plugin 'ff_plugins.text:TextData'" in proc.stderr and not (tmp_path / "s").exists()


@pytest.mark.long
def test_failed_experiment_is_reported_with_its_log(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["model"]["plugin"] = "helper_plugins:GPTNarrowOnly"  # sizes s and m fail to build (exit 3)
    tiny_manifest["spec"]["budgets"] = [6.0e8]
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(Path(__file__).resolve().parent))
    proc = ffctl("run", str(write_sweep(tiny_manifest)), "--store", f"file://{tmp_path}/s", env=env)  # one at a time
    assert proc.returncode == 1
    assert "failed  " in proc.stderr and "exit 3" in proc.stderr
    # a configuration error stops new starts: xs trained, s failed after it, m never started
    assert "1 step(s) failed; 1 not started (--keep-going starts those held back by a configuration error" in proc.stderr
    assert "bad configuration or plugin (exit 3): error:" in proc.stderr  # the trainer's own first error line
    assert "wider than 16 are not built here" in proc.stderr  # ... shown without opening the log
    log = next(p for p in (tmp_path / "s" / "unit" / "logs").glob("*.log") if "error:" in p.read_text())
    assert "wider than 16 are not built here" in log.read_text()
    going = ffctl("run", str(write_sweep(tiny_manifest)), "--store", f"file://{tmp_path}/s", "--keep-going", env=env)
    assert going.returncode == 1 and "2 step(s) failed;" in going.stderr and "not started" not in going.stderr


@pytest.mark.long
def test_run_and_analyze_through_s3(tiny_manifest, write_sweep, tmp_path, s3_endpoint):
    """The whole local loop against a real S3 endpoint: checkpoints and records in a bucket, fitted from there."""
    sweep = write_sweep(tiny_manifest)  # 2 budgets x 3 sizes
    env = dict(os.environ, FF_S3_ENDPOINT_URL=s3_endpoint, NO_COLOR="1")
    uri = f"s3://ff-test/{tmp_path.name}"
    # logs of a non-file store go to ./ff-logs: run where the test may write
    run = ffctl("run", str(sweep), "--store", uri, "--workers", "2", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "6 trained, 0 already done, 0 failed" in run.stderr
    analyze = ffctl("analyze", f"{uri}/unit", "--json", "--bootstrap", "20", env=env)
    assert analyze.returncode == 0, analyze.stderr
    assert json.loads(analyze.stdout)["points"] == 6
    again = ffctl("run", str(sweep), "--store", uri, env=env, cwd=tmp_path)
    assert "0 trained, 6 already done" in again.stderr
    assert len(list((tmp_path / "ff-logs" / "unit" / "logs").glob("*.log"))) == 6


def test_diverged_experiments_are_rerun_only_when_asked(tiny_manifest, write_sweep, tmp_path):
    from ff_core.layout import result_key
    from ff_core.store import FileStore

    tiny_manifest["spec"]["budgets"] = [6.0e8]
    sweep = write_sweep(tiny_manifest)
    plan = plan_sweep(parse_sweep(tiny_manifest))
    store = FileStore(tmp_path / "store")
    for i, e in enumerate(plan.experiments):  # as earlier runs left them: the first diverged
        store.put_json(result_key("unit", e.id), {"experiment": e.id, "status": "diverged" if i == 0 else "completed"})
    env = dict(os.environ, NO_COLOR="1")
    skip = ffctl("run", str(sweep), "--store", store.uri, env=env)
    assert skip.returncode == 0 and "0 trained, 3 already done" in skip.stderr
    assert "1 experiment(s) are recorded as diverged and were not rerun; `ffctl run --retry-diverged`" in skip.stderr
    retry = ffctl("run", str(sweep), "--store", store.uri, "--retry-diverged", env=env)
    assert retry.returncode == 0, retry.stderr
    assert f"retry   {plan.experiments[0].id}" in retry.stderr and "1 trained, 2 already done" in retry.stderr
    assert store.get_json(result_key("unit", plan.experiments[0].id))["status"] == "completed"


def test_clean_checkpoints_removes_those_of_finished_experiments(tiny_manifest, write_sweep, tmp_path):
    from ff_core.layout import checkpoint_key, result_key
    from ff_core.store import FileStore

    tiny_manifest["spec"]["budgets"] = [6.0e8]
    plan = plan_sweep(parse_sweep(tiny_manifest))
    store = FileStore(tmp_path / "store")
    (tmp_path / "ckpt").write_bytes(b"x")
    for e in plan.experiments:
        store.put_json(result_key("unit", e.id), {"experiment": e.id, "status": "completed"})
        store.put_file(checkpoint_key("unit", e.id), tmp_path / "ckpt")
    kept = ffctl("run", str(write_sweep(tiny_manifest)), "--store", store.uri)
    assert kept.returncode == 0 and len(list(store.root.rglob("latest.pt"))) == 3  # not without asking
    cleaned = ffctl("run", str(write_sweep(tiny_manifest)), "--store", store.uri, "--clean-checkpoints")
    assert cleaned.returncode == 0 and "0 trained, 3 already done" in cleaned.stderr
    assert not list(store.root.rglob("latest.pt")) and len(list(store.root.rglob("result.json"))) == 3


def test_an_experiment_another_ffctl_trains_is_left_to_it_and_a_stale_lock_is_taken_over(tiny_manifest, write_sweep,
                                                                                      tmp_path):
    import socket

    from ff_core.layout import lock_key

    tiny_manifest["spec"]["budgets"] = [6.0e8]
    first, second, _ = (e.id for e in plan_sweep(parse_sweep(tiny_manifest)).experiments)
    store = tmp_path / "store"
    for exp, pid in ((first, os.getpid()), (second, 2 ** 22 + 12345)):  # a live ffctl (this test), a gone one
        (store / lock_key("unit", exp)).parent.mkdir(parents=True)
        (store / lock_key("unit", exp)).write_text(json.dumps({"host": socket.gethostname(), "pid": pid}))
    run = ffctl("run", str(write_sweep(tiny_manifest)), "--store", f"file://{store}", "--workers", "2",
                env=dict(os.environ, NO_COLOR="1"))
    assert run.returncode == 0, run.stderr
    assert f"{first} is being trained by ffctl pid {os.getpid()}" in run.stderr and "2 trained" in run.stderr
    assert results(store) == {second, _} and (store / lock_key("unit", first)).exists()
    assert not (store / lock_key("unit", second)).exists()  # taken over, trained, released


def test_a_trainer_that_outlives_its_ffctl_keeps_the_experiment(tmp_path):
    """ffctl hands its lock to the trainer it starts: killed with SIGKILL, its orphaned trainer still holds the
    experiment, and a rerun leaves it alone (naming the pid to wait for or stop) until that trainer ends."""
    from ff_client.executor import claim, hand_over, release
    from ff_core.layout import lock_key
    from ff_core.store import FileStore

    store = FileStore(tmp_path / "store")
    assert claim(store, "unit", "e1") is None
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        hand_over(store, "unit", "e1", orphan.pid)
        lock = store.root / lock_key("unit", "e1")
        owner = json.loads(lock.read_text())
        assert owner["trainer"] == orphan.pid and owner["pid"] == os.getpid()
        lock.write_text(json.dumps(dict(owner, pid=2 ** 22 + 12345)))  # as after SIGKILL of this ffctl
        holder = claim(store, "unit", "e1")
        assert holder is not None and f"trainer pid {orphan.pid}, left running by an ffctl that has gone" in holder
    finally:
        orphan.kill()
        orphan.wait()
    assert claim(store, "unit", "e1") is None  # the orphan has ended: the stale lock is taken over
    release(store, "unit", "e1")


@pytest.mark.long
def test_pack_shares_each_gpu_and_trains_the_same_results(tiny_manifest, write_sweep, tmp_path):
    """`ffctl run --pack 2` with two GPUs visible: four trainers at once, each given one GPU
    (CUDA_VISIBLE_DEVICES), the least used; every result equals the unpacked run's exactly (separate
    processes; on the CPU, with the same threads per trainer, the losses are deterministic)."""
    tiny_manifest["spec"]["budgets"] = [6.0e8]
    sweep = write_sweep(tiny_manifest)
    # --workers 2: one thread per trainer, as in the packed run (the thread count changes float sums)
    alone = ffctl("run", str(sweep), "--store", f"file://{tmp_path / 'alone'}", "--workers", "2")
    assert alone.returncode == 0, alone.stderr
    env = {"CUDA_VISIBLE_DEVICES": "3,5"}  # the CPU wheel of torch trains on the CPU whatever this says
    packed = ffctl("run", str(sweep), "--store", f"file://{tmp_path / 'packed'}", "--pack", "2", env=os.environ | env)
    assert packed.returncode == 0, packed.stderr
    assert "2 experiment(s) per GPU on 2 GPU(s): 4 at once" in packed.stderr
    placed = [line for log in (tmp_path / "packed" / "unit" / "logs").glob("*.log")
              for line in log.read_text().splitlines() if line.startswith("[ffctl]")]
    assert len(placed) == 3 and {line.split()[-1] for line in placed} == {"3", "5"}
    for record in (tmp_path / "alone" / "unit").glob("*/result.json"):
        twin = tmp_path / "packed" / "unit" / record.parent.name / "result.json"
        a, b = json.loads(record.read_text()), json.loads(twin.read_text())
        assert (a["eval_loss"], a["loss_curve"]) == (b["eval_loss"], b["loss_curve"])
    both = ffctl("run", str(sweep), "--pack", "2", "--workers", "3")
    assert both.returncode == 2 and "give --workers or --pack, not both" in both.stderr
