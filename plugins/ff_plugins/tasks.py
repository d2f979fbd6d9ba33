"""A built-in eval plugin (spec.evaluation): a multiple-choice task made from the sweep's own held-out data.

Each item is a held-out sequence cut in half: the first half is the context, and the model chooses its true second
half among `choices` candidates (the others are the second halves of other items). That is the form of
HellaSwag-style downstream tasks, on any byte- or token-level language-model data plugin. Metrics: `accuracy`,
`error` (1 - accuracy) and `loglik`, the mean per-token log-likelihood of the right answer (nats). The items are a
pure function of (seed, data), the same for every experiment of a sweep.
"""

from __future__ import annotations

import torch

ITEMS_START = 10_000  # the eval split's step the items are drawn from: away from the eval loss's first batches


class NextChunkChoice:
    def __init__(self, items: int = 64, choices: int = 4, split: str = "eval"):
        if items < 2 or not 2 <= choices <= items:
            raise ValueError(f"need items >= 2 and 2 <= choices <= items; got items={items}, choices={choices}")
        self.items, self.choices, self.split = int(items), int(choices), split

    def evaluate(self, model, data, *, sequence_length: int, device, seed: int) -> dict[str, float]:
        inputs, targets = next(data.batches(self.split, sequence_length=sequence_length, batch_size=self.items,
                                            rank=0, world_size=1, seed=seed, start=ITEMS_START))
        window = torch.cat([inputs, targets[:, -1:]], dim=1)  # (items, T + 1): every token of each item
        half = window.shape[1] // 2
        context, answers = window[:, :half], window[:, half:]
        scores = []
        for shift in range(self.choices):  # candidate 0 is each item's own second half
            sequence = torch.cat([context, answers.roll(shift, dims=0)], dim=1).to(device)
            logits = model(sequence[:, :-1]).float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, sequence[:, 1:, None])[..., 0]
            scores.append(logp[:, half - 1:].sum(dim=1))  # the log-likelihood of the candidate's tokens
        scores = torch.stack(scores)  # (choices, items)
        accuracy = float((scores.argmax(dim=0) == 0).float().mean())
        return {"accuracy": accuracy, "error": 1.0 - accuracy,
                "loglik": float(scores[0].mean()) / answers.shape[1]}
