"""SIGTERM as a request, not a kill: Kubernetes preemption and the local executor's Ctrl-C both send it."""

from __future__ import annotations

import signal
from typing import Any


class StopFlag:
    """Set by SIGTERM while installed; the training loop polls it once per step.

    Installed for the whole experiment, so a SIGTERM that arrives after the last step (during evaluation
    or while the result is written) lets the result be finished instead of killing the write half-way.
    """

    def __init__(self, install: bool = True) -> None:
        self.set = False
        self._previous = signal.signal(signal.SIGTERM, self._handle) if install else None

    def _handle(self, signum: int, frame: Any) -> None:
        self.set = True

    def __enter__(self) -> StopFlag:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
