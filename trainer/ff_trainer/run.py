"""Run one experiment end to end: skip if done, load plugins, check N, train, write result.json last."""

from __future__ import annotations

import math
import os
import platform
import random
import shutil
import sys
import sysconfig
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from ff_core import exit_codes
from ff_core.flops import flops_per_token, training_flops
from ff_core.plan import Experiment, plan_sweep
from ff_core.layout import checkpoint_key, result_key, trunk_checkpoint_key
from ff_core.results import ResultRecord
from ff_core.spec import ScalingSweep
from ff_core.steps import BRANCH, SEGMENT, Step, find_step, plan_steps
from ff_core.store import FileStore, Store
from ff_core.trackers import open_tracker, require
from ff_core.tracking import RunInfo, Tracker
from ff_trainer.checkpoint import Checkpointer
from ff_trainer.errors import ConfigError
from ff_trainer.metrics import measure_flops_per_token, mfu
from ff_trainer.plugins import (DataPlugin, EvalPlugin, FlopsFn, LossFn, ModelPlugin, count_of, flops_of,
                                load_plugin)
from ff_trainer.signals import StopFlag
from ff_trainer.train import Interrupted, Job, Outcome, train
from ff_trainer.world import World, setup_world, teardown_world


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    try:
        versions["flops-fit"] = metadata.version("flops-fit")
    except metadata.PackageNotFoundError:
        versions["flops-fit"] = "unknown"
    return versions


def _device_name(world: World) -> str:
    return torch.cuda.get_device_name(world.device) if world.device.type == "cuda" else "cpu"


