"""CIFAR-10 in its python release format (`data_batch_1..5`, `test_batch`), from a local folder or s3://."""

from __future__ import annotations

import math
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
EVAL_FILE = "test_batch"
# Per-channel statistics of the CIFAR-10 training set, the usual normalisation.
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32).reshape(1, 3, 1, 1)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data, labels = batch[b"data"], batch[b"labels"]
    except (OSError, pickle.UnpicklingError, KeyError, EOFError) as error:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({error!r})") from None
    images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)  # rows are R, G, B planes of 32x32
    return images, np.asarray(labels, dtype=np.int64)


def _load(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    present = [folder / n for n in names if (folder / n).is_file()]
    if not present:
        raise ValueError(f"{folder}: none of {', '.join(names)} found; point `source` at cifar-10-batches-py")
    parts = [_read_batch(p) for p in present]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _fetch(uri: str, into: Path, endpoint_url: str | None) -> Path:
    from ff_core.store import open_store

    store = open_store(uri.rstrip("/"), spec_endpoint=endpoint_url)
    for name in (*TRAIN_FILES, EVAL_FILE):
        if store.exists(name):
            store.get_file(name, into / name)
    return into


class CIFAR10:
    """Data plugin: normalised images (B, 3, 32, 32) and labels (B,); one "token" is one image.

    Like the text plugin, batch b of step s is a pure function of (seed, split, s): resumable at any step
    and the same global batch for any world size.
    """

    def __init__(self, source: str, endpoint_url: str | None = None):
        if source.startswith("s3://"):
            with tempfile.TemporaryDirectory(prefix="ff-cifar-") as tmp:
                folder = _fetch(source, Path(tmp), endpoint_url)
                self._splits = {"train": _load(folder, TRAIN_FILES), "eval": _load(folder, (EVAL_FILE,))}
        else:
            folder = Path(source).expanduser()
            self._splits = {"train": _load(folder, TRAIN_FILES), "eval": _load(folder, (EVAL_FILE,))}

    def unique_tokens(self, split: str, sequence_length: int) -> int:
        """Distinct images in a split (a token is an image)."""
        return len(self._splits[split][0])

    def untrained_loss(self) -> float:
        """Cross-entropy of a uniform guess over the 10 classes (optional DataPlugin method)."""
        return math.log(10)

    def batches(self, split: str, *, sequence_length: int, batch_size: int, rank: int, world_size: int,
                seed: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if split not in self._splits:
            raise ValueError(f"split must be one of {sorted(self._splits)}, got {split!r}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by world_size {world_size}")
        images, labels = self._splits[split]
        share = batch_size // world_size
        step = start
        while True:
            rng = np.random.default_rng([seed, 0 if split == "train" else 1, step])
            index = rng.integers(0, len(images), size=batch_size)[rank * share : (rank + 1) * share]
            x = (images[index].astype(np.float32) / 255.0 - MEAN) / STD
            yield torch.from_numpy(x), torch.from_numpy(labels[index])
            step += 1
