"""A sweep manifest checked against the ScalingSweep schema the cluster enforces, before it is applied."""

from __future__ import annotations

import jsonschema

from ff_client.cluster.connection import ClusterError
from ff_core.crd import crd_manifest


def validate(manifest: dict, schema: dict | None) -> None:
    """Check the manifest against the CRD's openAPIV3Schema (the cluster's if readable, else ours)."""
    schema = schema or crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        where = lambda e: ".".join(str(p) for p in e.path) or "(top)"  # noqa: E731
        raise ClusterError("the sweep does not match the cluster's ScalingSweep schema: " + "; ".join(
            f"{where(e)}: {e.message}" for e in errors[:5]) + " (a newer or older CRD? upgrade the chart or ffctl)")
    unknown = unknown_fields(manifest, schema)
    if unknown:  # the API server would drop them without a word (pruning), and the sweep would run without them
        raise ClusterError(f"the cluster's ScalingSweep CRD does not know {', '.join(unknown[:5])}; it would "
                                   "silently drop them: upgrade the chart (its CRD) to this ffctl's version")


def unknown_fields(value, schema: dict, path: str = "") -> list[str]:
    """Paths in `value` that a structural schema would prune (fields it neither declares nor preserves)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and "properties" in schema:
        found = []
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            if key not in schema["properties"]:
                found.append(where)
            else:
                found += unknown_fields(sub, schema["properties"][key], where)
        return found
    if isinstance(value, list) and "items" in schema:
        return [p for i, item in enumerate(value) for p in unknown_fields(item, schema["items"], f"{path}[{i}]")]
    return []