def seed_everything(seed: int, deterministic: bool) -> None:
    """One seed for Python's, NumPy's and torch's generators; optionally deterministic kernels only."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def build_checked_model(sweep: ScalingSweep, experiment: Experiment, model_plugin):
    """Build the model and fail fast (exit 3) when its parameter count disagrees with the spec."""
    spec = sweep.spec
    seed_everything(spec.training.seed, spec.training.deterministic)  # same initial weights in every budget
    try:
        model = model_plugin.build(experiment.knobs, spec.training.sequence_length)
    except Exception as error:  # the plugin's build is user code: whatever it raises is permanent
        raise ConfigError(f"size {experiment.size!r}: the model plugin {spec.model.plugin!r} failed to build its "
                          f"knobs {experiment.knobs}: {type(error).__name__}: {error}") from None
    total, non_embedding = count_of(model_plugin, spec.model.plugin, experiment.size, experiment.knobs,
                                    spec.training.sequence_length)
    built = sum(p.numel() for p in model.parameters())
    if total != built:  # the plugin contradicts itself: nParams, filled from its count, cannot be fixed in the file
        raise ConfigError(
            f"size {experiment.size!r}: the model plugin {spec.model.plugin!r}'s count_params says {total} "
            f"parameters but build() makes a model of {built} from knobs {experiment.knobs}; fix the plugin's "
            "count_params (`ffctl plan --write` would write the same wrong number)")
    if built != experiment.n_params:
        raise ConfigError(
            f"size {experiment.size!r}: the spec says nParams={experiment.n_params} but the model built from "
            f"knobs {experiment.knobs} has {built}; fix nParams (`ffctl plan SWEEP --write` fills it)"
        )
    return model, non_embedding


def flops_by_method(sweep: ScalingSweep, experiment: Experiment, model_plugin, measured: float | None) -> dict:
    """Training FLOPs of the experiment by every counting method available (all go into the record)."""
    spec, tokens = sweep.spec, experiment.tokens
    seq = spec.training.sequence_length
    flops = {"6nd": training_flops(experiment.n_params, tokens), "planned": experiment.flops}
    if callable(getattr(model_plugin, "flops_per_token", None)):
        flops["model"] = float(model_plugin.flops_per_token(experiment.knobs, seq)) * tokens
    if spec.flops is not None:
        flops["plugin"] = flops_of(load_plugin(spec.flops, FlopsFn, "flops"), spec.flops.plugin, experiment.size,
                                   experiment.knobs, seq) * tokens
    if measured is not None:
        flops["measured"] = measured * tokens
    return flops


def make_record(sweep: ScalingSweep, experiment: Experiment, outcome: Outcome, non_embedding: int,
                world: World, flops: dict[str, float], unique_tokens: int | None = None,
                untrained_loss: float | None = None, branch_tokens: int | None = None) -> ResultRecord:
    device = _device_name(world)
    # MFU from the most faithful count available: measured, then the model's own, then 6ND.
    best = next(flops[m] for m in ("measured", "model", "plugin", "6nd") if m in flops) / experiment.tokens
    return ResultRecord(
        sweep=sweep.folder, experiment=experiment.id, budget=experiment.budget, size=experiment.size,
        knobs=experiment.knobs, identity=experiment.identity, n_params=experiment.n_params,
        n_params_non_embedding=non_embedding,
        tokens=experiment.tokens, unique_tokens=unique_tokens, untrained_loss=untrained_loss, flops=flops,
        branch_tokens=branch_tokens, status=outcome.status, final_loss=outcome.final_loss,
        eval_loss=outcome.eval_loss, loss_curve=outcome.curve, tokens_per_second=outcome.tokens_per_second,
        task_metrics=outcome.task_metrics or None,
        mfu=mfu(best, outcome.tokens_per_second, device, world.world_size), wall_seconds=outcome.train_seconds,
        world_size=world.world_size, device=device, seed=sweep.spec.training.seed, versions=_versions(),
    )


def _measure(model, data, loss_fn, sweep: ScalingSweep, world: World) -> float | None:
    """FLOPs per token of one training sequence, counted by PyTorch (None if the counter fails)."""
    cfg = sweep.spec.training
    inputs, targets = next(data.batches("eval", sequence_length=cfg.sequence_length,
                                        batch_size=cfg.global_batch_sequences, rank=world.rank,
                                        world_size=world.world_size, seed=cfg.seed))
    x, y = inputs[:1].to(world.device), targets[:1].to(world.device)  # per token: one sequence counts the same
    try:
        return measure_flops_per_token(model, loss_fn, x, y, len(x) * cfg.sequence_length)
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, NotImplementedError) as error:  # an op the counter cannot trace: record no value
        print(f"warning: measuring FLOPs failed ({error}); 'measured' left out", file=sys.stderr)
        return None


def _oom_message(cfg, world: World) -> str:
    micro, _ = cfg.batch_split(world.world_size)
    if cfg.micro_batch_size is None and world.world_size == 1:  # train() halved it down to 1 already
        return (f"out of GPU memory even with 1 sequence of {cfg.sequence_length} tokens per forward pass on "
                f"{_device_name(world)} (microBatchSize unset: tried {micro} down to 1); shorten the sequence, or "
                "spread the model over more GPUs (execution.gpusPerExperiment)")
    return (f"out of GPU memory with {micro} sequences of {cfg.sequence_length} tokens per forward pass on "
            f"{_device_name(world)}; lower spec.training.microBatchSize (gradient accumulation keeps the "
            "global batch) or the sequence length")


def run_info(sweep: ScalingSweep, step: Step) -> RunInfo:
    """The tracked run of a step: an experiment's run (a WSD branch's too), or its trunk's for a segment
    (every segment of one trunk continues the same run)."""
    experiment = step.experiment
    tags = {"size": experiment.size}
    params = {"size": experiment.size, "n_params": experiment.n_params,
              **{f"knobs.{k}": v for k, v in experiment.knobs.items()},
              **{f"training.{k}": v for k, v in sweep.spec.training.at(experiment.n_params, experiment.tokens)
                 .model_dump(mode="json", by_alias=True).items()},  # the rate this point trains at
              "model": sweep.spec.model.plugin, "data": sweep.spec.data.plugin, "loss": sweep.spec.loss.plugin}
    if step.kind == SEGMENT:
        return RunInfo(sweep.folder, step.trunk, "trunk", tags | {"trunk": step.trunk}, params)
    tags |= {"experiment": experiment.id, "budget": f"{experiment.budget:.3g}"}
    params |= {"budget": experiment.budget, "tokens": experiment.tokens}
    if step.kind == BRANCH:
        return RunInfo(sweep.folder, experiment.id, "branch", tags | {"trunk": step.trunk}, params)
    return RunInfo(sweep.folder, experiment.id, "experiment", tags, params)


@contextmanager
def _tracked(sweep: ScalingSweep, step: Step, world: World):
    """The step's tracker (rank 0 only; the others get one that does nothing). Left paused when the step is
    interrupted (the retry continues its run), finished as failed when it raises; the caller finishes it."""
    spec = sweep.spec
    tracker = (open_tracker(spec.tracking, run_info(sweep, step), spec.storage.endpoint_url) if world.is_main
               else Tracker())
    try:
        yield tracker
    except Interrupted:
        tracker.pause()
        raise
    except BaseException:
        tracker.finish({}, "failed")
        raise


def _summary(record: ResultRecord) -> dict[str, float | None]:
    """What a finished experiment's tracked run ends with: its eval loss, FLOPs by every method, N, D, C."""
    return {"eval/loss": record.eval_loss, "train/final_loss": record.final_loss, "n_params": record.n_params,
            "tokens": record.tokens, "budget": record.budget, "tokens_per_second": record.tokens_per_second,
            "mfu": record.mfu, **{f"flops/{method}": value for method, value in record.flops.items()}}


