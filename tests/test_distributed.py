"""torchrun: two CPU processes (gloo) train the same experiment to the same losses as one process; the two
take the readout in chunks (training.fusedReadout, not part of the experiment's identity) under DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep


def run(nproc: int, sweep: Path, experiment: str, store: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "ff_trainer", "--sweep", str(sweep), "--experiment", experiment, "--store", f"file://{store}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_two_processes_match_one(tiny_manifest, write_sweep, tmp_path):
    tiny_manifest["spec"]["training"]["microBatchSize"] = 4  # 2 accumulation steps per rank with 2 ranks
    experiment = plan_sweep(parse_sweep(tiny_manifest)).experiments[0].id
    for nproc in (1, 2):
        tiny_manifest["spec"]["training"]["fusedReadout"] = nproc == 2
        proc = run(nproc, write_sweep(tiny_manifest), experiment, tmp_path / f"n{nproc}")
        assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"n{n}" / "unit" / experiment / "result.json").read_text()) for n in (1, 2))
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-5)
    assert [p["loss"] for p in two["loss_curve"]] == pytest.approx([p["loss"] for p in one["loss_curve"]], rel=1e-5)
    # only rank 0 writes: one record, one checkpoint file, no stray temporaries
    files = sorted(p.relative_to(tmp_path / "n2").as_posix() for p in (tmp_path / "n2").rglob("*") if p.is_file())
    assert files == [f"unit/{experiment}/checkpoint/latest.pt", f"unit/{experiment}/result.json"]
