"""Experiment tracking: one tracked run per experiment (and one per fit) in MLflow, W&B and/or TensorBoard.

A run is named by its sweep's folder and its own name (the experiment id, a WSD trunk's id, or "fit"), so a
resumed experiment finds and continues its run instead of starting a second one. Every backend call is
guarded: a backend that fails (server down, bad credentials) prints one warning and is switched off for the
rest of the run; an experiment never fails because of tracking. The backends (ff_core.trackers) import their
optional packages only when configured; `require` refuses a spec whose packages are missing, with the pip
command that installs them.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ff_core.errors import SpecError
from ff_core.spec import Tracking

# backend -> (the module it imports, the extra that installs it)
PACKAGES = {"mlflow": "mlflow", "wandb": "wandb", "tensorboard": "tensorboard"}
# Per logging point, under train/: loss, lr, tokens, tokens_per_second and mfu (where the GPU's peak is known).
STEP_METRIC = "train/step"


def missing_packages(tracking: Tracking | None) -> list[str]:
    """The configured backends whose package is not importable here."""
    backends = tracking.backends if tracking is not None else []
    return [name for name in backends if importlib.util.find_spec(PACKAGES[name]) is None]


def install_hint(missing: list[str]) -> str:
    return f"pip install 'flops-fit[{','.join(missing)}]'"


def require(tracking: Tracking | None, where: str = "here") -> None:
    """Refuse a spec.tracking whose backends' packages are not installed, with the command that adds them."""
    missing = missing_packages(tracking)
    if missing:
        names = ", ".join(f"spec.tracking.{name}" for name in missing)
        raise SpecError(f"{names} needs the {', '.join(PACKAGES[m] for m in missing)} package, not installed {where}; "
                        f"run: {install_hint(missing)} (or remove {names} from the sweep)")


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


class Tracker:
    """The run's open backends; a backend whose call fails is reported once and dropped."""

    def __init__(self, backends: dict[str, Backend] | None = None, warn: Callable[[str], None] | None = None):
        self._backends = dict(backends or {})
        self.finished: list[str] = []  # the backends that finished the run without an error
        self._warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))

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
            self._each(f"store {Path(path).name}", lambda b: b.artifact(Path(path)))

    def finish(self, summary: dict[str, float | None], status: str) -> None:
        clean = {k: float(v) for k, v in summary.items() if v is not None}
        self._each("finish", lambda b: b.finish(clean, status))
        self.finished = list(self._backends)
        self._backends.clear()

    def pause(self) -> None:
        self._each("pause", lambda b: b.pause())
        self._backends.clear()


def open_tracker(tracking: Tracking | None, run: RunInfo, endpoint_url: str | None = None,
                 warn: Callable[[str], None] | None = None) -> Tracker:
    """A Tracker with a run open in every configured backend (none: a Tracker that does nothing).
    A backend that cannot open its run is reported and left out."""
    from ff_core import trackers

    tracker = Tracker(warn=warn)
    for name in tracking.backends if tracking is not None else []:
        try:
            tracker._backends[name] = trackers.OPENERS[name](getattr(tracking, name), run, endpoint_url)
        except Exception as error:
            tracker._warn(f"tracking: {name} could not open run {run.key} ({type(error).__name__}: {error}); "
                          "this run is not tracked there, training goes on")
    return tracker


def prepare(tracking: Tracking | None, sweep: str) -> None:
    """Before several trainers start at once: create what they would otherwise race to create (the MLflow
    experiment and its database tables). Failures are left for each run to report."""
    if tracking is not None and tracking.mlflow is not None and not missing_packages(tracking):
        from ff_core import trackers

        try:
            trackers.mlflow_experiment(tracking.mlflow, sweep)
        except Exception:
            pass