def _train_step(sweep: ScalingSweep, step: Step, store: Store, world: World, plugins: tuple, model,
                stop: StopFlag, tracker: Tracker | None = None) -> tuple[Outcome, float | None]:
    """Measure FLOPs, then train the step (resuming from its checkpoint; a branch from its trunk's)."""
    model_plugin, data, loss_fn = plugins
    cfg = sweep.spec.training.at(step.experiment.n_params, step.experiment.tokens)  # its own rate under a law
    ckpt = Checkpointer(store, checkpoint_key(sweep.folder, step.id), world.is_main)

    def trunk(at: int) -> Checkpointer:
        return Checkpointer(store, trunk_checkpoint_key(sweep.folder, step.trunk, at), world.is_main)

    initial = trunk(step.start) if step.kind in (SEGMENT, BRANCH) and step.start > 0 else None
    model.to(world.device)
    try:
        measured = _measure(model, data, loss_fn, sweep, world)  # before training in every step: the same RNG use
        groups = model_plugin.param_groups(model) if hasattr(model_plugin, "param_groups") else None
        track = {"tracker": tracker, "flops_per_token": measured or flops_per_token(step.experiment.n_params)}
        job = (Job.segment(step.end, ckpt, trunk(step.end), initial) if step.kind == SEGMENT
               else Job.run(step.end, ckpt, initial))
        evaluator = _evaluator(sweep, data, world)
        return train(model, data, loss_fn, cfg, job, world, groups, stop, evaluator=evaluator, **track), measured
    except torch.cuda.OutOfMemoryError:
        raise ConfigError(_oom_message(cfg, world)) from None


def _evaluator(sweep: ScalingSweep, data, world: World):
    """spec.evaluation's plugin as `model -> {metric: value}`, each value checked to be a finite number; None
    without one."""
    ref = sweep.spec.evaluation
    if ref is None:
        return None
    plugin = load_plugin(ref, EvalPlugin, "evaluation")
    cfg = sweep.spec.training

    def evaluate(model) -> dict[str, float]:
        try:
            metrics = plugin.evaluate(model, data, sequence_length=cfg.sequence_length, device=world.device,
                                      seed=cfg.seed)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as error:  # user code: whatever it raises is permanent
            raise ConfigError(f"the eval plugin {ref.plugin!r} failed: {type(error).__name__}: {error}") from None
        bad = {k: v for k, v in dict(metrics).items() if not (isinstance(k, str) and _finite_number(v))}
        if not metrics or bad:
            raise ConfigError(f"the eval plugin {ref.plugin!r} must return {{name: finite number}}; it returned "
                              f"{dict(metrics) if not bad else bad}")
        return {k: float(v) for k, v in metrics.items()}

    return evaluate


def _finite_number(value) -> bool:
    try:
        return math.isfinite(float(value)) and not isinstance(value, bool)
    except (TypeError, ValueError):
        return False


def _train_and_record(sweep: ScalingSweep, step: Step, store: Store, world: World, plugins: tuple,
                      model, non_embedding: int, stop: StopFlag, tracker: Tracker) -> ResultRecord:
    """Train the run or branch and build its result record."""
    model_plugin, data, _ = plugins
    cfg, experiment = sweep.spec.training, step.experiment
    outcome, measured = _train_step(sweep, step, store, world, plugins, model, stop, tracker)
    flops = flops_by_method(sweep, experiment, model_plugin, measured)
    unique = data.unique_tokens("train", cfg.sequence_length) if hasattr(data, "unique_tokens") else None
    untrained = float(data.untrained_loss()) if hasattr(data, "untrained_loss") else None
    branch = step.start * cfg.global_batch_tokens if step.kind == BRANCH else None
    return make_record(sweep, experiment, outcome, non_embedding, world, flops, unique, untrained, branch)


def _plugins(sweep: ScalingSweep) -> tuple:
    spec = sweep.spec
    return (load_plugin(spec.model, ModelPlugin, "model"), load_plugin(spec.data, DataPlugin, "data"),
            load_plugin(spec.loss, LossFn, "loss"))


@contextmanager
def _session():
    """The process group and the SIGTERM flag for one step. SIGTERM is a request from here on: during
    training it checkpoints; after, the result is finished first."""
    world = setup_world()
    with StopFlag() as stop:
        try:
            yield world, stop
        finally:
            teardown_world()


