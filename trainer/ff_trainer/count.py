"""`python -m ff_trainer.count --sweep FILE [--check]`: each size's parameter counts from the model plugin,
as JSON; with --check, also one step of the smallest model on the data plugin's first batch (preflight).

The client runs this in a subprocess to fill nParams, so it never imports torch or user code itself. Exit 0,
3 for a configuration error, and exit_codes.NOT_IMPORTABLE when a plugin's package is not installed here.
"""

from __future__ import annotations

import argparse
import json
import sys

from ff_core import exit_codes, launch
from ff_core.errors import SpecError
from ff_core.spec import ScalingSweep, load_sweep
from ff_trainer.errors import ConfigError, PluginImportError
from ff_trainer.plugins import FlopsFn, ModelPlugin, count_of, flops_of, load_plugin
from ff_trainer.preflight import first_step

def count_sizes(sweep: ScalingSweep) -> list[dict]:
    """[{name, nParams, nonEmbeddingParams[, flopsPerToken]}] for every size, in spec order.

    flopsPerToken comes from the sweep's flops plugin, when it names one.
    """
    spec = sweep.spec
    plugin = load_plugin(spec.model, ModelPlugin, "model")
    flops = load_plugin(spec.flops, FlopsFn, "flops") if spec.flops else None
    seq = spec.training.sequence_length
    counts = []
    for size in spec.sizes:
        total, non_embedding = count_of(plugin, spec.model.plugin, size.name, size.knobs, seq)
        entry = {"name": size.name, "nParams": total, "nonEmbeddingParams": non_embedding}
        if flops is not None:
            entry["flopsPerToken"] = flops_of(flops, spec.flops.plugin, size.name, size.knobs, seq)
        counts.append(entry)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ff_trainer.count", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", required=True)
    parser.add_argument("--check", action="store_true", help="also take one step of the smallest model (preflight)")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.sweep)
        counts = count_sizes(sweep)
        if args.check:
            first_step(sweep)
        print(json.dumps(counts))
    except PluginImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_codes.NOT_IMPORTABLE
    except (SpecError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_codes.BAD_CONFIG
    return exit_codes.DONE


if __name__ == "__main__":
    launch.skip_collection_at_exit()
    sys.exit(main())
