"""Byte-level text data: the built-in synthetic corpus or a local UTF-8 text file, split into train and eval."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ff_plugins.corpus import synthetic_corpus

_SPLITS = {"train": 0, "eval": 1}


class TextData:
    """Data plugin: `source` is "synthetic" or a path to a text file; the last `eval_fraction` is held out.

    Batch b of step s is a pure function of (seed, split, s), so resuming at a step needs no saved state,
    and the global batch is the same for any world size: rank r takes its slice of it.
    """

    def __init__(self, source: str = "synthetic", eval_fraction: float = 0.05, corpus_bytes: int = 3_000_000):
        if not 0 < eval_fraction < 0.5:
            raise ValueError(f"eval_fraction must be in (0, 0.5), got {eval_fraction}")
        if source == "synthetic":
            raw = synthetic_corpus(corpus_bytes)
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise ValueError(f"text source {source!r} is not a file; give a path or 'synthetic'")
            raw = path.read_bytes()
        tokens = np.frombuffer(raw, dtype=np.uint8)
        cut = int(len(tokens) * (1 - eval_fraction))
        self._splits = {"train": tokens[:cut], "eval": tokens[cut:]}

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
