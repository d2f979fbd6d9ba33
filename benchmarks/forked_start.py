"""What one trainer program costs from start to exit on this machine: forked from the warm fork server (what
`ffctl run` does) against a process of its own (FF_FORKSERVER=0, a Job's container). The program is
`ff_trainer.count --check` on the tests' tiny sweep: it builds every size, takes one step of the smallest, and
exits, so the figure is start-up and exit, not training. Medians of --repeats, one run, and their ratio.
On 2 cores: forked 0.762 s, its own process 2.477 s (x3.2); with the server's gc.freeze() taken out, forked
1.969 s against 2.236 s (x1.1): the child's exit copied the pages of everything the server had imported. With
each program skipping its last collection too (launch.skip_collection_at_exit): forked 0.768 s, its own 1.976 s.

Usage: python benchmarks/forked_start.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ff_core.launch import ForkServer

ROOT = Path(__file__).resolve().parents[1]


def tiny_sweep(folder: Path) -> Path:
    manifest = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    path = folder / "sweep.json"
    path.write_text(json.dumps(manifest))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        argv = ["--sweep", str(tiny_sweep(folder)), "--check"]
        began = time.perf_counter()
        server = ForkServer(quiet=True)
        assert server.serving(), "the fork server did not start"
        print(f"fork server ready in {time.perf_counter() - began:.2f} s (imports torch and the trainer once)")
        forked = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            child = server.fork("ff_trainer.count", argv, dict(os.environ), folder / "out", folder / "err", folder)
            assert child is not None and child.wait() == 0, (folder / "err").read_text()[-2000:]
            forked.append(time.perf_counter() - began)
        server.close()
        own = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ff_trainer.count", *argv], check=True, capture_output=True,
                           cwd=folder)
            own.append(time.perf_counter() - began)
    fork_s, own_s = statistics.median(forked), statistics.median(own)
    print(f"forked from the server: median {fork_s:.3f} s of {args.repeats} (min {min(forked):.3f}, max "
          f"{max(forked):.3f})")
    print(f"a process of its own:   median {own_s:.3f} s of {args.repeats} (min {min(own):.3f}, max {max(own):.3f})")
    print(f"ratio own / forked: {own_s / fork_s:.1f}")


if __name__ == "__main__":
    main()
