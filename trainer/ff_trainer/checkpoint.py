"""Checkpoints in the result store: written whole (atomic rename / single PUT), so a torn write is never read."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ff_core.store import MissingKey, Store


class Checkpointer:
    """The latest checkpoint of one experiment, at `key` in `store`; only the main rank writes."""

    def __init__(self, store: Store, key: str, is_main: bool):
        self.store, self.key, self.is_main = store, key, is_main

    def load(self) -> dict[str, Any] | None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "checkpoint.pt"
            try:
                self.store.get_file(self.key, local)
            except MissingKey:
                return None
            try:
                return torch.load(local, map_location="cpu", weights_only=False)
            except Exception as error:  # unreadable file from an older or broken writer: start over, loudly
                print(f"warning: ignoring unreadable checkpoint {self.key}: {error}", file=sys.stderr)
                return None

    def save(self, state: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "checkpoint.pt"
            torch.save(state, local)
            self.store.put_file(self.key, local)
