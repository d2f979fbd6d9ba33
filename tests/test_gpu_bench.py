"""The GPU benchmark script (`make bench-gpu`) end to end with --smoke on the CPU: every table, every row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bench.py"


@pytest.mark.long
def test_the_gpu_benchmark_runs_end_to_end_on_the_cpu(tmp_path):
    out = tmp_path / "bench-gpu.md"
    done = subprocess.run([sys.executable, str(BENCH), "--smoke", "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    assert "## Throughput: ours vs the best-practice bare loop (cpu" in text
    assert "## Packing: k experiments on one GPU (cpu" in text
    assert "## Step variants against logits -> cross-entropy (cpu" in text
    rows = [line for line in text.splitlines() if line.startswith("| smoke |")]
    assert len(rows) == 8  # one throughput row; k = 1 and 2 packed, as processes and vmapped; 3 step variants
    # the vectorised pack's losses are those of separate loops (issue 15: within 1e-5 relative)
    difference = re.search(r"Vectorised vs separate losses .*: largest relative difference (\S+)", text)
    assert difference and float(difference.group(1)) < 1e-5, text
    assert all(f"({script}: " in text for script in ("gpu_throughput.py", "gpu_packing.py", "step_variants.py"))
    assert text.count(", exit 0)") == 3
