"""Variants of one training step, against the trainer's default (logits -> cross-entropy): its time and its peak
memory, GPT at a 50k vocabulary. The variants:
- fused: the fused readout (training.fusedReadout: readout and cross-entropy chunk by chunk);
- contiguous-qkv: q, k and v copied to contiguous tensors before attention (the default hands SDPA strided
  views of the one qkv projection, which flash attention reads in place); measured before the GPT adopts it.

Each variant runs in a fresh process: the step unit the trainer uses (ff_trainer.readout.StepLoss: forward,
loss and backward of one micro-batch, then AdamW), warmed up, then timed over --steps steps (median). Peak
memory is what the step adds: on a GPU above the model and optimizer state (torch.cuda.max_memory_allocated),
on the CPU above the model (the process's peak resident size, getrusage; the optimizer's state counts in both).
On a GPU every variant is compiled (training.compile) and runs under bf16 autocast, as the trainer does.

Usage: python benchmarks/step_variants.py [--sizes 10M,30M] [--variants fused,contiguous-qkv] [--tokens 32768]
[--seq 1024] [--out FILE] [--smoke] (--smoke: a tiny model, to check the script itself).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

import ff_plugins.gpt as gpt
from ff_plugins.gpt import GPT
from ff_plugins.losses import cross_entropy
from ff_trainer.readout import StepLoss
from step_timing import SIZES, VOCAB, Table, best_practice, device_name, sync


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _contiguous_attention(self, x: torch.Tensor) -> torch.Tensor:
    """gpt.SelfAttention.forward with q, k and v each copied to a contiguous (B, heads, T, d_head) tensor."""
    batch, seq, width = x.shape
    q, k, v = (t.contiguous() for t in self.qkv(x).view(batch, seq, 3, self.n_heads, width // self.n_heads)
               .permute(2, 0, 3, 1, 4))
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)
    return self.proj(y.transpose(1, 2).reshape(batch, seq, width))


def one(size: str, variant: str, tokens: int, seq: int, steps: int, vocab: int) -> dict:
    """In this process: seconds per step (median) and the bytes the step adds at its peak."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fused = variant == "fused"
    if variant == "contiguous-qkv":
        gpt.SelfAttention.forward = _contiguous_attention  # this process only
    best_practice(device)
    torch.manual_seed(0)
    model = GPT(vocab).build(SIZES[size], seq).to(device)
    unit = StepLoss(model, cross_entropy, fused=fused, compile=device.type == "cuda")
    step = torch.compile(unit) if device.type == "cuda" else unit
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=device.type == "cuda")
    x = torch.randint(vocab, (tokens // seq, seq), device=device)
    y = torch.randint(vocab, (tokens // seq, seq), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def train_step() -> float:
        with autocast:
            loss = step(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    cpu_base = _peak_bytes(device)  # the CPU's peak cannot be reset: it is taken from before the first step
    train_step()  # compile, allocate the optimizer's state
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else cpu_base
    times, losses = [], []
    for _ in range(steps):
        began = time.perf_counter()
        losses.append(train_step())
        sync(device)
        times.append(time.perf_counter() - began)
    return {"step_s": statistics.median(times), "peak_bytes": _peak_bytes(device) - base,
            "loss": float(losses[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10M,30M")
    parser.add_argument("--variants", default="fused,contiguous-qkv", help="measured against logits")
    parser.add_argument("--tokens", type=int, default=32768, help="tokens per forward pass")
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--vocab", type=int, default=VOCAB)
    parser.add_argument("--smoke", action="store_true", help="a tiny model: checks the script only")
    parser.add_argument("--out", help="append the table (markdown) to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: size,variant in this process
    args = parser.parse_args()
    if args.one:
        size, variant = args.one.split(",")
        print(json.dumps(one(size, variant, args.tokens, args.seq, args.steps, args.vocab)))
        return
    if args.smoke:
        args.sizes, args.tokens, args.seq, args.steps, args.vocab = "smoke", 256, 64, 2, 512
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    title = (f"## Step variants against logits -> cross-entropy ({device_name(device)}, torch {torch.__version__}, "
             f"vocabulary {args.vocab}, {args.tokens} tokens per forward pass, "
             f"{'compiled, bf16' if device.type == 'cuda' else 'eager, fp32'}, median of {args.steps} steps)")
    table = Table(title, ["size", "variant", "s/step", "x logits time", "step memory", "x logits memory",
                          "first-loss difference"], args.out)
    for size in args.sizes.split(","):
        base = None
        for variant in ["logits"] + [v for v in args.variants.split(",") if v]:
            command = [sys.executable, __file__, "--one", f"{size},{variant}", "--tokens", str(args.tokens),
                       "--seq", str(args.seq), "--steps", str(args.steps), "--vocab", str(args.vocab)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            run = json.loads(done.stdout.splitlines()[-1])
            base = base or run
            table.row([size, variant, f"{run['step_s']:.4f}", f"{run['step_s'] / base['step_s']:.2f}",
                       f"{run['peak_bytes'] / 2**20:.0f} MiB", f"{run['peak_bytes'] / max(base['peak_bytes'], 1):.2f}",
                       f"{abs(run['loss'] - base['loss']) / base['loss']:.1e}"])

if __name__ == "__main__":
    main()
