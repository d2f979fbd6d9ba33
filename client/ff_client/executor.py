"""The local executor: every step of the plan as its own trainer process, K at a time, resumable.

Trainers are forked from a warm fork server where it can (ff_core.launch): torch is imported once per run.

A step is an experiment, or with schedule wsd a trunk segment or a branch (ff_core.steps): a step starts
once the steps it waits for are done, and a step that failed holds back the ones that wait for it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ff_core import exit_codes, launch
from ff_core.plan import Plan
from ff_core.layout import checkpoint_key, lock_key, log_key, plan_key, result_key, sweep_key, trunk_checkpoint_key
from ff_core.spec import ScalingSweep
from ff_core.errors import StoreError
from ff_core.steps import SEGMENT, Step, plan_steps
from ff_core.tracking import LOG_PREFIX
from ff_core.store import FileStore, MissingKey, Store

GRACE_SECONDS = 30  # after Ctrl-C, how long trainers get to checkpoint before they are killed


@dataclass
class Event:
    kind: str  # "start" | "done" | "failed" | "skipped" | "retry" (a diverged result, rerun on request)
    step: Step
    exit_code: int | None = None
    log: Path | None = None


@dataclass
class RunSummary:
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)  # id -> exit code
    not_started: list[str] = field(default_factory=list)  # after a configuration error, or waiting on a failed step
    busy: dict[str, str] = field(default_factory=dict)  # id -> who trains it now (another ffctl)
    diverged: list[str] = field(default_factory=list)  # recorded as diverged, not rerun (no --retry-diverged)
    logs: dict[str, Path] = field(default_factory=dict)
    tracking: dict[str, str] = field(default_factory=dict)  # id -> the first tracking warning in its log
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


def tracking_warning(log: Path) -> str | None:
    """The first tracking warning in a trainer's log, without its prefix."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((line[len(LOG_PREFIX):] for line in lines if line.startswith(LOG_PREFIX)), None)


def _alive(owner: dict) -> bool:
    """Is the ffctl that wrote a lock, or the trainer it handed the lock to, still running? Another host's is
    taken to be (it cannot be checked)."""
    if owner.get("host") != socket.gethostname():
        return True
    return launch.running(owner.get("pid")) or ("trainer" in owner and launch.running(owner["trainer"]))


def _holder(owner: dict, path: Path) -> str:
    if owner.get("host") == socket.gethostname() and not launch.running(owner.get("pid")):
        return (f"trainer pid {owner.get('trainer')}, left running by an ffctl that has gone (pid {owner.get('pid')}); "
                f"it is still training: wait for it, or stop it (kill {owner.get('trainer')}) and run again "
                f"(its lock: {path})")
    return f"ffctl pid {owner.get('pid')} on {owner.get('host')} (its lock: {path})"


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
                return _holder(owner, path)
            path.unlink(missing_ok=True)  # stale: its ffctl is gone
    return f"another ffctl (the lock {path} keeps changing hands)"


def hand_over(store: Store, sweep: str, experiment: str, trainer: int) -> None:
    """Record in this ffctl's lock the trainer that writes the experiment's checkpoints: a trainer that outlives
    its ffctl (killed with SIGKILL) still holds the experiment, and a rerun leaves it alone instead of racing it."""
    if not isinstance(store, FileStore):
        return
    path = store.root / lock_key(sweep, experiment)
    staged = path.with_name(f"{path.name}.{os.getpid()}")
    staged.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "trainer": trainer}))
    os.replace(staged, path)


def release(store: Store, sweep: str, experiment: str) -> None:
    if isinstance(store, FileStore):
        (store.root / lock_key(sweep, experiment)).unlink(missing_ok=True)


def log_path(store: Store, sweep: str, step_id: str) -> Path:
    """A trainer's log sits beside the results in a local store (layout.log_key), else under ./ff-logs."""
    root = store.root if isinstance(store, FileStore) else Path("ff-logs").resolve()
    return root / log_key(sweep, step_id)


