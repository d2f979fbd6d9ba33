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
