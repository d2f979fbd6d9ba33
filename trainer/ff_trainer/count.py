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
from ff_trainer.plugins import ModelPlugin, load_plugin


def count_sizes(sweep: ScalingSweep) -> list[dict]:
    """[{name, nParams, nonEmbeddingParams}] for every size of the sweep, in spec order."""
    plugin = load_plugin(sweep.spec.model, ModelPlugin, "model")
    counts = []
    for size in sweep.spec.sizes:
        try:
            total, non_embedding = plugin.count_params(size.knobs, sweep.spec.training.sequence_length)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"size {size.name!r}: the model plugin rejected its knobs: {error}") from None
        counts.append({"name": size.name, "nParams": int(total), "nonEmbeddingParams": int(non_embedding)})
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
