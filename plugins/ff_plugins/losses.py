"""Built-in losses: callables from (model output, targets) to a scalar tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy in nats; logits (B, T, V) or (B, V), targets (B, T) or (B,)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))


cross_entropy.token_cross_entropy = True  # the trainer may take it with the readout, in chunks (fusedReadout)


def mse(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(output.float(), targets.float())
