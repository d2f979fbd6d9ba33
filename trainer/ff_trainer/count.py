"""`python -m ff_trainer.count --sweep FILE`: each size's parameter counts from the model plugin, as JSON.

The client runs this in a subprocess to fill nParams, so it never imports torch or user code itself.
"""

from __future__ import annotations

import argparse
import json
import sys

from ff_core import exit_codes
from ff_core.errors import SpecError
from ff_core.spec import ScalingSweep, load_sweep
from ff_trainer.errors import ConfigError
from ff_trainer.plugins import FlopsFn, ModelPlugin, load_plugin


def count_sizes(sweep: ScalingSweep) -> list[dict]:
    """[{name, nParams, nonEmbeddingParams[, flopsPerToken]}] for every size, in spec order.

    flopsPerToken comes from the sweep's flops plugin, when it names one.
    """
    plugin = load_plugin(sweep.spec.model, ModelPlugin, "model")
    flops = load_plugin(sweep.spec.flops, FlopsFn, "flops") if sweep.spec.flops else None
    seq = sweep.spec.training.sequence_length
    counts = []
    for size in sweep.spec.sizes:
        try:
            total, non_embedding = plugin.count_params(size.knobs, seq)
            entry = {"name": size.name, "nParams": int(total), "nonEmbeddingParams": int(non_embedding)}
            if flops is not None:
                entry["flopsPerToken"] = float(flops(size.knobs, seq))
        except (TypeError, ValueError, KeyError) as error:
            raise ConfigError(f"size {size.name!r}: the plugin rejected its knobs: {error!r}") from None
        counts.append(entry)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ff_trainer.count", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", required=True)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(count_sizes(load_sweep(args.sweep))))
    except (SpecError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_codes.BAD_CONFIG
    return exit_codes.DONE


if __name__ == "__main__":
    sys.exit(main())
