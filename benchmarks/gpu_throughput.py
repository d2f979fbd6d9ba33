"""GPU throughput of the trainer: tokens/s and MFU for GPT at ~30M, 124M and 350M parameters, sequence 1024.

Our training loop (ff_trainer.train.train) and the best-known bare PyTorch loop (step_timing.bare:
torch.compile over model and loss, fused AdamW, bf16 autocast, TF32, SDPA, pinned non-blocking copies) run
side by side in one process, with the same model and batches.
Our per-step time is the difference of two runs of different lengths divided by the extra steps, which
cancels start-up, compilation and the final evaluation. MFU counts the model's exact training FLOPs per
token (matrix products and attention, as ff_plugins.gpt.transformer_flops_per_token) against the GPU's
dense bf16 peak (ff_trainer.metrics.PEAK_BF16).

Targets (issue 15): ours >= the bare loop at every size; >= 45% MFU at 124M compiled on an H100.
Usage: python benchmarks/gpu_throughput.py [--sizes 30M,124M,350M] [--compile 124M] [--out FILE]
[--smoke] (--smoke: a tiny model on the CPU, to check the script itself; --out appends the table to FILE).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ff_core.spec import Training
from ff_plugins.gpt import GPT, transformer_flops_per_token
from ff_trainer.metrics import peak_flops
from step_timing import SIZES, VOCAB, Table, bare, device_name, ours, percent


def measure(name: str, compiled: bool, device: torch.device, args) -> dict:
    knobs = SIZES[name]
    seq = args.seq
    cfg = Training(global_batch_tokens=args.batch * seq, sequence_length=seq, learning_rate=3e-4,
                   log_points=2, checkpoint_every_steps=10**9, eval_tokens=args.batch * seq, compile=compiled)
    short, long = args.steps // 4, args.steps
    repeats = 1 if compiled else args.repeats  # compilation dominates the cost of a compiled repeat
    vocab = args.vocab
    ours(knobs, vocab, cfg, short, device)  # warm up (CUDA context, cuBLAS, compilation) outside the timed runs
    ours_runs = [ours(knobs, vocab, cfg, long, device) - ours(knobs, vocab, cfg, short, device) for _ in range(repeats)]
    ours_step = statistics.median(ours_runs) / (long - short)
    bare_step = statistics.median(bare(knobs, vocab, cfg, args.steps, 5, device) for _ in range(repeats))
    tokens = cfg.global_batch_tokens
    n_params = GPT(vocab).count_params(knobs, seq)[0]
    fpt = transformer_flops_per_token(knobs, seq, vocab)
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    row = {"size": name, "params": n_params, "compile": compiled, "ours_tok_s": tokens / ours_step,
           "bare_tok_s": tokens / bare_step, "ratio": ours_step / bare_step}
    row["ours_mfu"] = fpt * row["ours_tok_s"] / peak if peak else None
    row["bare_mfu"] = fpt * row["bare_tok_s"] / peak if peak else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30M,124M,350M")
    parser.add_argument("--compile", default="124M",
                        help="sizes also measured under torch.compile ('' for none)")
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=VOCAB)
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU: checks the script only")
    parser.add_argument("--out", help="append the table (markdown) to this file")
    args = parser.parse_args()
    if args.smoke:
        # a small vocabulary too: at GPT-2's, the readout is most of a tiny model's CPU time
        args.sizes, args.compile, args.seq, args.batch, args.steps, args.repeats = "smoke", "", 64, 4, 8, 1
        args.vocab = 512
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    title = (f"## Throughput: ours vs the best-practice bare loop ({device_name(device)}, torch {torch.__version__}, "
             f"seq {args.seq}, vocabulary {args.vocab}, {args.batch} sequences/step, medians of {args.repeats})")
    table = Table(title, ["size", "params", "compile", "ours tok/s", "bare tok/s", "ours/bare time", "ours MFU",
                          "bare MFU"], args.out)
    # the compiled rows first: they carry the MFU target, and a run cut short at its time limit keeps them
    plan = [(s, True) for s in args.compile.split(",") if s] + [(s, False) for s in args.sizes.split(",")]
    for name, compiled in plan:
        r = measure(name, compiled, device, args)
        table.row([r["size"], f"{r['params'] / 1e6:.3g}M", str(r["compile"]), f"{r['ours_tok_s']:.0f}",
                   f"{r['bare_tok_s']:.0f}", f"{r['ratio']:.3f}", percent(r["ours_mfu"]), percent(r["bare_mfu"])])


if __name__ == "__main__":
    main()
