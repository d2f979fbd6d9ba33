"""The ScalingSweep CustomResourceDefinition, generated from ff_core's pydantic models (one source of truth).

`python -m ff_operator.crd --write` regenerates crds/scalingsweeps.flopsfit.dev.yaml; a test fails when the
committed file and the models disagree. The generated schema is structural (every node typed, no $ref, no
anyOf): pydantic's JSON Schema is rewritten into the OpenAPI v3.0 subset Kubernetes accepts, and CEL rules
add what a schema cannot say (sweep size, immutability of the plan-defining fields).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ff_core.spec import API_VERSION, KIND, PLUGIN_PATH, SweepSpec

GROUP, VERSION = API_VERSION.split("/")
PLURAL, SINGULAR, SHORT = "scalingsweeps", "scalingsweep", "sweep"
MAX_EXPERIMENTS = 2000
CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / f"{PLURAL}.{GROUP}.yaml"
# Fields that define the plan (and so the experiment ids): changing them would orphan running Jobs.
IMMUTABLE = ("model", "data", "loss", "flops", "budgets", "sizes", "pointsPerBudget", "tokensPerParam", "training")
_DROP = {"title", "default", "description", "$defs"}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Pydantic JSON Schema -> Kubernetes structural OpenAPI v3.0, recursively."""
    if "$ref" in node:
        return _structural(defs[node["$ref"].split("/")[-1]] | {k: v for k, v in node.items() if k != "$ref"}, defs)
    variants = node.get("anyOf")
    if variants:
        kept = [v for v in variants if v.get("type") != "null"]
        if len(kept) != 1:
            raise ValueError(f"cannot express a union of {kept} structurally")
        out = _structural(kept[0], defs)
        return out | ({"nullable": True} if len(kept) < len(variants) else {})
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "additionalProperties":
            continue
        if key == "properties":
            out["properties"] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _structural(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    extra = node.get("additionalProperties")
    if out.get("type") == "object" and "properties" not in out:
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = _structural(extra, defs)
        else:  # free-form (plugin args, knobs, tolerations): kept as written
            out["x-kubernetes-preserve-unknown-fields"] = True
    if "description" in node:
        out["description"] = node["description"]
    return out


def spec_schema() -> dict[str, Any]:
    schema = SweepSpec.model_json_schema(by_alias=True)
    spec = _structural(schema, schema.get("$defs", {}))
    props = spec["properties"]
    props["budgets"]["items"] |= {"minimum": 0, "exclusiveMinimum": True}
    for role in ("model", "data", "loss", "flops"):  # the import-path check of PluginRef, as a pattern
        props[role]["properties"]["plugin"]["pattern"] = PLUGIN_PATH.pattern
    spec["x-kubernetes-validations"] = [
        {"rule": f"size(self.budgets) * (has(self.pointsPerBudget) ? self.pointsPerBudget : 5) <= {MAX_EXPERIMENTS}",
         "message": f"the sweep would plan more than {MAX_EXPERIMENTS} experiments; use fewer budgets or points"},
        *[{"rule": f"has(oldSelf.{f}) == has(self.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f})",
           "message": f"spec.{f} defines the plan and cannot change; create a new sweep instead"} for f in IMMUTABLE],
    ]
    return spec


def crd_manifest() -> dict[str, Any]:
    columns = [("Phase", "string", ".status.phase"), ("Done", "integer", ".status.succeeded"),
               ("Total", "integer", ".status.total"), ("Running", "integer", ".status.running"),
               ("Failed", "integer", ".status.failed"), ("Age", "date", ".metadata.creationTimestamp")]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": KIND, "plural": PLURAL, "singular": SINGULAR, "shortNames": [SHORT]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": n, "type": t, "jsonPath": p} for n, t, p in columns],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": spec_schema(),
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                }},
            }],
        },
    }


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
        CRD_PATH.parent.mkdir(exist_ok=True)
        CRD_PATH.write_text(render())
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
