"""The training loop: AdamW, warmup then decay to the last step, gradient accumulation, DDP, checkpoints."""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch.nn.parallel import DistributedDataParallel

from ff_core.schedules import lr_multiplier
from ff_core.spec import Training
from ff_core.tracking import Tracker
from ff_trainer.checkpoint import Checkpointer
from ff_trainer.errors import ConfigError
from ff_trainer.metrics import mfu
from ff_trainer.readout import StepLoss
from ff_trainer.signals import StopFlag
from ff_trainer.world import World


STOP_POLL_STEPS = 10  # with several processes, how often a SIGTERM is looked for


class Interrupted(Exception):
    """SIGTERM arrived; a checkpoint was written and the process should exit (retryable)."""


@dataclass
class Outcome:
    status: str  # "completed" | "diverged"
    final_loss: float | None
    eval_loss: float | None
    curve: list[dict[str, float]] = field(default_factory=list)
    tokens_per_second: float = 0.0
    train_seconds: float = 0.0
    task_metrics: list[dict] = field(default_factory=list)  # the eval plugin's, at each checkpoint and the end


def _optimizer(model: torch.nn.Module, cfg: Training, device: torch.device,
               groups: list[dict] | None) -> torch.optim.AdamW:
    if groups is None:
        # Decay matrices only: biases, norms' gains and other vectors are left alone (GPT-2 / nanoGPT practice).
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    # A plugin's group may scale the learning rate ("lr_scale", muP-style); the schedule multiplies it.
    for group in groups:
        group.setdefault("lr_scale", 1.0)
    # A plugin's group without its own weight_decay takes the sweep's (AdamW's default would be 0.01).
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=(0.9, 0.95),
                             fused=device.type == "cuda")


def _micro_batches(cfg: Training, world: World) -> tuple[int, int]:
    """(sequences per micro-batch, accumulation steps) for this rank's share of the global batch."""
    try:
        return cfg.batch_split(world.world_size)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _next(stream, split: str, taken: int):
    """The stream's next batch; a stream that ends is the data plugin's mistake, not a retryable fault."""
    try:
        return next(stream)
    except StopIteration:
        raise ConfigError(f"the data plugin's {split!r} stream ended after {taken} batch(es); batches() must not "
                          "end (cycle over the data, as the built-in plugins do)") from None


