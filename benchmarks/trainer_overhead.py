"""Trainer overhead on the CPU: our training step against a bare PyTorch loop, same model, batch and optimizer.

Our per-step time is (time of an L-step train() - time of an S-step train()) / (L - S), which cancels
start-up and the final evaluation; the bare loop is timed after warm-up steps. Medians of --repeats, one run.
Target: ours / bare <= 1.05.
Usage: python benchmarks/trainer_overhead.py [--repeats 5] [--steps 60]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ff_core.spec import Training
from step_timing import bare, ours

KNOBS = {"d_model": 128, "n_layers": 4, "n_heads": 4}  # ~0.8M parameters with byte-level tokens
VOCAB = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    cfg = Training(global_batch_tokens=16 * 128, sequence_length=128, log_points=2, checkpoint_every_steps=10**9,
                   eval_tokens=16 * 128)
    short, long = args.steps // 4, args.steps
    ours(KNOBS, VOCAB, cfg, short, device)  # warm-up
    ours_steps = [(ours(KNOBS, VOCAB, cfg, long, device) - ours(KNOBS, VOCAB, cfg, short, device)) / (long - short)
                  for _ in range(args.repeats)]
    bare_steps = [bare(KNOBS, VOCAB, cfg, args.steps, 5, device) for _ in range(args.repeats)]
    o, b = statistics.median(ours_steps), statistics.median(bare_steps)
    print(f"GPT {KNOBS}, vocab {VOCAB}, 16 x 128 tokens/step, {args.threads} thread(s), medians of {args.repeats}")
    print(f"ours: {1000 * o:.2f} ms/step   bare: {1000 * b:.2f} ms/step   ours/bare: {o / b:.3f}")


if __name__ == "__main__":
    main()
