"""Byte-level text data: the built-in synthetic corpus, or TinyStories-format files (local or s3://)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from ff_plugins.corpus import synthetic_corpus
from ff_plugins.textfiles import load_corpus

_SPLITS = {"train": 0, "eval": 1}


class TextData:
    """Data plugin over byte-level tokens.

    `source` is "synthetic" (the generated corpus), or a TinyStories-format file, folder or s3:// URI
    (see ff_plugins.textfiles). Held-out data is `eval_source` when given (e.g. TinyStories-valid.txt),
    else the last `eval_fraction` of the source.

    Batch b of step s is a pure function of (seed, split, s), so resuming at a step needs no saved state,
    and the global batch is the same for any world size: rank r takes its slice of it.
    """

    def __init__(self, source: str = "synthetic", eval_source: str | None = None, eval_fraction: float = 0.05,
                 text_field: str = "text", endpoint_url: str | None = None, corpus_bytes: int = 3_000_000):
        if not 0 < eval_fraction < 0.5:
            raise ValueError(f"eval_fraction must be in (0, 0.5), got {eval_fraction}")
        if source == "synthetic":
            raw = synthetic_corpus(corpus_bytes)
        else:
            raw = load_corpus(source, text_field, endpoint_url)
        tokens = np.frombuffer(raw, dtype=np.uint8)
        if eval_source is not None:
            held_out = np.frombuffer(load_corpus(eval_source, text_field, endpoint_url), dtype=np.uint8)
            self._splits = {"train": tokens, "eval": held_out}
        else:
            cut = int(len(tokens) * (1 - eval_fraction))
            self._splits = {"train": tokens[:cut], "eval": tokens[cut:]}

    def unique_tokens(self, split: str, sequence_length: int) -> int:
        """Distinct tokens in a split (optional DataPlugin method: lets analysis tell repeated data)."""
        return len(self._splits[split])

    def untrained_loss(self) -> float:
        """Cross-entropy of a uniform guess over the 256 byte values (optional DataPlugin method)."""
        return math.log(256)

    def batches(
        self, split: str, *, sequence_length: int, batch_size: int, rank: int, world_size: int,
        seed: int, start: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if split not in self._splits:
            raise ValueError(f"split must be one of {sorted(self._splits)}, got {split!r}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by world_size {world_size}")
        tokens = self._splits[split]
        if len(tokens) <= sequence_length + 1:
            raise ValueError(f"the {split} split has {len(tokens)} tokens, fewer than a sequence ({sequence_length})")
        share = batch_size // world_size
        window = np.arange(sequence_length + 1)
        step = start
        while True:
            rng = np.random.default_rng([seed, _SPLITS[split], step])
            offsets = rng.integers(0, len(tokens) - sequence_length - 1, size=batch_size)
            mine = offsets[rank * share : (rank + 1) * share]
            chunk = torch.from_numpy(tokens[mine[:, None] + window].astype(np.int64))  # (share, T+1)
            yield chunk[:, :-1], chunk[:, 1:]
            step += 1
