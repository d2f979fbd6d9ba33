"""One step before any Job: the data and loss plugins loaded, a batch of each split drawn, the smallest model
built and its loss taken, on this machine (CPU, one micro-batch). What would fail every experiment of the
sweep fails here, in a second, with one line that says what to change.

The common plugin mistakes each get their explanation: batches that are not (inputs, targets) tensors (numpy
arrays, lists), an empty split, a loss that is not a scalar, a classification loss on a regression target, a
non-finite first loss, a regression target whose shape differs from the output's (the loss would broadcast
it), a count_params that disagrees with the model build() makes, a training stream that ends (an epoch with
no loop around it: STREAM_PROBE batches are drawn).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ff_core.spec import ScalingSweep
from ff_trainer import readout
from ff_trainer.errors import ConfigError
from ff_trainer.plugins import DataPlugin, LossFn, ModelPlugin, count_of, load_plugin

STREAM_PROBE = 16  # training batches drawn to show the stream goes on (every experiment takes more)


def _first_batch(data: Any, split: str, sweep: ScalingSweep, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
    cfg, path = sweep.spec.training, sweep.spec.data.plugin
    try:
        batch = next(iter(data.batches(split, sequence_length=cfg.sequence_length,
                                       batch_size=cfg.global_batch_sequences, rank=0, world_size=1, seed=cfg.seed)))
    except StopIteration:
        raise ConfigError(f"data plugin {path!r}: the {split!r} split yields no batch (empty data, or fewer tokens "
                          f"than one batch of {cfg.global_batch_tokens})") from None
    except Exception as error:  # noqa: BLE001  (user code: whatever it raises is the user's to fix)
        raise ConfigError(f"data plugin {path!r}: drawing the first {split!r} batch failed: "
                          f"{type(error).__name__}: {error}") from None
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ConfigError(f"data plugin {path!r}: batches() must yield (inputs, targets) pairs, got "
                          f"{type(batch).__name__}")
    kinds = [type(b).__name__ for b in batch]
    if not all(isinstance(b, torch.Tensor) for b in batch):
        raise ConfigError(f"data plugin {path!r}: batches() yields ({', '.join(kinds)}), not torch tensors; "
                          "convert them with torch.as_tensor (the trainer moves tensors to the GPU)")
    return batch[0][:micro], batch[1][:micro]


def _stream_goes_on(data: Any, sweep: ScalingSweep) -> None:
    cfg, path = sweep.spec.training, sweep.spec.data.plugin
    stream = iter(data.batches("train", sequence_length=cfg.sequence_length, batch_size=cfg.global_batch_sequences,
                               rank=0, world_size=1, seed=cfg.seed))
    for drawn in range(STREAM_PROBE):
        try:
            next(stream)
        except StopIteration:
            raise ConfigError(f"data plugin {path!r}: the 'train' stream ended after {drawn} batch(es); batches() "
                              "must not end (cycle over the data, as the built-in plugins do)") from None
        except Exception as error:  # noqa: BLE001
            raise ConfigError(f"data plugin {path!r}: drawing 'train' batch {drawn + 1} failed: "
                              f"{type(error).__name__}: {error}") from None


def first_step(sweep: ScalingSweep) -> None:
    """Load the plugins, draw a batch of each split, and take the smallest model's loss on the first one."""
    spec = sweep.spec
    data = load_plugin(spec.data, DataPlugin, "data")
    loss_fn = load_plugin(spec.loss, LossFn, "loss")
    model_plugin = load_plugin(spec.model, ModelPlugin, "model")
    micro, _ = spec.training.batch_split(1)
    inputs, targets = _first_batch(data, "train", sweep, micro)
    _first_batch(data, "eval", sweep, micro)
    _stream_goes_on(data, sweep)
    smallest = min(spec.sizes, key=lambda s: s.n_params or 0)
    try:
        model = model_plugin.build(smallest.knobs, spec.training.sequence_length)
        output = model(inputs)
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"model plugin {spec.model.plugin!r}, size {smallest.name!r}: the forward pass on the "
                          f"first batch (inputs {tuple(inputs.shape)} {inputs.dtype}) failed: "
                          f"{type(error).__name__}: {error}") from None
    built = sum(p.numel() for p in model.parameters())
    counted = count_of(model_plugin, spec.model.plugin, smallest.name, smallest.knobs, spec.training.sequence_length)[0]
    if counted != built:
        raise ConfigError(f"model plugin {spec.model.plugin!r}, size {smallest.name!r}: count_params says {counted} "
                          f"parameters but build() makes a model of {built}; fix the plugin's count_params (nParams "
                          "comes from it: `ffctl plan --write` would write the same wrong number)")
    try:
        loss = loss_fn(output, targets)
    except Exception as error:  # noqa: BLE001
        hint = (" (targets are floating point: a regression target wants a regression loss such as "
                "ff_plugins.losses:mse)" if targets.is_floating_point() else "")
        raise ConfigError(f"loss plugin {spec.loss.plugin!r}: failed on the model's output {tuple(output.shape)} and "
                          f"the targets {tuple(targets.shape)} {targets.dtype}{hint}: "
                          f"{type(error).__name__}: {error}") from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ConfigError(f"loss plugin {spec.loss.plugin!r}: returns {shape}, not a scalar tensor; reduce it "
                          "(e.g. .mean()) so that it can be back-propagated")
    if targets.is_floating_point() and tuple(output.shape) != tuple(targets.shape):
        raise ConfigError(f"loss plugin {spec.loss.plugin!r}: the model's output {tuple(output.shape)} and the "
                          f"targets {tuple(targets.shape)} differ in shape, and the loss broadcast them instead of "
                          f"failing; make the model ({spec.model.plugin!r}) or the data ({spec.data.plugin!r}) "
                          "give matching shapes")
    if not math.isfinite(float(loss)):
        raise ConfigError(f"loss plugin {spec.loss.plugin!r}: the first loss is {float(loss)} before any training: "
                          "check the data (NaN inputs?) and the model's initialisation")
    if spec.training.fused_readout:
        _check_fused(model, loss_fn, inputs, targets, float(loss), sweep)


def _check_fused(model, loss_fn, inputs: torch.Tensor, targets: torch.Tensor, loss: float,
                 sweep: ScalingSweep) -> None:
    """training.fusedReadout: the model and loss offer it, and it gives the loss of forward -> loss."""
    spec = sweep.spec
    gaps = readout.missing(model, loss_fn)
    if gaps:
        raise ConfigError(f"training.fusedReadout needs {' and '.join(gaps)}; model {spec.model.plugin!r}, loss "
                          f"{spec.loss.plugin!r}: set fusedReadout false, or see the fused readout in "
                          "docs/plugins.md")
    try:
        with torch.no_grad():
            weight, scale = model.readout()
            fused = float(readout.linear_cross_entropy(model.features(inputs), weight, targets, scale))
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"model plugin {spec.model.plugin!r}: features()/readout() failed on the first batch "
                          f"(training.fusedReadout): {type(error).__name__}: {error}") from None
    if not math.isclose(fused, loss, rel_tol=1e-4):
        raise ConfigError(f"model plugin {spec.model.plugin!r}: the fused readout's first loss {fused:.6g} is not "
                          f"forward -> loss's {loss:.6g}: forward(x) must equal scale * features(x) @ weight.T with "
                          "(weight, scale) = readout() (a readout bias is not supported); or set fusedReadout false")
