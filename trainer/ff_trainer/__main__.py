"""`python -m ff_trainer --sweep FILE --experiment ID [--store URI]` (also under torchrun); ID may be a step."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ff_core import exit_codes, launch
from ff_core.errors import SpecError, StoreError
from ff_core.spec import load_sweep, parse_sweep
from ff_core.store import open_store
from ff_trainer.errors import ConfigError
from ff_trainer.run import run_experiment
from ff_trainer.train import Interrupted


def _read_sweep(where: str):
    """A sweep from a file, or from an environment variable (the Job manifest passes it as FF_SWEEP)."""
    if not where.startswith("env:"):
        return load_sweep(where)
    name = where[len("env:"):]
    if name not in os.environ:
        raise SpecError(f"--sweep {where}: the environment variable {name} is not set")
    try:
        return parse_sweep(json.loads(os.environ[name]), f"${name}")
    except json.JSONDecodeError as error:
        raise SpecError(f"${name}: not valid JSON ({error})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ff_trainer", description="Train one experiment of a ScalingSweep.")
    parser.add_argument("--sweep", required=True,
                        help="the sweep file (YAML or JSON), or env:NAME to read its JSON from that variable (Jobs)")
    parser.add_argument("--experiment", "--step", dest="experiment", required=True,
                        help="experiment id, or a WSD trunk segment's id, as `ffctl plan` lists them")
    parser.add_argument("--store", help="result store URI; default: the sweep's spec.storage.uri")
    args = parser.parse_args(argv)
    try:
        sweep = _read_sweep(args.sweep)
        storage = sweep.spec.storage
        store = open_store(args.store or storage.uri, spec_endpoint=storage.endpoint_url)
        return run_experiment(sweep, args.experiment, store)
    except (SpecError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_codes.BAD_CONFIG
    except Interrupted as stop:
        print(f"interrupted: {stop}", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1  # the store may come back: retryable


if __name__ == "__main__":
    launch.skip_collection_at_exit()
    sys.exit(main())
