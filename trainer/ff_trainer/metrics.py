"""Throughput metrics: FLOPs per token measured by PyTorch's counter, and MFU against the GPU's dense peak."""

from __future__ import annotations

from torch.utils.flop_counter import FlopCounterMode

from ff_core.flops import H100_BF16_PEAK

# Dense bf16 tensor-core peaks in FLOP/s, by the vendors' datasheets (no sparsity).
PEAK_BF16 = {
    "H200": H100_BF16_PEAK,
    "H100 SXM": H100_BF16_PEAK, "H100 80GB HBM3": H100_BF16_PEAK, "H100 NVL": 835.5e12, "H100 PCIe": 756.5e12,
    "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "RTX 4090": 165.2e12,
}


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU named by torch.cuda.get_device_name, or None when unknown (or CPU)."""
    for key, value in sorted(PEAK_BF16.items(), key=lambda kv: -len(kv[0])):  # most specific first
        if key in device_name:
            return value
    if "H100" in device_name:
        return PEAK_BF16["H100 SXM"]
    return None


def mfu(flops_per_token: float, tokens_per_second: float, device_name: str, world_size: int) -> float | None:
    """Model FLOPs utilisation: achieved training FLOP/s over the peak of all GPUs in the job."""
    peak = peak_flops(device_name)
    if peak is None or tokens_per_second <= 0:
        return None
    return flops_per_token * tokens_per_second / (peak * world_size)


def measure_flops_per_token(model, loss_fn, inputs, targets, tokens: int) -> float:
    """Training FLOPs (forward + backward) of one micro-batch by torch's FlopCounterMode, per token.

    The gradients it leaves are cleared; no optimizer step is taken, so training is unchanged.
    """
    with FlopCounterMode(display=False) as counter:
        loss_fn(model(inputs), targets).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / tokens
