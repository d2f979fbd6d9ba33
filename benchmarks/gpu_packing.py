"""Packing small experiments on one GPU: aggregate tokens/s and GPU busy fraction of k trainers sharing a device.

Scaling-law sweeps are mostly small models, and one small experiment alone leaves a GPU mostly idle (kernel
launches, the host, the optimizer's many small tensors). k separate trainer processes (our train(), eager,
the same model and batch each) share one GPU; after a warm-up each runs `--steps` steps from a common start
(a barrier), and the aggregate is k x steps x tokens per step over the time until the last one finishes.
The busy fraction samples the GPU's utilisation (NVML through torch, else nvidia-smi) during that window.
Target (issue 15): packing >= 2x the aggregate throughput of k = 1 at 10M parameters.
At the sizes in --vmap, the same k experiments also run vectorised in one process (benchmarks/vectorised.py:
torch.func stack_module_state + vmap, a bare loop: no evaluation at the end, so slightly favoured), to decide
whether that beats separate processes; first, the vectorised losses are checked against k separate loops on
the CPU (fp32).

Usage: python benchmarks/gpu_packing.py [--sizes 10M,3M,30M] [--packs 1,2,4,8] [--vmap 10M] [--out FILE]
[--smoke] (--smoke: a tiny model on the CPU with k = 1, 2, to check the script itself).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import subprocess
import threading
import time
import warnings

import torch

from ff_core.spec import Training
from ff_plugins.gpt import GPT
from step_timing import SIZES, VOCAB, Table, device_name, emit, ours
from vectorised import max_difference, vectorised


def _worker(knobs, vocab, cfg, steps, device_type, barrier, times):
    device = torch.device(device_type)
    torch.set_num_threads(1)
    ours(knobs, vocab, cfg, 2, device)  # warm-up: CUDA context, cuBLAS handles, allocator
    barrier.wait()
    began = time.perf_counter()
    ours(knobs, vocab, cfg, steps, device)
    times.put((began, time.perf_counter(), ""))


def _vmap_worker(knobs, vocab, cfg, steps, k, device_type, barrier, times):
    torch.set_num_threads(1)
    barrier.wait()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seconds = vectorised(knobs, vocab, cfg, k, steps, torch.device(device_type))  # timed after its warm-up
    ended = time.perf_counter()
    # an op without a batching rule runs once per model under vmap: the row says so, it is not vmap's best
    slow = sorted({str(w.message).split("batching rule for ")[1].split(".")[0] for w in caught
                   if "batching rule for " in str(w.message)})
    times.put((ended - seconds, ended, f" (no batching rule: {', '.join(slow)})" if slow else ""))


def utilisation() -> float | None:
    """The GPU's current utilisation in [0, 1], or None where it cannot be read."""
    try:
        return torch.cuda.utilization() / 100.0
    except Exception:
        pass
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i",
                              "0"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return float(out.stdout.split()[0]) / 100.0
    return None


def measure(name: str, k: int, args, device: torch.device, vmapped: bool = False) -> dict:
    cfg = Training(global_batch_tokens=args.batch * args.seq, sequence_length=args.seq, learning_rate=3e-4,
                   log_points=2, checkpoint_every_steps=10**9, eval_tokens=args.batch * args.seq)
    context = mp.get_context("spawn")
    workers = 1 if vmapped else k
    barrier, times = context.Barrier(workers + 1), context.Queue()
    if vmapped:
        procs = [context.Process(target=_vmap_worker, args=(SIZES[name], args.vocab, cfg, args.steps, k, device.type,
                                                             barrier, times))]
    else:
        procs = [context.Process(target=_worker, args=(SIZES[name], args.vocab, cfg, args.steps, device.type, barrier,
                                                        times)) for _ in range(k)]
    for proc in procs:
        proc.start()
    barrier.wait()
    samples, done = [], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            value = utilisation() if device.type == "cuda" else None
            if value is not None:
                samples.append(value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    spans = [times.get(timeout=3600) for _ in procs]
    done.set()
    for proc in procs:
        proc.join()
    wall = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return {"size": name, "k": k, "params": GPT(args.vocab).count_params(SIZES[name], args.seq)[0],
            "tok_s": k * args.steps * cfg.global_batch_tokens / wall,
            "busy": statistics.median(samples) if samples else None, "note": spans[0][2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10M,3M,30M", help="10M first: it carries the target")
    parser.add_argument("--packs", default="1,2,4,8", help="experiments per GPU to measure")
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8, help="sequences per step of each experiment")
    parser.add_argument("--steps", type=int, default=100, help="timed steps of each experiment")
    parser.add_argument("--vmap", default="10M", help="sizes also measured vectorised in one process ('' for none)")
    parser.add_argument("--vocab", type=int, default=VOCAB)
    parser.add_argument("--out", help="append the table (markdown) to this file")
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU: checks the script only")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.packs, args.seq, args.batch, args.steps, args.vmap = "smoke", "1,2", 32, 2, 4, "smoke"
        args.vocab = 512  # at GPT-2's, the readout is most of a tiny model's CPU time
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    title = (f"## Packing: k experiments on one GPU ({device_name(device)}, torch {torch.__version__}, seq "
             f"{args.seq}, vocabulary {args.vocab}, {args.batch} sequences/step each, {args.steps} steps each, eager)")
    packs = [int(v) for v in args.packs.split(",")]
    first = min(packs)
    vmap_sizes = [s for s in args.vmap.split(",") if s]
    if vmap_sizes:
        check = Training(global_batch_tokens=4 * 32, sequence_length=32, learning_rate=3e-3, eval_tokens=128)
        difference = max_difference(SIZES["smoke"], 256, check, 3, 5)
        emit(f"\nVectorised vs separate losses (CPU, fp32, 3 models, 5 steps): largest relative difference "
             f"{difference:.1e}", args.out)
    table = Table(title, ["size", "params", "k", "how", "aggregate tok/s", f"x of k={first} (processes)",
                          "GPU busy"], args.out)
    for name in args.sizes.split(","):
        base = None
        ways = [False] + ([True] if name in vmap_sizes else [])
        for k in sorted(packs):  # the smallest pack first: the others are compared with it, row by row
            for vmapped in ways:
                r = measure(name, k, args, device, vmapped)
                base = base or r["tok_s"]
                busy = f"{100 * r['busy']:.0f}%" if r["busy"] is not None else "n/a"
                how = "vmap, 1 process" + r["note"] if vmapped else "processes"
                table.row([name, f"{r['params'] / 1e6:.3g}M", str(k), how, f"{r['tok_s']:.0f}",
                           f"{r['tok_s'] / base:.2f}", busy])


if __name__ == "__main__":
    main()
