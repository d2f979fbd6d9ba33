"""ff_core: the shared vocabulary of flops-fit (spec, plan, flops, results, store); no torch, no Kubernetes."""

from ff_core.errors import FlopsFitError, SpecError, StoreError

__all__ = ["FlopsFitError", "SpecError", "StoreError"]
