"""Time the demo sweep (examples/tiny.yaml) end to end on this machine: train with 2 workers, then analyze.

Usage: python benchmarks/demo_time.py [--workers 2]. Prints wall seconds per phase and per experiment, and
checks what tests/test_examples.py's slow demo test checks (make test leaves that test out): 15 points,
none excluded, every isoFLOP curve with an interior minimum, bigger budgets wanting bigger models.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = f"file://{tmp}/results"
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ff_client.cli", "run", str(ROOT / "examples/tiny.yaml"),
                        "--store", store, "--workers", str(args.workers)], check=True, capture_output=True)
        trained = time.perf_counter()
        analysis = json.loads(subprocess.run(
            [sys.executable, "-m", "ff_client.cli", "analyze", f"{store}/tiny", "--out", f"{tmp}/out", "--json"],
            check=True, capture_output=True, text=True).stdout)
        analyzed = time.perf_counter()
        records = [json.loads(p.read_text()) for p in Path(tmp, "results", "tiny").glob("*/result.json")]
    seconds = [r["wall_seconds"] for r in records]
    print(f"experiments: {len(records)}, workers: {args.workers}")
    print(f"train (ffctl run):   {trained - began:7.1f} s wall")
    print(f"fit + plots:         {analyzed - trained:7.1f} s wall")
    print(f"per experiment:      median {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s "
          "(training loop only)")
    check(analysis)


def check(analysis: dict) -> None:
    """The demo's promise: every isoFLOP curve has an interior minimum, and N_opt grows with the budget."""
    curves = analysis["approaches"]["isoflop"]["curves"]
    n_opts = [c["n_opt"] for c in curves]
    problems = [f"{analysis['points']} points (15 expected)"] if analysis["points"] != 15 else []
    problems += [f"excluded: {e['label']} ({e['reason']})" for e in analysis["excluded"]]
    problems += [f"budget {c['budget']:.3g}: {c['problem']}" for c in curves if not c["interior"]]
    if n_opts != sorted(n_opts):
        problems.append(f"N_opt does not grow with the budget: {n_opts}")
    print("demo check: " + ("ok, every isoFLOP curve has an interior minimum" if not problems else "FAILED"))
    if problems:
        sys.exit("\n".join(problems))


if __name__ == "__main__":
    main()
