"""Fill each size's nParams from the model plugin, by running the trainer's counter in a subprocess.

The client never imports torch or user code: the counter runs where the plugins are installed (forked from
the fork server when `ffctl run` started one: ff_core.launch).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml

from ff_core import exit_codes, launch
from ff_core.errors import SpecError
from ff_core.spec import ScalingSweep, parse_sweep


def needs_counts(sweep: ScalingSweep) -> bool:
    return any(size.n_params is None for size in sweep.spec.sizes)


class PluginsNotHere(SpecError):
    """A plugin's package is not importable in this environment (a laptop that only submits, say)."""


def count_params(sweep: ScalingSweep, check: bool = False) -> list[dict]:
    """[{name, nParams, nonEmbeddingParams}] from `python -m ff_trainer.count`; `check` also takes one step of
    the smallest model on the data plugin's first batch (ff_trainer.preflight)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, out, err = Path(tmp) / "sweep.json", Path(tmp) / "stdout", Path(tmp) / "stderr"
        path.write_text(json.dumps(sweep.to_manifest()))
        code = launch.start("ff_trainer.count", ["--sweep", str(path), *(["--check"] if check else [])],
                            dict(os.environ), out, err).wait()
        stdout, stderr = out.read_text(), err.read_text()
    if code != 0:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {code}"
        error = PluginsNotHere if code == exit_codes.NOT_IMPORTABLE else SpecError
        what = "checking the sweep with its plugins" if check else "counting parameters with the model plugin"
        raise error(f"{what} failed: {detail.removeprefix('error: ')}")
    return json.loads(stdout)


def fill_params(sweep: ScalingSweep, check: bool = False) -> ScalingSweep:
    """The sweep with every size's nParams (and flopsPerToken, given a flops plugin) from the plugins.

    Sizes that already carry nParams are checked against the plugin's count.
    """
    manifest = sweep.to_manifest()
    counts = {c["name"]: c for c in count_params(sweep, check)}
    for size in manifest["spec"]["sizes"]:
        counted = counts[size["name"]]
        written = size.get("nParams")
        if written is not None and written != counted["nParams"]:
            raise SpecError(
                f"size {size['name']!r}: nParams is {written} but the model plugin counts {counted['nParams']}; "
                "remove nParams to have it filled, or fix the knobs"
            )
        size["nParams"] = counted["nParams"]
        if "flopsPerToken" in counted:  # the sweep names a flops plugin: it defines the budget's D
            written = size.get("flopsPerToken")
            if written is not None and abs(written - counted["flopsPerToken"]) > 1e-9 * counted["flopsPerToken"]:
                raise SpecError(
                    f"size {size['name']!r}: flopsPerToken is {written:g} but the flops plugin counts "
                    f"{counted['flopsPerToken']:g}; remove it to have it filled, or fix the knobs"
                )
            size["flopsPerToken"] = counted["flopsPerToken"]
    if manifest == sweep.to_manifest():  # every count was written and checks out: nothing to parse again
        return sweep
    return parse_sweep(manifest, sweep.name)


def write_sweep(sweep: ScalingSweep, path: str | Path) -> None:
    """Write the sweep back as YAML (comments in the original are not kept)."""
    Path(path).write_text(yaml.safe_dump(sweep.to_manifest(), sort_keys=False))
