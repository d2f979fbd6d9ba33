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


class GPTFitsFour(OutOfMemoryGPT):
    """A GPT that runs out of GPU memory with more than 4 sequences per forward pass."""

    def build(self, knobs, sequence_length):
        import torch

        model = self.inner.build(knobs, sequence_length)
        forward = model.forward

        def limited(idx):
            if idx.shape[0] > 4:
                raise torch.cuda.OutOfMemoryError(f"CUDA out of memory with {idx.shape[0]} sequences")
            return forward(idx)

        model.forward = limited
        return model


class CrashTwiceGPT(OutOfMemoryGPT):
    """A GPT whose first two builds of a d_model 24 model crash the process (exit 1, a retryable fault, as a
    node's hiccup would); the files named crash-0 and crash-1 in $FF_CRASH_DIR count them across processes."""

    def build(self, knobs, sequence_length):
        import os

        if knobs["d_model"] == 24:
            for i in range(2):
                try:
                    os.close(os.open(os.path.join(os.environ["FF_CRASH_DIR"], f"crash-{i}"),
                                     os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    continue
                os._exit(1)
        return self.inner.build(knobs, sequence_length)


class BrokenData:
    """A data plugin whose constructor fails the way user code does (not a TypeError or ValueError)."""

    def __init__(self):
        raise RuntimeError("the dataset server is down")

    def batches(self, split, **kwargs):
        raise AssertionError("never called")


class NumpyBatches:
    """Yields numpy arrays instead of tensors (a common first plugin)."""

    def batches(self, split, *, sequence_length, batch_size, rank, world_size, seed, start=0):
        import numpy as np

        while True:
            yield np.zeros((batch_size, sequence_length), dtype=np.int64), np.zeros((batch_size, sequence_length),
                                                                                     dtype=np.int64)


class NoEvalData:
    """A train split and an empty eval split."""

    def batches(self, split, *, sequence_length, batch_size, rank, world_size, seed, start=0):
        import torch

        while split == "train":
            x = torch.zeros((batch_size, sequence_length), dtype=torch.long)
            yield x, x


class RegressionTargets:
    """Token inputs with floating-point targets: fine for mse, wrong for the default cross-entropy."""

    def batches(self, split, *, sequence_length, batch_size, rank, world_size, seed, start=0):
        import torch

        while True:
            yield torch.zeros((batch_size, sequence_length), dtype=torch.long), torch.rand(batch_size, sequence_length)


def per_token_loss(logits, targets):
    """Cross-entropy left unreduced: one value per token, not a scalar."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")


class GPTNarrowOnly:
    """The GPT plugin, except that sizes wider than d_model 16 fail to build (the count still works): a
    failure the one-step preflight, which builds only the smallest size, cannot see."""

    def __init__(self, vocab_size: int = 256):
        from ff_plugins.gpt import GPT

        self.inner = GPT(vocab_size)

    def count_params(self, knobs, sequence_length):
        return self.inner.count_params(knobs, sequence_length)

    def build(self, knobs, sequence_length):
        if knobs["d_model"] > 16:
            raise ValueError("sizes wider than 16 are not built here")
        return self.inner.build(knobs, sequence_length)


class FiniteData:
    """Three batches, then nothing: an epoch without a loop around it."""

    def batches(self, split, *, sequence_length, batch_size, rank, world_size, seed, start=0):
        import torch

        for _ in range(3):
            x = torch.randint(0, 256, (batch_size // world_size, sequence_length))
            yield x, x


def plain_cross_entropy(logits, targets):
    """Cross-entropy that does not say so (no `token_cross_entropy`): not taken by the fused readout."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


class GPTReadoutOff(OutOfMemoryGPT):
    """A GPT whose forward adds a bias the readout() it offers does not know: the fused loss would be wrong."""

    def build(self, knobs, sequence_length):
        import torch

        model = self.inner.build(knobs, sequence_length)
        forward = model.forward
        model.forward = lambda idx: (logits := forward(idx)) + 2.0 * (torch.arange(logits.size(-1)) % 3 == 0)
        return model


class GPTWithoutFeatures(OutOfMemoryGPT):
    """A GPT inside a wrapper that only has forward: no features() or readout() for the fused readout."""

    def build(self, knobs, sequence_length):
        import torch

        return torch.nn.Sequential(self.inner.build(knobs, sequence_length))


class RegressionPerToken:
    """Floating-point targets of shape (batch, sequence, 1): an mse loss broadcasts them against the logits."""

    def batches(self, split, *, sequence_length, batch_size, rank, world_size, seed, start=0):
        import torch

        while True:
            yield (torch.zeros((batch_size, sequence_length), dtype=torch.long),
                   torch.rand(batch_size, sequence_length, 1))


class GPTMiscounted(OutOfMemoryGPT):
    """count_params one more than the model build() makes."""

    def count_params(self, knobs, sequence_length):
        total, non_embedding = self.inner.count_params(knobs, sequence_length)
        return total + 1, non_embedding + 1

    def build(self, knobs, sequence_length):
        return self.inner.build(knobs, sequence_length)


class GPTCountsOneInt(GPTMiscounted):
    def count_params(self, knobs, sequence_length):
        return self.inner.count_params(knobs, sequence_length)[0]


class GPTCountRaises(GPTMiscounted):
    def count_params(self, knobs, sequence_length):
        raise RuntimeError("no such table: layer_sizes")


def negative_flops(knobs, sequence_length):
    return -1.0


class BadEval:
    """An eval plugin whose metric is not a number."""

    def evaluate(self, model, data, *, sequence_length, device, seed):
        return {"accuracy": "high"}