def _require_environment(sweep: ScalingSweep) -> None:
    """What the spec asks of this environment, before training (a finished step stays "nothing to do" whatever
    the environment lacks): the tracking packages, and for training.compile a C++ compiler and Python's headers."""
    require(sweep.spec.tracking, "in this trainer's environment (for a cluster: the trainer image)")
    if sweep.spec.training.compile and (missing := compile_toolchain_missing()):
        raise ConfigError(f"training.compile is true, but {missing} (torch.compile's inductor builds its kernels "
                          "with them; Triton on the GPU too): install them (Dockerfile.trainer has the compilers), "
                          "or set training.compile: false")


def compile_toolchain_missing() -> str | None:
    """What torch.compile needs and this environment lacks, in words; None when nothing is missing."""
    if not any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "c++", "clang++") if c):
        return "there is no C++ compiler here (gcc and g++, or one named in CXX)"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.exists():
        return f"Python's C headers are missing ({headers}: Debian's package python3-dev)"
    return None


def _run_segment(sweep: ScalingSweep, step: Step, store: Store) -> int:
    """Train a WSD trunk segment to its end step and leave its checkpoint for the next segment and branches."""
    key = trunk_checkpoint_key(sweep.folder, step.trunk, step.end)
    if store.exists(key):
        print(f"{step.id}: trunk checkpoint exists at {store.uri}/{key}; nothing to do", file=sys.stderr)
        return exit_codes.DONE
    check_writable(store, key)
    _require_environment(sweep)
    plugins = _plugins(sweep)
    model, _ = build_checked_model(sweep, step.experiment, plugins[0])
    with _session() as (world, stop), _tracked(sweep, step, world) as tracker:
        outcome, _ = _train_step(sweep, step, store, world, plugins, model, stop, tracker)
        if world.is_main and outcome.status == "segment":
            store.delete(checkpoint_key(sweep.folder, step.id))  # its state lives on at `key`
        # The trunk's run is finished at each segment's end and continued by the next segment.
        tracker.finish({}, "completed" if outcome.status == "segment" else outcome.status)
    if outcome.status == "diverged":
        print(f"{step.id}: the trunk's loss diverged (NaN/inf) before step {step.end}", file=sys.stderr)
        return exit_codes.DIVERGED
    print(f"{step.id}: trunk at step {step.end} -> {store.uri}/{key}", file=sys.stderr)
    return exit_codes.DONE


def check_writable(store: Store, key: str) -> None:
    """A result folder this process cannot write to fails now (exit 3), not at the first checkpoint after
    minutes of training. Only for a folder store: an S3 write that fails is told (and retried) where it happens."""
    if not isinstance(store, FileStore):
        return
    probe = f"{key.rsplit('/', 1)[0]}/.writable-{os.getpid()}"
    try:
        store.put_json(probe, {})
        store.delete(probe)
    except OSError as error:
        raise ConfigError(
            f"the result store {store.uri} cannot be written here ({type(error).__name__}: {error}); make its folder "
            f"writable by this user (uid {os.getuid()}): `chown -R {os.getuid()} FOLDER` on the host, or a podman "
            "mount with the :U option (-v FOLDER:/results:U)") from None


def run_experiment(sweep: ScalingSweep, step_id: str, store: Store) -> int:
    """Train one step of the sweep (an experiment, or a WSD trunk segment) into `store`; the exit code."""
    step = find_step(plan_steps(sweep, plan_sweep(sweep)), step_id, sweep.name)
    if step.kind == SEGMENT:
        return _run_segment(sweep, step, store)
    experiment = step.experiment
    key = result_key(sweep.folder, experiment.id)
    if store.exists(key):
        print(f"{experiment.id}: result exists at {store.uri}/{key}; nothing to do", file=sys.stderr)
        return exit_codes.DONE
    check_writable(store, checkpoint_key(sweep.folder, experiment.id))
    _require_environment(sweep)
    plugins = _plugins(sweep)
    model, non_embedding = build_checked_model(sweep, experiment, plugins[0])
    with _session() as (world, stop), _tracked(sweep, step, world) as tracker:
        record = _train_and_record(sweep, step, store, world, plugins, model, non_embedding, stop, tracker)
        if world.is_main:
            store.put_json(key, record.model_dump(mode="json"))  # written last: "has result.json" = finished
        tracker.finish(_summary(record), record.status)
        world.barrier()
    if record.status == "diverged":
        print(f"{experiment.id}: loss diverged (NaN/inf); recorded as diverged", file=sys.stderr)
        return exit_codes.DIVERGED
    print(f"{experiment.id}: eval loss {record.eval_loss:.4f} -> {store.uri}/{key}", file=sys.stderr)
    return exit_codes.DONE
