"""The fork server: a trainer forked from it trains exactly as `python -m ff_trainer` does, driven the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ff_core import launch
from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep


def _record(store, sweep: str, experiment: str) -> dict:
    record = json.loads((store / sweep / experiment / "result.json").read_text())
    return {k: record[k] for k in ("final_loss", "eval_loss", "loss_curve", "n_params", "tokens", "status")}


def test_a_forked_trainer_trains_exactly_as_a_process_of_its_own(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["budgets"] = [6.0e8]
    sweep = write_sweep(tiny_manifest)
    experiment = plan_sweep(parse_sweep(tiny_manifest)).experiments[0].id
    argv = ["--sweep", str(sweep), "--experiment", experiment]
    env = dict(os.environ, OMP_NUM_THREADS="1")

    launch.warm_up()
    forked = launch.start("ff_trainer", [*argv, "--store", f"file://{tmp_path / 'forked'}"], env,
                          tmp_path / "forked.log")
    assert isinstance(forked, launch.Forked)  # the server was up: this one is a fork
    assert forked.wait(timeout=300) == 0, (tmp_path / "forked.log").read_text()
    alone = subprocess.run([sys.executable, "-m", "ff_trainer", *argv, "--store", f"file://{tmp_path / 'alone'}"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr

    assert _record(tmp_path / "forked", "unit", experiment) == _record(tmp_path / "alone", "unit", experiment)
    assert "eval loss" in (tmp_path / "forked.log").read_text()  # its output went to its log


def _text(path) -> str:
    return path.read_text() if path.exists() else ""


def test_a_forked_program_gets_its_own_output_environment_session_and_signals(tmp_path, monkeypatch):
    launch.warm_up()
    script = ("import os, signal, sys, time; print(os.environ['FF_PROBE'], os.getsid(0) == os.getpid(), os.getcwd());"
              "print('to stderr', file=sys.stderr); sys.stdout.flush(); time.sleep(60)")
    module = tmp_path / "probe_module.py"
    module.write_text(script)
    monkeypatch.chdir(tmp_path)  # a module in the working directory is importable, as under `python -m`
    proc = launch.start("probe_module", [], dict(os.environ, FF_PROBE="given"), tmp_path / "out", tmp_path / "err")
    assert isinstance(proc, launch.Forked)
    deadline = time.monotonic() + 60
    while "given" not in _text(tmp_path / "out") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM
    assert (tmp_path / "out").read_text().split() == ["given", "True", str(tmp_path)]
    assert (tmp_path / "err").read_text() == "to stderr\n"


def test_with_the_server_off_programs_are_processes_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "_server", None)
    monkeypatch.setenv(launch.FORKSERVER_ENV, "0")
    launch.warm_up()
    assert launch._server is None
    proc = launch.start("json.tool", ["--help"], dict(os.environ), tmp_path / "out")
    assert isinstance(proc, subprocess.Popen) and proc.wait(timeout=60) == 0
    assert "usage" in (tmp_path / "out").read_text()
