"""Plugins used only by tests, imported by trainer subprocesses through PYTHONPATH."""

from __future__ import annotations

import torch.nn.functional as F

_calls = {"n": 0}


def nan_after_ten(logits, targets):
    """Cross-entropy for ten calls, then NaN: a run that diverges part-way."""
    _calls["n"] += 1
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
    return loss * float("nan") if _calls["n"] > 10 else loss


class NotAModel:
    """Has build but no count_params: must be rejected by the protocol check."""

    def build(self, knobs, sequence_length):
        raise AssertionError("never called")


class OutOfMemoryGPT:
    """A GPT whose forward pass runs out of GPU memory, as a too-large micro-batch does."""

    def __init__(self, vocab_size: int = 256):
        from ff_plugins.gpt import GPT

        self.inner = GPT(vocab_size)

    def count_params(self, knobs, sequence_length):
        return self.inner.count_params(knobs, sequence_length)

    def build(self, knobs, sequence_length):
        import torch

        model = self.inner.build(knobs, sequence_length)

        def forward(idx):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        model.forward = forward
        return model


class BrokenData:
    """A data plugin whose constructor fails the way user code does (not a TypeError or ValueError)."""

    def __init__(self):
        raise RuntimeError("the dataset server is down")

    def batches(self, split, **kwargs):
        raise AssertionError("never called")
