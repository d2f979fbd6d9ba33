"""FLOP accounting for planning: 6ND by default, a size's own flopsPerToken when given."""

from __future__ import annotations

# Forward + backward of a dense transformer: ~2N FLOPs per token forward, ~4N backward (Kaplan et al. 2020).
FLOPS_PER_PARAM_TOKEN = 6.0
# Dense bf16 tensor-core peak of an H100 SXM or H200 in FLOP/s (NVIDIA's datasheet, no sparsity): the default GPU
# of the cost estimate, and the trainer's MFU reference for those GPUs.
H100_BF16_PEAK = 989.4e12


def flops_per_token(n_params: int, flops_per_token_override: float | None = None) -> float:
    """Training FLOPs per token for a model of n_params parameters."""
    if flops_per_token_override is not None:
        return float(flops_per_token_override)
    return FLOPS_PER_PARAM_TOKEN * n_params


def training_flops(n_params: int, tokens: int, flops_per_token_override: float | None = None) -> float:
    """Total training FLOPs: flops_per_token(N) x D (6ND by default)."""
    return flops_per_token(n_params, flops_per_token_override) * tokens


def tokens_for_budget(budget: float, n_params: int, flops_per_token_override: float | None = None) -> float:
    """The D that spends a compute budget C on a model of n_params: D = C / flops_per_token(N)."""
    return budget / flops_per_token(n_params, flops_per_token_override)


def gpu_hours(total_flops: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """GPU-hours to spend `total_flops` at a model FLOPs utilisation `mfu` of a GPU's peak."""
    return total_flops / (peak_flops_per_gpu * mfu) / 3600.0
