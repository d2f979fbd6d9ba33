"""Plugin protocols (model, data, loss) and the one loader that resolves "package.module:Name" paths."""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, Protocol, runtime_checkable

from ff_core.spec import PluginRef
from ff_trainer.errors import ConfigError, PluginError, PluginImportError

Batch = tuple[Any, Any]  # (inputs, targets), tensors or anything the model and loss agree on


@runtime_checkable
class ModelPlugin(Protocol):
    """Builds the model of one size of the family, and counts its parameters without building it for real.

    Optional methods, used when present: `flops_per_token(knobs, sequence_length) -> float` (an exact
    training FLOP count, recorded beside 6ND) and `param_groups(model) -> list[dict]` (optimizer groups,
    e.g. for muP-style per-layer learning rates; default: weight decay on matrices only).
    """

    def build(self, knobs: Mapping[str, Any], sequence_length: int) -> Any:
        """An nn.Module for these size knobs."""

    def count_params(self, knobs: Mapping[str, Any], sequence_length: int) -> tuple[int, int]:
        """(total, non-embedding) parameter counts, cheaply (e.g. on the meta device)."""


@runtime_checkable
class DataPlugin(Protocol):
    """Deterministic batches: step `start + k` of `split` for `rank` of `world_size` is the k-th item.

    Optional: `unique_tokens(split, sequence_length) -> int`, the distinct tokens available; recorded so
    that analysis can tell runs that repeat their data (Muennighoff et al. 2023). Optional:
    `untrained_loss() -> float`, the loss of a model that learned nothing (ln of the number of classes for
    cross-entropy); recorded so that analysis can exclude runs that never beat it.
    """

    def batches(
        self, split: str, *, sequence_length: int, batch_size: int, rank: int, world_size: int,
        seed: int, start: int = 0,
    ) -> Iterator[Batch]:
        """This rank's share (batch_size // world_size sequences) of each global batch, from step `start`."""


@runtime_checkable
class LossFn(Protocol):
    """A scalar loss from the model's output and the batch's targets."""

    def __call__(self, output: Any, targets: Any) -> Any: ...


@runtime_checkable
class FlopsFn(Protocol):
    """Training FLOPs per token of a size, for models where 6N is wrong (MoE, SSMs, CNNs, ViTs)."""

    def __call__(self, knobs: Mapping[str, Any], sequence_length: int) -> float: ...


@runtime_checkable
class EvalPlugin(Protocol):
    """Task metrics of a model partway through training (spec.evaluation): e.g. the accuracy on a multiple-choice
    task and the mean log-likelihood of the right answer. Called in the main process with the model in eval mode,
    under no_grad, and every RNG restored after it, so an evaluation never changes training."""

    def evaluate(self, model: Any, data: Any, *, sequence_length: int, device: Any, seed: int) -> Mapping[str, float]:
        """{metric name: a finite number} for this model; `data` is the sweep's data plugin."""


def load_object(path: str) -> Any:
    """Resolve "package.module:Name" (Name may be dotted), naming the path in every error."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise PluginError(f'plugin {path!r}: write it as "package.module:Name"')
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise PluginImportError(
            f"plugin {path!r}: cannot import module {module_name!r} ({error}); "
            "is the package installed in this environment?"
        ) from None
    except Exception as error:  # the user's module raised while importing: report, don't crash deep inside
        raise PluginError(f"plugin {path!r}: importing {module_name!r} failed: "
                          f"{type(error).__name__}: {error}") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"plugin {path!r}: module {module_name!r} has no attribute {attr_path!r}") from None
    return obj


def _missing_methods(obj: Any, protocol: type) -> list[str]:
    wanted = [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
    if protocol in (LossFn, FlopsFn):
        wanted = ["__call__"]
    return [name for name in wanted if not callable(getattr(obj, name, None))]


def load_plugin(ref: PluginRef, protocol: type, role: str) -> Any:
    """Load a plugin: a class is instantiated with `args`; a function gets `args` bound as keywords."""
    obj = load_object(ref.plugin)
    try:
        if inspect.isclass(obj):
            instance = obj(**ref.args)
        elif ref.args and callable(obj):
            instance = partial(obj, **ref.args)
        else:
            instance = obj
    except Exception as error:  # a plugin's constructor is user code: whatever it raises is a configuration error
        raise PluginError(f"{role} plugin {ref.plugin!r}: cannot be built with args {ref.args}: "
                          f"{type(error).__name__}: {error}") from None
    missing = _missing_methods(instance, protocol)
    if missing:
        raise PluginError(
            f"{role} plugin {ref.plugin!r} does not satisfy the {protocol.__name__} protocol: "
            f"missing {', '.join(missing)}"
        )
    return instance


def count_of(plugin, path: str, size: str, knobs: Mapping[str, Any], sequence_length: int) -> tuple[int, int]:
    """(total, non-embedding) parameters by the model plugin's count_params, or a ConfigError that names the
    plugin, the size and what it did wrong (raised, or returned something other than two counts)."""
    try:
        value = plugin.count_params(knobs, sequence_length)
    except Exception as error:  # noqa: BLE001  (user code)
        raise ConfigError(f"model plugin {path!r}, size {size!r}: count_params({dict(knobs)}, {sequence_length}) "
                          f"raised {type(error).__name__}: {error}") from None
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ConfigError(f"model plugin {path!r}, size {size!r}: count_params returned {value!r}; it must return "
                          "(total, non-embedding) parameter counts: two positive ints")
    return int(value[0]), int(value[1])


def flops_of(fn, path: str, size: str, knobs: Mapping[str, Any], sequence_length: int) -> float:
    """Training FLOPs per token by the flops plugin, or a ConfigError naming the plugin, the size and the value."""
    try:
        value = fn(knobs, sequence_length)
    except Exception as error:  # noqa: BLE001  (user code)
        raise ConfigError(f"flops plugin {path!r}, size {size!r}: raised {type(error).__name__}: {error}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"flops plugin {path!r}, size {size!r}: returned {value!r}; it must return the training "
                          "FLOPs per token of that size: a positive number")
    return float(value)
