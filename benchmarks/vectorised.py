"""k same-shape experiments vectorised in one process (torch.func: stack_module_state + vmap): the alternative to
k packed trainer processes that issue 15 asks to measure before it is built into the trainer.

Each of the k models is a GPT of the same size with its own initialisation (seed i) and its own batches, as k
seeds of one experiment would be; their parameters are stacked into one tensor per parameter and the forward
pass, the loss and the backward pass run once for all k (vmap over functional_call). AdamW on the stacked
tensors is elementwise, so it is k AdamWs; gradient clipping takes each model's own norm. The losses equal
those of k separate loops up to rounding (`max_difference` checks it on the first steps).
"""

from __future__ import annotations

import copy
import time

import torch
from torch.func import functional_call, stack_module_state

from ff_core.spec import Training
from ff_plugins.gpt import GPT
from ff_plugins.losses import cross_entropy
from step_timing import RandomTokens, best_practice, sync


def _models(knobs, vocab: int, cfg: Training, k: int, device: torch.device) -> list[torch.nn.Module]:
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(GPT(vocab).build(knobs, cfg.sequence_length).to(device))
    return models


def _streams(vocab: int, cfg: Training, k: int):
    return [RandomTokens(vocab).batches("train", sequence_length=cfg.sequence_length,
                                        batch_size=cfg.global_batch_sequences, rank=0, world_size=1, seed=seed)
            for seed in range(k)]


def _clip(grads: list[torch.Tensor], max_norm: float) -> None:
    """Each model's own gradient norm clipped to max_norm (dimension 0 is the model)."""
    squares = sum(g.pow(2).flatten(1).sum(1) for g in grads)
    factor = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor.view(-1, *([1] * (g.dim() - 1))))


def vectorised(knobs, vocab: int, cfg: Training, k: int, steps: int, device: torch.device,
               losses: list | None = None) -> float:
    """Wall seconds of `steps` steps of k vectorised models (after one warm-up step); each step's k losses are
    appended to `losses` when given."""
    best_practice(device)
    models = _models(knobs, vocab, cfg, k, device)
    params, buffers = stack_module_state(models)
    shell = copy.deepcopy(models[0])  # its own tensors are replaced by the stacked ones in every call

    def one(p, b, x, y):
        return cross_entropy(functional_call(shell, (p, b), (x,)), y)

    step_losses = torch.vmap(one)
    optimizer = torch.optim.AdamW(params.values(), lr=cfg.learning_rate, betas=(0.9, 0.95),
                                  weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    streams = _streams(vocab, cfg, k)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for i in range(steps + 1):
        if i == 1:
            sync(device)
            began = time.perf_counter()
        batches = [next(s) for s in streams]
        x = torch.stack([b[0] for b in batches]).to(device, non_blocking=True)
        y = torch.stack([b[1] for b in batches]).to(device, non_blocking=True)
        with autocast:
            loss = step_losses(params, buffers, x, y)
        loss.sum().backward()
        if cfg.grad_clip:
            _clip([p.grad for p in params.values()], cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if losses is not None:
            losses.append(loss.detach().float().cpu().tolist())
    sync(device)
    return time.perf_counter() - began


def separate(knobs, vocab: int, cfg: Training, k: int, steps: int, device: torch.device) -> list[list[float]]:
    """The same k models and batches trained one after the other by a plain loop: each step's k losses."""
    models, streams = _models(knobs, vocab, cfg, k, device), _streams(vocab, cfg, k)
    curves = []
    for model, stream in zip(models, streams):
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.95),
                                      weight_decay=cfg.weight_decay)
        curve = []
        for _ in range(steps):
            x, y = next(stream)
            loss = cross_entropy(model(x.to(device)), y.to(device))
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            curve.append(loss.item())
        curves.append(curve)
    return [list(step) for step in zip(*curves)]


def max_difference(knobs, vocab: int, cfg: Training, k: int, steps: int) -> float:
    """The largest relative difference, over `steps` steps and k models on the CPU in fp32, between the
    vectorised losses and those of k separate loops."""
    cpu = torch.device("cpu")
    got: list[list[float]] = []
    vectorised(knobs, vocab, cfg, k, steps - 1, cpu, got)
    expected = separate(knobs, vocab, cfg, k, steps, cpu)
    return max(abs(a - b) / abs(b) for row_a, row_b in zip(got, expected) for a, b in zip(row_a, row_b))
