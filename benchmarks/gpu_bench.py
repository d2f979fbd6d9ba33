"""Every GPU measurement in one call (`make bench-gpu`): throughput (ours vs the best-practice bare loop at 30M,
124M and 350M), packing (k = 1, 2, 4, 8 experiments on one GPU at 3M, 10M and 30M; at 10M also vectorised in
one process with torch.func), then variants of the step against logits -> cross-entropy (the fused readout,
contiguous q/k/v: time and memory of a compiled step at 30M, vocabulary 50k). Each table is appended to one
markdown file row by row, each script runs under its own time limit so the whole fits 8 minutes, and a run
cut short keeps the rows it finished.

Usage: python benchmarks/gpu_bench.py [--out bench-gpu.md] [--smoke]   (--smoke: tiny models on the CPU)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script, seconds it may take on one H100/H200): 8 minutes in all, the device tool's most per call
SCRIPTS = (("gpu_throughput.py", 225), ("gpu_packing.py", 165), ("step_variants.py", 90))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-gpu.md")
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU: checks the scripts only")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.write_text("# flops-fit GPU benchmarks\n")
    log = out.with_suffix(".log")  # the scripts' stderr (every trainer's step lines)
    log.write_text("")
    failed = 0
    for script, limit in SCRIPTS:
        began = time.monotonic()
        command = [sys.executable, str(HERE / script), "--out", str(out)] + (["--smoke"] if args.smoke else [])
        command += ["--sizes", "30M"] if script == "step_variants.py" and not args.smoke else []
        print("$ " + " ".join(command), flush=True)
        try:
            with log.open("a") as errors:
                done = subprocess.run(command, cwd=HERE, timeout=limit, stdout=subprocess.DEVNULL, stderr=errors)
            failed += done.returncode != 0
            note = f"exit {done.returncode}"
        except subprocess.TimeoutExpired:
            failed += 1
            note = f"stopped at its {limit} s limit: the rows above are the ones it finished"
        with out.open("a") as handle:
            handle.write(f"\n({script}: {time.monotonic() - began:.0f} s, {note})\n")
    print(out.read_text())
    if failed:
        print("".join(log.read_text().splitlines(keepends=True)[-40:]))
    print(f"tables: {out} (stderr: {log})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
