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
