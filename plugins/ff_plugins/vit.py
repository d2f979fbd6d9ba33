"""A Vision Transformer for CIFAR-sized images; its knobs (width, depth, heads, patch size) form the family.

With images, the sweep counts a "token" as one image (spec.training.sequenceLength: 1), so D is the
number of training images and flopsPerToken is the FLOPs per image, from `vit_flops_per_image`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from ff_plugins.gpt import Block
from ff_plugins.meta import shapes_only

_KNOBS = ("width", "depth", "heads", "patch_size")


class ViTModule(nn.Module):
    """Images (B, 3, H, W) -> class logits (B, classes)."""

    def __init__(self, width: int, depth: int, heads: int, patch_size: int, image_size: int, classes: int,
                 mlp_ratio: int):
        super().__init__()
        patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_emb = nn.Parameter(torch.randn(1, patches + 1, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio * width, causal=False) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, patches, width)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos_emb
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))


def _check(knobs: Mapping[str, Any], image_size: int) -> tuple[int, int, int, int]:
    missing = [k for k in _KNOBS if k not in knobs]
    unknown = sorted(set(knobs) - set(_KNOBS))
    if missing or unknown:
        raise ValueError(f"ViT knobs: missing {missing}, unknown {unknown}; use {list(_KNOBS)}")
    width, depth, heads, patch = (int(knobs[k]) for k in _KNOBS)
    if width % heads:
        raise ValueError(f"ViT knobs: width ({width}) must be a multiple of heads ({heads})")
    if image_size % patch:
        raise ValueError(f"ViT knobs: patch_size ({patch}) must divide the image size ({image_size})")
    return width, depth, heads, patch


class ViT:
    """Model plugin: a ViT classifier for image_size x image_size RGB images."""

    def __init__(self, image_size: int = 32, classes: int = 10, mlp_ratio: int = 4):
        self.image_size, self.classes, self.mlp_ratio = image_size, classes, mlp_ratio

    def build(self, knobs: Mapping[str, Any], sequence_length: int) -> ViTModule:
        width, depth, heads, patch = _check(knobs, self.image_size)
        return ViTModule(width, depth, heads, patch, self.image_size, self.classes, self.mlp_ratio)

    def count_params(self, knobs: Mapping[str, Any], sequence_length: int) -> tuple[int, int]:
        with shapes_only():
            module = self.build(knobs, sequence_length)
        total = sum(p.numel() for p in module.parameters())
        patches = sum(p.numel() for p in module.patch_embed.parameters())
        embedding = patches + module.pos_emb.numel() + module.cls.numel()
        return total, total - embedding

    def flops_per_token(self, knobs: Mapping[str, Any], sequence_length: int) -> float:
        return vit_flops_per_image(knobs, sequence_length, self.image_size, self.classes, self.mlp_ratio)


def vit_flops_per_image(knobs: Mapping[str, Any], sequence_length: int = 1, image_size: int = 32,
                        classes: int = 10, mlp_ratio: int = 4) -> float:
    """Training FLOPs per image (3x the forward's matrix products: patch embedding, blocks, attention, head)."""
    width, depth, _, patch = _check(knobs, image_size)
    patches = (image_size // patch) ** 2
    tokens = patches + 1
    embed = 2 * (3 * patch * patch * width) * patches
    per_block = 2 * (4 * width * width + 2 * width * mlp_ratio * width) * tokens + 2 * 2 * tokens * tokens * width
    forward = embed + depth * per_block + 2 * width * classes
    return 3.0 * forward
