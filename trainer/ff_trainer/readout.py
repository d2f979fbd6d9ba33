"""The readout and its cross-entropy taken chunk by chunk: the (tokens x vocabulary) logits never exist whole.

At a large vocabulary the logits are most of a small model's activations: at vocabulary 50k and 32k tokens per
forward pass they are 1.6e9 numbers (3.3 GB in bf16, then their fp32 copy and their gradient), whatever the
model's size. Here each chunk of tokens gets its logits, its summed loss and at once the gradients of that loss
with respect to its hidden states and to the readout weight (the loss is a scalar, so they are known in the
forward pass); only those are kept. Memory: one chunk's logits plus a copy of the hidden states and of the
weight, instead of all the logits. The numbers are those of logits -> cross-entropy up to rounding.

A model offers it with two methods beside forward: `features(x)` (the hidden states the readout reads, (..., d))
and `readout()` -> (weight (V, d), scale), so that forward(x) == scale * features(x) @ weight.T. A loss offers
it by being mean token cross-entropy with targets -100 ignored, said by its attribute `token_cross_entropy`
(the built-in ff_plugins.losses.cross_entropy). The trainer uses it when the spec sets training.fusedReadout.
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE = -100  # the target that counts for nothing, as in torch's cross_entropy


def missing(model: Any, loss_fn: Any) -> list[str]:
    """What a model and loss lack for the fused readout (empty: they have it all)."""
    gaps = [f"the model's {name}()" for name in ("features", "readout") if not callable(getattr(model, name, None))]
    if not getattr(loss_fn, "token_cross_entropy", False):
        gaps.append("a loss that is token cross-entropy (the built-in ff_plugins.losses:cross_entropy)")
    return gaps


def chunk_tokens(tokens: int, width: int, vocab: int) -> int:
    """Tokens per chunk: a chunk's logits about as large as the hidden states, and at least 16M numbers."""
    return max(1, min(tokens, max(tokens * width, 1 << 24) // vocab))


def _chunk(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, scale: float, grads: bool):
    """One chunk: the sum of its token losses and (with `grads`) their gradients with respect to the chunk's
    hidden states and to the weight. Products in the inputs' dtype, the softmax in fp32; the scale and the
    ignored tokens are applied on the (tokens x d) side, never as a pass over the (tokens x V) logits."""
    scaled = hidden * scale if scale != 1.0 else hidden
    log_p = torch.log_softmax(scaled @ weight.t(), dim=-1, dtype=torch.float32)
    valid = targets != IGNORE
    safe = torch.where(valid, targets, 0)
    losses = -log_p.gather(1, safe[:, None]).squeeze(1) * valid
    if not grads:
        return losses.sum(), None, None
    # d(sum of losses)/d(logits) = softmax - one-hot (rows of ignored tokens are dropped below)
    d_logits = log_p.exp_()
    d_logits.scatter_add_(1, safe[:, None], torch.full_like(losses[:, None], -1.0))
    d_logits = d_logits.to(hidden.dtype)
    keep = valid[:, None].to(hidden.dtype)
    return losses.sum(), (d_logits @ weight) * (keep * scale), (d_logits.t() @ (scaled * keep)).float()


class _FusedReadout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, scale, chunk, step):
        count = (targets != IGNORE).sum().clamp(min=1)
        dtype = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(hidden.device.type) \
            else hidden.dtype
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            d_hidden = torch.empty_like(hidden)
            d_weight = torch.zeros_like(weight, dtype=torch.float32)
            for start in range(0, h.size(0), chunk):
                part = slice(start, start + chunk)
                loss, d_h, d_w = step(h[part], w, targets[part], scale, True)
                total += loss
                d_hidden[part] = d_h
                d_weight += d_w
        ctx.save_for_backward(d_hidden, d_weight.to(weight.dtype), count)
        return total / count

    @staticmethod
    def backward(ctx, grad):
        d_hidden, d_weight, count = ctx.saved_tensors
        factor = grad / count
        return d_hidden * factor, d_weight * factor, None, None, None, None


def linear_cross_entropy(features: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, scale: float = 1.0,
                         step=_chunk, chunk: int | None = None) -> torch.Tensor:
    """Mean token cross-entropy of the logits scale * features @ weight.T against targets (-100 ignored),
    computed `chunk` tokens at a time (default chunk_tokens). features (..., d), weight (V, d), targets (...).
    `step` computes a training chunk (StepLoss's is compiled); without gradients (evaluation, a few batches a
    run) the chunks are eager: compiling them too would be a second compilation of every shape."""
    hidden, flat = features.reshape(-1, features.size(-1)), targets.reshape(-1)
    chunk = chunk or chunk_tokens(hidden.size(0), hidden.size(1), weight.size(0))
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _FusedReadout.apply(hidden, weight, flat, scale, chunk, step)
    total = sum(_chunk(hidden[s:s + chunk], weight.to(hidden.dtype), flat[s:s + chunk], scale, False)[0]
                for s in range(0, hidden.size(0), chunk))
    return total / (flat != IGNORE).sum().clamp(min=1)


class StepLoss(torch.nn.Module):
    """The loss of one micro-batch as a module (what DDP wraps and torch.compile compiles): the model's output
    through the plugin's loss, or with `fused` the chunked readout of the model's features."""

    def __init__(self, model: torch.nn.Module, loss_fn, fused: bool = False, compile: bool = False):
        super().__init__()
        self.model, self.loss_fn, self.fused = model, loss_fn, fused
        self.step = torch.compile(_chunk, dynamic=False) if fused and compile else _chunk
        # Under torch.compile the readout's loop of chunks stays eager (`step` is compiled on its own); the
        # wrapper is made only then, as torch.compiler.disable imports torch._dynamo (1 s of every start-up).
        self.readout = torch.compiler.disable(linear_cross_entropy) if fused and compile else linear_cross_entropy

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return self.loss_fn(self.model(x), y)
        weight, scale = self.model.readout()
        return self.readout(self.model.features(x), weight, y, scale, self.step)
