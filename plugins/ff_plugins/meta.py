"""Build a model on the meta device to count its parameters: shapes only, no memory, no initialisation.

Initialisers are no-ops while `shapes_only()` is active: on meta tensors they would fill nothing, and the
first `normal_` on a meta tensor imports torch._dynamo (0.8 s of every trainer's and every count's start-up
on a CPU). Not thread-safe (it swaps torch.nn.init's functions): count, then build, in one thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Modules created inside live on the meta device and are not initialised."""
    init = torch.nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))]
    saved = {n: getattr(init, n) for n in names}
    try:
        for name in names:
            setattr(init, name, lambda tensor, *args, **kwargs: tensor)
        with torch.device("meta"):
            yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)
