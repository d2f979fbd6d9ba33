"""A decoder-only transformer (GPT-2 style, pre-norm, tied embeddings) whose size knobs form the family.

`parameterization="mup"` (with `base_width`) is muP (Yang et al. 2022, Tensor Programs V), so that the learning
rate tuned at one width carries to the others: hidden matrices are initialised with variance ~ 1/width and get
Adam learning rates scaled by base_width / d_model (through the trainer's `lr_scale` groups); attention logits
are scaled by 1/d_head instead of 1/sqrt(d_head); the (tied) readout is multiplied by base_width / d_model.
At d_model == base_width the model is the standard one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ff_plugins.meta import shapes_only

_KNOBS = ("d_model", "n_layers", "n_heads")


class SelfAttention(nn.Module):
    """Multi-head self-attention through SDPA (flash attention on GPUs); causal for language models.
    `scale` multiplies q.k (None: 1/sqrt(d_head), the standard one)."""

    def __init__(self, d_model: int, n_heads: int, causal: bool = True, scale: float | None = None):
        super().__init__()
        self.n_heads, self.causal, self.scale = n_heads, causal, scale
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        # (B, T, 3C) -> three (B, heads, T, C/heads)
        q, k, v = self.qkv(x).view(batch, seq, 3, self.n_heads, width // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(batch, seq, width))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, causal: bool = True, scale: float | None = None):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, causal, scale)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPTModule(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab)."""

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_seq: int, d_ff: int,
                 base_width: int | None = None):
        super().__init__()
        # muP: width multiplier m = d_model / base_width (None: standard parameterization, m = 1 throughout)
        self.width_mult = d_model / base_width if base_width else 1.0
        d_head, base_head = d_model // n_heads, (base_width or d_model) // n_heads
        scale = math.sqrt(base_head) / d_head if base_width else None  # 1/d_head, equal to SP's at the base
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_seq, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, scale=scale) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied: counted once, as an embedding
        self.apply(self._init)
        hidden_std = 0.02 / math.sqrt(self.width_mult)  # muP: variance ~ 1/fan_in for hidden matrices
        for name, param in self.named_parameters():
            if name.startswith("blocks.") and param.dim() >= 2:
                nn.init.normal_(param, std=hidden_std)
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                # GPT-2: residual projections scaled so the residual stream's variance stays put with depth
                nn.init.normal_(param, std=hidden_std / math.sqrt(2 * n_layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """The hidden states (B, T, d_model) the readout reads."""
        positions = torch.arange(idx.size(1), device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(positions)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def readout(self) -> tuple[torch.Tensor, float]:
        """(weight, scale): forward(idx) == scale * features(idx) @ weight.T (the trainer's fused readout)."""
        return self.lm_head.weight, 1.0 / self.width_mult  # muP readout: 1/m

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(self.features(idx))
        return logits / self.width_mult if self.width_mult != 1.0 else logits


class GPT:
    """Model plugin: knobs d_model, n_layers, n_heads (and optional d_ff, default 4 x d_model).

    args: vocab_size; parameterization "standard" (default) or "mup" with base_width (the width the learning
    rate was tuned at)."""

    def __init__(self, vocab_size: int = 256, parameterization: str = "standard", base_width: int | None = None):
        if parameterization not in ("standard", "mup"):
            raise ValueError(f"GPT parameterization {parameterization!r}: use 'standard' or 'mup'")
        if parameterization == "mup" and not (isinstance(base_width, int) and base_width > 0):
            raise ValueError("GPT parameterization 'mup' needs base_width: the d_model the learning rate was tuned at")
        self.vocab_size = vocab_size
        self.base_width = base_width if parameterization == "mup" else None

    def _module(self, knobs: Mapping[str, Any], sequence_length: int) -> GPTModule:
        missing = [k for k in _KNOBS if k not in knobs]
        unknown = sorted(set(knobs) - set(_KNOBS) - {"d_ff"})
        if missing or unknown:
            raise ValueError(f"GPT knobs: missing {missing}, unknown {unknown}; use {list(_KNOBS)} and optional d_ff")
        d_model, n_heads = int(knobs["d_model"]), int(knobs["n_heads"])
        if d_model % n_heads:
            raise ValueError(f"GPT knobs: d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        d_ff = int(knobs.get("d_ff", 4 * d_model))
        return GPTModule(self.vocab_size, d_model, int(knobs["n_layers"]), n_heads, sequence_length, d_ff,
                         self.base_width)

    def build(self, knobs: Mapping[str, Any], sequence_length: int) -> GPTModule:
        return self._module(knobs, sequence_length)

    def param_groups(self, model: GPTModule) -> list[dict] | None:
        """Under muP, optimizer groups: hidden matrices learn at lr x base_width / d_model; embeddings (the tied
        readout too) at the base rate; vectors (biases, norms) do not decay. None (the trainer's default
        groups: matrices decay, vectors do not) for the standard parameterization."""
        if self.base_width is None:
            return None
        hidden, embeddings, vectors = [], [], []
        for name, param in model.named_parameters():
            (hidden if name.startswith("blocks.") and param.dim() >= 2 else
             embeddings if param.dim() >= 2 else vectors).append(param)
        return [{"params": hidden, "lr_scale": 1.0 / model.width_mult},
                {"params": embeddings, "lr_scale": 1.0},
                {"params": vectors, "lr_scale": 1.0, "weight_decay": 0.0}]

    def flops_per_token(self, knobs: Mapping[str, Any], sequence_length: int) -> float:
        """Exact training FLOPs per token (optional in the ModelPlugin protocol)."""
        return transformer_flops_per_token(knobs, sequence_length, self.vocab_size)

    def count_params(self, knobs: Mapping[str, Any], sequence_length: int) -> tuple[int, int]:
        with shapes_only():
            module = self._module(knobs, sequence_length)
        total = sum(p.numel() for p in module.parameters())
        embedding = module.tok_emb.weight.numel() + module.pos_emb.weight.numel()
        return total, total - embedding


def transformer_flops_per_token(knobs: Mapping[str, Any], sequence_length: int, vocab_size: int = 256) -> float:
    """Training FLOPs per token of the GPT above, counted exactly for its matrix products (Chinchilla App. F).

    Forward, per token: 2 FLOPs per weight of every linear layer (QKV and output projections, the MLP,
    the LM head) plus attention over the sequence (QK^T and the weighted sum of V: 2 * 2 * T * d per layer,
    counted over the full T as Hoffmann et al. do). Backward is twice the forward. Embedding lookups,
    norms, biases and softmax are left out (under 1% at these widths).
    """
    d, layers = int(knobs["d_model"]), int(knobs["n_layers"])
    d_ff = int(knobs.get("d_ff", 4 * d))
    per_layer = 2 * (4 * d * d + 2 * d * d_ff) + 2 * 2 * sequence_length * d
    forward = layers * per_layer + 2 * d * vocab_size
    return 3.0 * forward
