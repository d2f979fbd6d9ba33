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
from ff_trainer.train import train
from ff_trainer.world import World


class RandomTokens:
    """Data plugin of uniform random tokens (throughput does not depend on the text)."""

    def __init__(self, vocab: int):
        self.vocab = vocab

    def batches(self, split, *, sequence_length, batch_size, rank, world_size, seed, start=0):
        generator = torch.Generator().manual_seed(seed)
        while True:
            chunk = torch.randint(self.vocab, (batch_size // world_size, sequence_length + 1), generator=generator)
            yield chunk[:, :-1], chunk[:, 1:]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(knobs, vocab: int, cfg: Training, steps: int, device: torch.device) -> float:
    """Wall seconds of a whole train() call of `steps` steps (fresh model each time)."""
    torch.manual_seed(0)
    model = GPT(vocab).build(knobs, cfg.sequence_length)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Checkpointer(FileStore(tmp), "bench/latest.pt", True)
        sync(device)
        began = time.perf_counter()
        train(model, RandomTokens(vocab), cross_entropy, cfg, steps, World(0, 1, device), ckpt)
        sync(device)
        return time.perf_counter() - began


def bare(knobs, vocab: int, cfg: Training, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per step of the plainest loop with the same model, batches and optimizer."""
    torch.manual_seed(0)
    model = GPT(vocab).build(knobs, cfg.sequence_length).to(device)
    forward = torch.compile(model) if cfg.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.95),
                                  weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    stream = RandomTokens(vocab).batches("train", sequence_length=cfg.sequence_length,
                                         batch_size=cfg.global_batch_sequences, rank=0, world_size=1, seed=0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            began = time.perf_counter()
        x, y = next(stream)
        with autocast:
            loss = cross_entropy(forward(x.to(device, non_blocking=True)), y.to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    return (time.perf_counter() - began) / steps
