"""docs/plugins.md's worked example, extracted from the page and run: an out-of-tree plugin package end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"```(?:python|yaml)\n# file: (?P<path>\S+)\n(?P<body>.*?)```", re.S)


def extract(folder: Path) -> list[str]:
    written = []
    for match in FILE_BLOCK.finditer(DOC.read_text()):
        path = folder / match["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(match["body"])
        written.append(match["path"])
    return written


def ffctl(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(folder), NO_COLOR="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "ff_client.cli", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.long
def test_worked_example_runs_as_documented(tmp_path):
    files = extract(tmp_path)
    assert files == ["mlp_plugins/__init__.py", "mlp_plugins/model.py", "mlp_plugins/data.py", "mlp-sweep.yaml"]
    plan = ffctl(tmp_path, "plan", "mlp-sweep.yaml", "--write")
    assert plan.returncode == 0, plan.stderr
    assert "nParams:" in (tmp_path / "mlp-sweep.yaml").read_text()
    assert "6 experiments over 2 budgets" in plan.stdout
    run = ffctl(tmp_path, "run", "mlp-sweep.yaml", "--workers", "2")
    assert run.returncode == 0, run.stderr
    assert "6 trained, 0 already done, 0 failed" in run.stderr
    analyze = ffctl(tmp_path, "analyze", "file://./ff-results/mlp-wiggle", "--out", "mlp-out", "--json")
    assert analyze.returncode == 0, analyze.stderr
    report = json.loads(analyze.stdout)
    assert report["points"] == 6
    assert {"table.md", "table.csv", "isoflop.png"} <= {p.name for p in (tmp_path / "mlp-out").iterdir()}
    record = json.loads(next((tmp_path / "ff-results" / "mlp-wiggle").glob("*/result.json")).read_text())
    assert record["flops"]["plugin"] == record["flops"]["planned"]  # the budget was spent by the plugin's count


def test_documented_errors_are_the_real_ones(tmp_path):
    extract(tmp_path)
    sweep = tmp_path / "mlp-sweep.yaml"
    text = DOC.read_text()
    sweep.write_text(sweep.read_text().replace("mlp_plugins.model:MLP", "mlp_plugins.modle:MLP"))
    proc = ffctl(tmp_path, "plan", str(sweep))
    assert proc.returncode == 1
    assert "cannot import module 'mlp_plugins.modle' (No module named 'mlp_plugins.modle')" in proc.stderr
    assert "cannot import module 'mlp_plugins.modle' (No module named 'mlp_plugins.modle')" in text