def fitting_micro_batch(micro: int, share: int) -> tuple[int, int]:
    """After running out of memory at `micro` sequences per forward pass: the largest divisor of the share that
    is at most half of `micro`, and the accumulation steps that keep the share."""
    smaller = next(m for m in range(micro // 2, 0, -1) if share % m == 0)
    return smaller, share // smaller


def _accumulate(step_loss, inputs, targets, micro: int, accum: int, ddp, device: torch.device) -> torch.Tensor:
    """Forward and backward over the step's micro-batches; their summed loss (a tensor on the device)."""
    total = torch.zeros((), device=device)
    for i, (x, y) in enumerate(zip(inputs.split(micro), targets.split(micro))):
        # gradients are all-reduced once per step, on the last micro-batch
        skip_sync = ddp is not None and i < accum - 1
        with (ddp.no_sync() if skip_sync else nullcontext()), _autocast(device):
            loss = step_loss(x, y) / accum
        loss.backward()
        total += loss.detach()
    return total


def step_loss_of(losses: StepLoss, ddp, compile: bool):
    """The step's compiled unit: the forward pass and the loss together (through DDP with several processes).
    Compiled as one region, the loss (the fp32 cross-entropy over the vocabulary) fuses with the logits instead
    of materialising a float copy of them; the plugin's loss stays a plain callable."""
    unit = ddp or losses
    return torch.compile(unit) if compile else unit


def device_batches(stream, device: torch.device, split: str):
    """The stream's batches on `device`, one batch ahead: the next batch is read, pinned and its copy queued
    (non-blocking) before the current one is handed out, so the host prepares it while the GPU computes.
    On the CPU the tensors are handed out as they are."""
    def moved(batch):
        if device.type != "cuda":
            return batch
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in batch)

    taken = 0
    pending = moved(_next(stream, split, taken))
    while True:
        taken += 1
        following = moved(_next(stream, split, taken))
        yield pending
        pending = following


def evaluate(model, losses: StepLoss, data, cfg: Training, world: World, micro: int) -> float:
    """Mean loss over evalTokens of the held-out split (the same sequences for every experiment)."""
    batches = max(1, math.ceil(cfg.eval_tokens / cfg.global_batch_tokens))
    stream = data.batches(
        "eval", sequence_length=cfg.sequence_length, batch_size=cfg.global_batch_sequences,
        rank=world.rank, world_size=world.world_size, seed=cfg.seed,
    )
    total, count = torch.zeros((), device=world.device), 0
    model.eval()
    with torch.no_grad(), _autocast(world.device):
        for taken in range(batches):
            inputs, targets = _next(stream, "eval", taken)
            for x, y in zip(inputs.split(micro), targets.split(micro)):
                total += losses(x.to(world.device), y.to(world.device)).float()
                count += 1
    model.train()
    return float(world.mean(total / count))


def _get_rng(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _autocast(device: torch.device):
    # bf16 on GPU for speed; fp32 on CPU so CPU runs are exact and reproducible.
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def thinned(curve: list[dict], points: int) -> list[dict]:
    """At most about `points` curve points, evenly taken, the last kept (WSD runs log on a fixed grid)."""
    if len(curve) <= 2 * points:
        return curve
    every = math.ceil(len(curve) / points)
    return curve[every - 1 :: every] + ([curve[-1]] if len(curve) % every else [])


@dataclass(frozen=True)
class Job:
    """What train() trains and where its state goes: a run of `steps` steps, a WSD trunk segment (constant LR
    after warmup, `steps` None, up to step `until`, its end state saved to `output`) or a branch (a run whose
    first state is its trunk's checkpoint `initial`, only read). `ckpt` is its own checkpoint: it resumes there."""

    ckpt: Checkpointer
    steps: int | None
    until: int
    initial: Checkpointer | None = None
    output: Checkpointer | None = None

    @classmethod
    def run(cls, steps: int, ckpt: Checkpointer, initial: Checkpointer | None = None) -> Job:
        """A run (a branch when it starts from `initial`)."""
        return cls(ckpt, steps, steps, initial)

    @classmethod
    def segment(cls, until: int, ckpt: Checkpointer, output: Checkpointer, initial: Checkpointer | None = None) -> Job:
        """A trunk segment from `initial` (the previous segment's end; None: the trunk's start) to `until`."""
        return cls(ckpt, None, until, initial, output)


def _resume(job: Job, model, optimizer, world: World, tracker: Tracker) -> tuple[int, list, float, tuple, list]:
    """(start step, curve, elapsed seconds, open logging interval, task metrics) from the job's checkpoint, else
    from the trunk's it starts from, else a fresh start; model, optimizer and RNGs are restored in place."""
    state = job.ckpt.load()
    if state is None and job.initial is not None:
        state = job.initial.load()
        if state is None:
            raise RuntimeError(f"the trunk checkpoint {job.initial.key} this run starts from is missing; its segment "
                               "must finish first")  # retryable: the executors run the segment before
    if state is None:
        return 0, [], 0.0, (0.0, 0), []
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    _set_rng(state["rng"][world.rank % len(state["rng"])])  # a new world size reuses states
    if world.is_main:
        print(f"resuming at step {state['step']}/{job.until}", file=sys.stderr)
    tracker.resumed(state["step"])
    return state["step"], state["curve"], state["elapsed"], state["interval"], list(state.get("tasks", []))


def _accumulate_fitting(step_loss, optimizer, inputs, targets, micro: int, accum: int, ddp, world: World,
                        adapt: bool) -> tuple[torch.Tensor, int, int]:
    """The step's summed loss, and the (micro, accum) it used: with `adapt` (microBatchSize unset, one process,
    the first step) a micro-batch too large for memory is halved until one fits, the global batch the same."""
    while True:
        try:
            return _accumulate(step_loss, inputs, targets, micro, accum, ddp, world.device), micro, accum
        except torch.cuda.OutOfMemoryError:
            if not adapt or micro == 1:
                raise
            optimizer.zero_grad(set_to_none=True)
            if world.device.type == "cuda":
                torch.cuda.empty_cache()
            tried = micro
            micro, accum = fitting_micro_batch(micro, micro * accum)
            print(f"out of memory with {tried} sequences per forward pass; now {micro} ({accum} accumulated: "
                  "the same global batch)", file=sys.stderr)


def run_evaluator(evaluator, model, device: torch.device, step: int, tokens: int) -> dict:
    """The eval plugin's metrics at this step, with the model in eval mode and every RNG as it was before: an
    evaluation never changes what training computes next."""
    rng = _get_rng(device)
    model.eval()
    try:
        with torch.no_grad(), _autocast(device):
            metrics = evaluator(model)
    finally:
        model.train()
        _set_rng(rng)
    return {"step": step, "tokens": tokens, "metrics": metrics}


def train(model, data, loss_fn, cfg: Training, job: Job, world: World, param_groups: list[dict] | None = None,
          stop: StopFlag | None = None, tracker: Tracker | None = None,
          flops_per_token: float | None = None, evaluator=None) -> Outcome:
    """Train `model` through `job` (ff_trainer.train.Job: a run, a trunk segment or a branch), optimizer steps of
    the global batch, resuming from the job's checkpoint when it has one.

    `stop` is polled once per step: when set (SIGTERM), a checkpoint is written and Interrupted raised. A
    segment ends with its state in `job.output` (status "segment", no evaluation). Each curve point also goes
    to `tracker` (with the learning rate, tokens/s over the interval and MFU where `flops_per_token` and the GPU
    are known). `evaluator(model) -> {metric: value}` (the eval plugin, main process only) is run at every
    checkpoint of a run and after its last step; its metrics go into the outcome and the checkpoints.
    """
    stop = stop or StopFlag(install=False)
    tracker = tracker or Tracker()
    device = torch.cuda.get_device_name(world.device) if world.device.type == "cuda" else "cpu"
    steps, until, ckpt = job.steps, job.until, job.ckpt
    micro, accum = _micro_batches(cfg, world)
    model.to(world.device)
    losses = StepLoss(model, loss_fn, fused=cfg.fused_readout, compile=cfg.compile)
    ddp = DistributedDataParallel(losses) if world.world_size > 1 else None
    step_loss = step_loss_of(losses, ddp, cfg.compile)
    optimizer = _optimizer(model, cfg, world.device, param_groups)
    log_every = cfg.log_every(steps or 0)

    # everything the loop needs to continue exactly where it stopped
    start, curve, elapsed, interval, tasks = _resume(job, model, optimizer, world, tracker)
    evaluates = evaluator is not None and world.is_main and job.output is None
    interval_loss = torch.tensor(interval[0], device=world.device)  # loss summed since the last curve point
    interval_steps = interval[1]

    def save(step: int, to: Checkpointer = ckpt) -> None:
        # The open logging interval is saved too (as its mean over ranks), so a resumed curve is exact.
        pending = (float(world.mean(interval_loss)), interval_steps)
        rng = world.gather(_get_rng(world.device))  # every rank's generators, saved by rank 0
        to.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                   "curve": curve, "interval": pending, "rng": rng, "tasks": tasks,
                   "elapsed": elapsed + time.perf_counter() - began})

    stream = device_batches(data.batches(
        "train", sequence_length=cfg.sequence_length, batch_size=cfg.global_batch_sequences,
        rank=world.rank, world_size=world.world_size, seed=cfg.seed, start=start,
    ), world.device, "train")
    began = time.perf_counter()
    logged = (start, began)  # the last curve point: (step, time), for tokens/s over the interval
    for step in range(start, until):
        scale = cfg.learning_rate * lr_multiplier(step, steps, cfg)
        for group in optimizer.param_groups:
            group["lr"] = scale * group["lr_scale"]
        inputs, targets = next(stream)  # this rank's share: (share, T) each, already on the device
        adapt = cfg.micro_batch_size is None and world.world_size == 1 and step == start
        loss, micro, accum = _accumulate_fitting(step_loss, optimizer, inputs, targets, micro, accum, ddp, world,
                                                 adapt)
        interval_loss += loss
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        interval_steps += 1

        done = step + 1
        if done % log_every == 0 or done == steps:  # a segment's open interval goes on in its checkpoint
            mean = float(world.mean(interval_loss)) / interval_steps
            interval_loss.zero_()
            interval_steps = 0
            if not math.isfinite(mean):
                return Outcome("diverged", None, None, curve, 0.0, elapsed + time.perf_counter() - began)
            curve.append({"step": done, "tokens": done * cfg.global_batch_tokens, "loss": mean})
            if world.is_main:
                print(f"step {done}/{steps} loss {mean:.4f}", file=sys.stderr)
                now = time.perf_counter()
                rate = (done - logged[0]) * cfg.global_batch_tokens / max(now - logged[1], 1e-9)
                logged = (done, now)
                tracker.log(done, {"train/loss": mean, "train/lr": scale,
                                   "train/tokens": done * cfg.global_batch_tokens, "train/tokens_per_second": rate,
                                   "train/mfu": mfu(flops_per_token or 0.0, rate, device, world.world_size)})
        if done % cfg.checkpoint_every_steps == 0 and done < until:
            if evaluates:
                tasks.append(run_evaluator(evaluator, model, world.device, done, done * cfg.global_batch_tokens))
            save(done)
        # Across processes the flag is agreed by an all-reduce (a host sync), so only every few steps.
        if (world.world_size == 1 or done % STOP_POLL_STEPS == 0) and world.any(stop.set):
            save(done)
            world.barrier()
            raise Interrupted(f"stopped at step {done} of {steps}; checkpoint saved")
    this_run = time.perf_counter() - began
    tokens_per_second = (until - start) * cfg.global_batch_tokens / max(this_run, 1e-9)
    if job.output is not None:
        save(until, job.output)
        world.barrier()
        return Outcome("segment", None, None, curve, tokens_per_second, elapsed + this_run)
    eval_loss = evaluate(model, losses, data, cfg, world, micro)
    status = "completed" if math.isfinite(eval_loss) else "diverged"
    if evaluates and status == "completed":
        tasks.append(run_evaluator(evaluator, model, world.device, until, until * cfg.global_batch_tokens))
    return Outcome(status, curve[-1]["loss"], eval_loss if status == "completed" else None,
                   thinned(curve, cfg.log_points), tokens_per_second, elapsed + this_run, tasks)
