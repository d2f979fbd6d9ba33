"""Write or print crds/scalingsweeps.flopsfit.dev.yaml from ff_core.crd (one source of truth: the models).

`python -m ff_operator.crd --write` regenerates the file and the Helm chart's copy of it; a test fails when
either and the models disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ff_core.crd import GROUP, IMMUTABLE, MAX_EXPERIMENTS, PLURAL, crd_manifest, spec_schema  # noqa: F401

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / f"{PLURAL}.{GROUP}.yaml"
CHART_CRD_PATH = Path(__file__).resolve().parents[2] / "helm" / "flops-fit" / "files" / CRD_PATH.name  # its copy


class _NoAliases(yaml.SafeDumper):
    """Plain YAML without &anchors (shared sub-schemas are written out in full)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    header = "# Generated from ff_core.spec by `python -m ff_operator.crd --write`; do not edit by hand.\n"
    return header + yaml.dump(crd_manifest(), Dumper=_NoAliases, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ff_operator.crd", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {CRD_PATH.name} instead of printing it")
    args = parser.parse_args(argv)
    if args.write:
        for path in (CRD_PATH, CHART_CRD_PATH):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render())
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