def visible_gpus() -> list[str]:
    """The GPUs this machine's trainers may use: CUDA_VISIBLE_DEVICES when set, else those nvidia-smi lists."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]
    return []


def least_used(gpus: list[str], running: dict[str, tuple]) -> str | None:
    """The GPU with the fewest running trainers (the first such), or None without GPUs."""
    if not gpus:
        return None
    load = Counter(entry[2] for entry in running.values())
    return min(gpus, key=lambda gpu: (load[gpu], gpus.index(gpu)))


def _launch(step: Step, sweep_file: Path, store: Store, threads: int, log: Path, gpu: str | None = None):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu  # one GPU each; trainers on one GPU share it (packing)
        with open(log, "ab") as handle:
            handle.write(f"[ffctl] {step.id} on GPU {gpu}\n".encode())
    return launch.start(launch.TRAINER, launch.trainer_args(str(sweep_file), step.id, "--store", store.uri), env, log)


def _stop_all(running: dict[str, tuple]) -> None:
    for proc, *_ in running.values():
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for proc, *_ in running.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def _finished(sweep: ScalingSweep, steps: tuple[Step, ...], store: Store, summary: RunSummary,
              retry_diverged: bool, on_event: Callable[[Event], None], clean_checkpoints: bool) -> set[str]:
    """The steps already done: experiments with a result (diverged ones unless asked to rerun them; their
    result and checkpoint then go), and trunk segments whose checkpoint is in the store. The checkpoints of
    finished experiments are removed when asked (the result is all an analysis reads)."""
    done = set()
    for step in steps:
        if step.kind == SEGMENT:
            if store.exists(trunk_checkpoint_key(sweep.folder, step.trunk, step.end)):
                done.add(step.id)
            continue
        key = result_key(sweep.folder, step.id)
        try:
            status = store.get_json(key).get("status")  # one read per finished experiment, none more
        except MissingKey:
            continue
        except StoreError:
            status = None  # unreadable: finished, and `ffctl analyze` names it
        if status == "diverged" and retry_diverged:
            store.delete(key)
            store.delete(checkpoint_key(sweep.folder, step.id))
            on_event(Event("retry", step))
            continue
        if status == "diverged":
            summary.diverged.append(step.id)
        done.add(step.id)
        summary.skipped.append(step.id)
        on_event(Event("skipped", step))
        if clean_checkpoints:
            store.delete(checkpoint_key(sweep.folder, step.id))
    return done


def _needed(steps: tuple[Step, ...], done: set[str]) -> list[Step]:
    """The steps to run, in plan order: every unfinished experiment, and the segments some of them wait for
    (a trunk whose branches are all finished is not trained again, even if its checkpoints were cleaned)."""
    wanted: set[str] = set()
    for step in reversed(steps):
        if step.id not in done and (step.kind != SEGMENT or step.id in wanted):
            wanted.add(step.id)
            wanted.update(a for a in step.after if a not in done)
    return [s for s in steps if s.id in wanted]


def _clean_trunks(sweep: ScalingSweep, steps: tuple[Step, ...], store: Store, done: set[str]) -> None:
    """With every step done, no branch needs a trunk checkpoint any more."""
    if all(s.id in done for s in steps):
        for step in steps:
            if step.kind == SEGMENT:
                store.delete(trunk_checkpoint_key(sweep.folder, step.trunk, step.end))


def run_plan(sweep: ScalingSweep, plan: Plan, store: Store, workers: int,
             on_event: Callable[[Event], None] = lambda e: None, keep_going: bool = False,
             retry_diverged: bool = False, clean_checkpoints: bool = False,
             gpus: list[str] | None = None) -> RunSummary:
    """Run every step without a result, `workers` at a time, each once the steps it waits for are done;
    Ctrl-C stops them cleanly. With `gpus`, each trainer gets one of them (CUDA_VISIBLE_DEVICES), the one
    running the fewest trainers: `workers` = k x len(gpus) packs k experiments on every GPU.

    After a configuration error (a trainer's exit 3: the sweep or a plugin is wrong, so the rest would fail
    the same way) no new step starts unless `keep_going`; the running ones finish. Steps that wait for a
    failed step are not started.
    """
    began = time.monotonic()
    launch.warm_up()
    summary = RunSummary()
    store.put_json(sweep_key(sweep.folder), sweep.to_manifest())  # the current plan
    store.put_json(plan_key(sweep.folder, plan.hash), sweep.to_manifest())  # every plan that trained here
    steps = plan_steps(sweep, plan)
    done = _finished(sweep, steps, store, summary, retry_diverged, on_event, clean_checkpoints)
    queue = _needed(steps, done)
    failed: set[str] = set()
    threads = max(1, (os.cpu_count() or 1) // workers)
    running: dict[str, tuple] = {}  # id -> (trainer, step, gpu)
    with tempfile.TemporaryDirectory() as tmp:
        sweep_file = Path(tmp) / "sweep.json"  # the resolved sweep (nParams filled), as the trainer reads it
        sweep_file.write_text(json.dumps(sweep.to_manifest()))
        try:
            while running or any(set(s.after) <= done for s in queue):
                for step in [s for s in queue if set(s.after) <= done][: workers - len(running)]:
                    queue.remove(step)
                    holder = claim(store, sweep.folder, step.id)
                    if holder is not None:
                        summary.busy[step.id] = holder
                        continue
                    log = log_path(store, sweep.folder, step.id)
                    log.parent.mkdir(parents=True, exist_ok=True)
                    gpu = least_used(gpus or [], running)
                    running[step.id] = (_launch(step, sweep_file, store, threads, log, gpu), step, gpu)
                    hand_over(store, sweep.folder, step.id, running[step.id][0].pid)
                    summary.logs[step.id] = log
                    on_event(Event("start", step, log=log))
                for step_id, (proc, step, _) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del running[step_id]
                    release(store, sweep.folder, step_id)
                    if (warned := tracking_warning(summary.logs[step_id])) is not None:
                        summary.tracking[step_id] = warned
                    if code == exit_codes.DONE:
                        done.add(step_id)
                        if step.kind != SEGMENT:
                            summary.trained.append(step_id)
                        if clean_checkpoints:
                            store.delete(checkpoint_key(sweep.folder, step_id))
                        on_event(Event("done", step, code, summary.logs[step_id]))
                    else:
                        summary.failed[step_id] = code
                        failed.add(step_id)
                        on_event(Event("failed", step, code, summary.logs[step_id]))
                        if code == exit_codes.BAD_CONFIG and not keep_going:
                            summary.not_started += [s.id for s in queue]
                            queue.clear()
                time.sleep(0.1)
            summary.not_started += [s.id for s in queue]  # each waits, directly or not, for a failed step
        except KeyboardInterrupt:
            _stop_all(running)
            for step_id in running:
                release(store, sweep.folder, step_id)
            raise
        finally:
            summary.seconds = time.monotonic() - began
    if clean_checkpoints:
        _clean_trunks(sweep, steps, store, done)
    return summary
