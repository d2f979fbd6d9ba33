"""The local executor: every experiment of the plan as its own trainer process, K at a time, resumable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ff_core import exit_codes
from ff_core.plan import Experiment, Plan
from ff_core.layout import LOGS, checkpoint_key, lock_key, plan_key, result_key, sweep_key
from ff_core.spec import ScalingSweep
from ff_core.errors import StoreError
from ff_core.store import FileStore, MissingKey, Store

GRACE_SECONDS = 30  # after Ctrl-C, how long trainers get to checkpoint before they are killed


@dataclass
class Event:
    kind: str  # "start" | "done" | "failed" | "skipped" | "retry" (a diverged result, rerun on request)
    experiment: Experiment
    exit_code: int | None = None
    log: Path | None = None


@dataclass
class RunSummary:
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)  # id -> exit code
    not_started: list[str] = field(default_factory=list)  # left after a configuration error (no --keep-going)
    busy: dict[str, str] = field(default_factory=dict)  # id -> who trains it now (another ffctl)
    diverged: list[str] = field(default_factory=list)  # recorded as diverged, not rerun (no --retry-diverged)
    logs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def failure(code: int, log: Path | None) -> str:
    """Why a trainer failed, in one line: how it exited (a signal by name) and the first error its log shows."""
    if code < 0:
        how = f"killed by {signal.Signals(-code).name}"
    else:
        how = {exit_codes.BAD_CONFIG: "bad configuration or plugin (exit 3)",
               exit_codes.DIVERGED: "diverged (exit 4)"}.get(code, f"exit {code}")
    lines = []
    if log is not None and log.exists():
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "")
    return f"{how}: {first}" if first else how


def _alive(owner: dict) -> bool:
    """Is the ffctl that wrote a lock still running? Another host's is taken to be (it cannot be checked)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(store: Store, sweep: str, experiment: str) -> str | None:
    """Claim an experiment for this ffctl in a local store: None when claimed, else who holds it.

    The lock is a file created exclusively; one whose ffctl has gone (a crash, a kill) is stale and taken
    over. S3 stores are not locked here (on a cluster the operator runs each experiment once).
    """
    if not isinstance(store, FileStore):
        return None
    path = store.root / lock_key(sweep, experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "w") as handle:
                json.dump({"host": socket.gethostname(), "pid": os.getpid()}, handle)
            return None
        except FileExistsError:
            try:
                owner = json.loads(path.read_text())
            except (OSError, ValueError):
                owner = {}
            if owner and _alive(owner):
                return f"ffctl pid {owner.get('pid')} on {owner.get('host')} (its lock: {path})"
            path.unlink(missing_ok=True)  # stale: its ffctl is gone
    return f"another ffctl (the lock {path} keeps changing hands)"


def release(store: Store, sweep: str, experiment: str) -> None:
    if isinstance(store, FileStore):
        (store.root / lock_key(sweep, experiment)).unlink(missing_ok=True)


def log_dir(store: Store, sweep: str) -> Path:
    """Trainer logs sit beside the results in a local store, else under ./ff-logs."""
    root = store.root if isinstance(store, FileStore) else Path("ff-logs").resolve()
    return root / sweep / LOGS


def _launch(experiment: Experiment, sweep_file: Path, store: Store, threads: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "ff_trainer", "--sweep", str(sweep_file), "--experiment", experiment.id,
           "--store", store.uri]
    with open(log, "ab") as handle:
        # A session of its own: Ctrl-C reaches only us, and we stop trainers gently with SIGTERM.
        return subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop_all(running: dict[str, tuple[subprocess.Popen, Experiment]]) -> None:
    for proc, _ in running.values():
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for proc, _ in running.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def _pending(sweep: ScalingSweep, plan: Plan, store: Store, summary: RunSummary, retry_diverged: bool,
             on_event: Callable[[Event], None], clean_checkpoints: bool = False) -> list[Experiment]:
    """The experiments to train: those without a result, and diverged ones when asked to rerun them; the
    checkpoints of finished ones are removed when asked (the result is all an analysis reads)."""
    queue = []
    for experiment in plan.experiments:
        key = result_key(sweep.name, experiment.id)
        try:
            status = store.get_json(key).get("status")  # one read per finished experiment, none more
        except MissingKey:
            queue.append(experiment)
            continue
        except StoreError:
            status = None  # unreadable: finished, and `ffctl analyze` names it
        if status == "diverged":
            if retry_diverged:
                store.delete(key)
                store.delete(checkpoint_key(sweep.name, experiment.id))
                on_event(Event("retry", experiment))
                queue.append(experiment)
            else:
                summary.diverged.append(experiment.id)
                summary.skipped.append(experiment.id)
                on_event(Event("skipped", experiment))
        else:
            summary.skipped.append(experiment.id)
            on_event(Event("skipped", experiment))
            if clean_checkpoints:
                store.delete(checkpoint_key(sweep.name, experiment.id))
    return queue


def run_plan(sweep: ScalingSweep, plan: Plan, store: Store, workers: int,
             on_event: Callable[[Event], None] = lambda e: None, keep_going: bool = False,
             retry_diverged: bool = False, clean_checkpoints: bool = False) -> RunSummary:
    """Train every experiment without a result, `workers` at a time; Ctrl-C stops them cleanly.

    After a configuration error (a trainer's exit 3: the sweep or a plugin is wrong, so the rest would fail
    the same way) no new experiment starts unless `keep_going`; the running ones finish.
    """
    began = time.monotonic()
    summary = RunSummary()
    store.put_json(sweep_key(sweep.name), sweep.to_manifest())  # the current plan
    store.put_json(plan_key(sweep.name, plan.hash), sweep.to_manifest())  # every plan that trained here
    logs = log_dir(store, sweep.name)
    logs.mkdir(parents=True, exist_ok=True)
    queue = _pending(sweep, plan, store, summary, retry_diverged, on_event, clean_checkpoints)
    threads = max(1, (os.cpu_count() or 1) // workers)
    running: dict[str, tuple[subprocess.Popen, Experiment]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sweep_file = Path(tmp) / "sweep.json"  # the resolved sweep (nParams filled), as the trainer reads it
        sweep_file.write_text(json.dumps(sweep.to_manifest()))
        try:
            while queue or running:
                while queue and len(running) < workers:
                    experiment = queue.pop(0)
                    holder = claim(store, sweep.name, experiment.id)
                    if holder is not None:
                        summary.busy[experiment.id] = holder
                        continue
                    log = logs / f"{experiment.id}.log"
                    running[experiment.id] = (_launch(experiment, sweep_file, store, threads, log), experiment)
                    summary.logs[experiment.id] = log
                    on_event(Event("start", experiment, log=log))
                for exp_id, (proc, experiment) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del running[exp_id]
                    release(store, sweep.name, exp_id)
                    if code == exit_codes.DONE:
                        summary.trained.append(exp_id)
                        if clean_checkpoints:
                            store.delete(checkpoint_key(sweep.name, exp_id))
                        on_event(Event("done", experiment, code, summary.logs[exp_id]))
                    else:
                        summary.failed[exp_id] = code
                        on_event(Event("failed", experiment, code, summary.logs[exp_id]))
                        if code == exit_codes.BAD_CONFIG and not keep_going:
                            summary.not_started += [e.id for e in queue]
                            queue.clear()
                time.sleep(0.1)
        except KeyboardInterrupt:
            _stop_all(running)
            for exp_id in running:
                release(store, sweep.name, exp_id)
            raise
        finally:
            summary.seconds = time.monotonic() - began
    return summary
