"""Train one experiment on the GPU through `python -m ff_trainer` and print what its result record says.

Checks the real path on a GPU (bf16 autocast, fused AdamW, measured FLOPs, MFU in the record).
Usage: python benchmarks/gpu_smoke.py [--compile]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep
from ff_plugins.gpt import GPT

KNOBS = {"d_model": 384, "n_layers": 6, "n_heads": 6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    seq = 256
    n_params = GPT(256).count_params(KNOBS, seq)[0]
    manifest = {
        "apiVersion": "flopsfit.dev/v1alpha1", "kind": "ScalingSweep", "metadata": {"name": "gpu-smoke"},
        "spec": {
            "model": {"plugin": "ff_plugins.gpt:GPT", "args": {"vocab_size": 256}},
            "data": {"plugin": "ff_plugins.text:TextData"},
            "budgets": [6 * n_params * 65536 * 300], "pointsPerBudget": 3,
            "tokensPerParam": {"min": 0.01, "max": 10000},
            "sizes": [{"name": "m", "knobs": KNOBS, "nParams": n_params}],
            "training": {"globalBatchTokens": 65536, "sequenceLength": seq, "learningRate": 1e-3,
                         "evalTokens": 65536, "compile": args.compile},
        },
    }
    experiment = plan_sweep(parse_sweep(manifest)).experiments[0]
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "sweep.json"
        sweep.write_text(json.dumps(manifest))
        proc = subprocess.run([sys.executable, "-m", "ff_trainer", "--sweep", str(sweep), "--experiment",
                               experiment.id, "--store", f"file://{tmp}/store"], capture_output=True, text=True)
        print("\n".join(proc.stderr.splitlines()[-4:]))
        print(f"exit {proc.returncode}")
        record = json.loads((Path(tmp) / "store" / "gpu-smoke" / experiment.id / "result.json").read_text())
    keys = ("device", "status", "n_params", "tokens", "eval_loss", "tokens_per_second", "mfu", "wall_seconds", "flops")
    print(json.dumps({k: record[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
