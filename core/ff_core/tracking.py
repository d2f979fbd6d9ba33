"""Experiment tracking's contract: one tracked run per experiment (and one per fit), what a run is (RunInfo),
what a backend does (Backend) and the Tracker that calls the open ones.

A run is named by its sweep's folder and its own name (the experiment id, a WSD trunk's id, or "fit"), so a
resumed experiment finds and continues its run instead of starting a second one. Every backend call is
guarded: a backend that fails (server down, bad credentials) prints one warning and is switched off for the
rest of the run; an experiment never fails because of tracking. The backends themselves (MLflow, W&B,
TensorBoard), and opening them from a spec, are ff_core.trackers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol


# Per logging point, under train/: loss, lr, tokens, tokens_per_second and mfu (where the GPU's peak is known).
STEP_METRIC = "train/step"


@dataclass(frozen=True)
class RunInfo:
    """What a tracked run is: its group (the sweep's folder), its name, kind, tags and parameters."""

    sweep: str
    name: str
    kind: str  # experiment | branch | trunk | fit
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    resume: bool = True  # continue the run of the same name when there is one (a fit starts a new one each time)

    @property
    def key(self) -> str:
        return f"{self.sweep}/{self.name}"


class Backend(Protocol):
    """One open run in one tool."""

    def log(self, step: int, metrics: dict[str, float]) -> None: ...
    def resumed(self, step: int) -> None: ...  # the run continues from `step`: what was logged after it is stale
    def artifact(self, path: Path) -> None: ...
    def finish(self, summary: dict[str, float], status: str) -> None: ...  # completed | diverged | failed
    def pause(self) -> None: ...  # interrupted (SIGTERM): left to be resumed


LOG_PREFIX = "warning: tracking: "  # how a backend's failure starts in a trainer's log (ffctl run reads it back)


def warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class Tracker:
    """The run's open backends; a backend whose call fails is reported once and dropped."""

    def __init__(self, backends: dict[str, Backend] | None = None, warn: Callable[[str], None] | None = None):
        self._backends = dict(backends or {})
        self.finished: list[str] = []  # the backends that finished the run without an error
        self._warn = warn or warning

    @property
    def active(self) -> list[str]:
        return list(self._backends)

    def _each(self, action: str, call: Callable[[Backend], None]) -> None:
        for name, backend in list(self._backends.items()):
            try:
                call(backend)
            except Exception as error:  # tracking never fails an experiment
                del self._backends[name]
                self._warn(f"tracking: {name} failed to {action} ({type(error).__name__}: {error}); "
                           f"{name} is off for the rest of this run, training goes on")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        self._each("log", lambda b: b.log(step, clean))

    def resumed(self, step: int) -> None:
        self._each("resume", lambda b: b.resumed(step))

    def artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            self._each(f"store {Path(path).name}", lambda b: b.artifact(Path(path)))  # noqa: B023  (called at once)

    def finish(self, summary: dict[str, float | None], status: str) -> None:
        clean = {k: float(v) for k, v in summary.items() if v is not None}
        self._each("finish", lambda b: b.finish(clean, status))
        self.finished = list(self._backends)
        self._backends.clear()

    def pause(self) -> None:
        self._each("pause", lambda b: b.pause())
        self._backends.clear()
