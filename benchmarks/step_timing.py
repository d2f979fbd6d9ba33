"""Step timing shared by the benchmarks: our training loop and a bare PyTorch loop on the same GPT and batches."""

from __future__ import annotations

import tempfile
import time

import torch

from ff_core.spec import Training
from ff_core.store import FileStore
from ff_plugins.gpt import GPT
from ff_plugins.losses import cross_entropy
from ff_trainer.checkpoint import Checkpointer
from ff_trainer.train import Job, train
from ff_trainer.world import World


VOCAB = 50304  # GPT-2's 50257 rounded up to a multiple of 128 for tensor cores
SIZES = {  # the GPT sizes the GPU benchmarks measure (smoke: a tiny one that checks a script on the CPU)
    "3M": {"d_model": 64, "n_layers": 2, "n_heads": 2},
    "10M": {"d_model": 192, "n_layers": 4, "n_heads": 4},
    "30M": {"d_model": 384, "n_layers": 6, "n_heads": 6},
    "124M": {"d_model": 768, "n_layers": 12, "n_heads": 12},
    "350M": {"d_model": 1024, "n_layers": 24, "n_heads": 16},
    "smoke": {"d_model": 16, "n_layers": 1, "n_heads": 2},
}


class RandomTokens:
    """Data plugin of uniform random tokens (throughput does not depend on the text)."""

    def __init__(self, vocab: int):
        self.vocab = vocab

    def batches(self, split, *, sequence_length, batch_size, rank, world_size, seed, start=0):
        generator = torch.Generator().manual_seed(seed)
        while True:
            chunk = torch.randint(self.vocab, (batch_size // world_size, sequence_length + 1), generator=generator)
            yield chunk[:, :-1], chunk[:, 1:]


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def percent(value: float | None) -> str:
    return f"{100 * value:.1f}%" if value is not None else "n/a"


def emit(text: str, out: str | None = None) -> None:
    """Print a line, and append it to `out` when given."""
    print(text, flush=True)
    if out:
        with open(out, "a") as handle:
            handle.write(text + "\n")


class Table:
    """A markdown table printed row by row (and appended to `out` as it grows: a run cut short keeps its rows)."""

    def __init__(self, title: str, columns: list[str], out: str | None = None):
        self.out = out
        self._emit(f"\n{title}\n\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))

    def _emit(self, text: str) -> None:
        emit(text, self.out)

    def row(self, cells: list[str]) -> None:
        self._emit("| " + " | ".join(cells) + " |")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(knobs, vocab: int, cfg: Training, steps: int, device: torch.device) -> float:
    """Wall seconds of a whole train() call of `steps` steps (fresh model each time)."""
    best_practice(device)  # as the trainer's world setup does on a GPU
    torch.manual_seed(0)
    model = GPT(vocab).build(knobs, cfg.sequence_length)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Checkpointer(FileStore(tmp), "bench/latest.pt", True)
        sync(device)
        began = time.perf_counter()
        train(model, RandomTokens(vocab), cross_entropy, cfg, Job.run(steps, ckpt), World(0, 1, device))
        sync(device)
        return time.perf_counter() - began


def best_practice(device: torch.device) -> None:
    """What a fast PyTorch loop sets process-wide on a GPU: TF32 matrix products and convolutions."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")


def bare(knobs, vocab: int, cfg: Training, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per step of the best-known plain loop on the same model and batches: torch.compile over the
    model AND the loss (with cfg.compile), fused AdamW, bf16 autocast, TF32, SDPA (the model's attention),
    pinned non-blocking copies. Ours is measured against this, not against a slower loop."""
    best_practice(device)
    torch.manual_seed(0)
    model = GPT(vocab).build(knobs, cfg.sequence_length).to(device)

    def forward_loss(x, y):
        return cross_entropy(model(x), y)

    step = torch.compile(forward_loss) if cfg.compile else forward_loss
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.95),
                                  weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    stream = RandomTokens(vocab).batches("train", sequence_length=cfg.sequence_length,
                                         batch_size=cfg.global_batch_sequences, rank=0, world_size=1, seed=0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    pin = device.type == "cuda"
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            began = time.perf_counter()
        x, y = next(stream)
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        with autocast:
            loss = step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    return (time.perf_counter() - began) / steps
