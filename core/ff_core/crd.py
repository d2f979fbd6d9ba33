"""The ScalingSweep CustomResourceDefinition as plain data, generated from the spec's pydantic models.

The schema is structural (every node typed, no $ref, no anyOf): pydantic's JSON Schema is rewritten into
the OpenAPI v3.0 subset Kubernetes accepts, and CEL rules add what a schema cannot say (sweep size,
immutability of the plan-defining fields). The operator writes it to crds/ (`python -m ff_operator.crd`);
ffctl validates a sweep against it before submitting.
"""

from __future__ import annotations

from typing import Any

from ff_core.spec import API_VERSION, KIND, LABEL_VALUE, MAX_POD_METADATA, PLUGIN_PATH, RESERVED_PREFIX, SweepSpec
from ff_core.status import PRINTER_COLUMNS

GROUP, VERSION = API_VERSION.split("/")
PLURAL, SINGULAR, SHORT = "scalingsweeps", "scalingsweep", "sweep"
# The labels on every Job and pod of a sweep: the operator finds its children by them, ffctl the pods.
LABEL_SWEEP, LABEL_EXPERIMENT, LABEL_ATTEMPT = f"{GROUP}/sweep", f"{GROUP}/experiment", f"{GROUP}/attempt"
# A packed Job (execution.experimentsPerGPU > 1) and its pod: the experiment label holds the pack's id, this
# annotation its members and each one's attempt, "<step id>:<attempt>,...".
ANNOTATION_PACK = f"{GROUP}/pack"
# The field manager of each writer's creates and patches (metadata.managedFields; server-side apply conflicts
# name it). kopf's own writes (its finalizer and progress annotations, events) go under its user agent, "kopf".
FIELD_MANAGER_OPERATOR, FIELD_MANAGER_CLIENT = "flops-fit-operator", "ffctl"


def parse_pack(annotation: str) -> tuple[tuple[str, int], ...]:
    """The members of a packed Job or pod from its annotation "<step id>:<attempt>,..."."""
    return tuple((m.rsplit(":", 1)[0], int(m.rsplit(":", 1)[1])) for m in annotation.split(",") if m)
MAX_EXPERIMENTS = 2000
# Fields that define the plan (and so the experiment ids): changing them would orphan running Jobs.
IMMUTABLE = ("model", "data", "loss", "flops", "budgets", "sizes", "pointsPerBudget", "tokensPerParam", "training",
             "ladder", "evaluation")
_DROP = {"title", "default", "description", "$defs"}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Pydantic JSON Schema -> Kubernetes structural OpenAPI v3.0, recursively."""
    if "$ref" in node:
        return _structural(defs[node["$ref"].split("/")[-1]] | {k: v for k, v in node.items() if k != "$ref"}, defs)
    variants = node.get("anyOf") or node.get("oneOf")
    if variants:
        kept = [v for v in variants if v.get("type") != "null"]
        if len(kept) == 2 and {v.get("type", "object") for v in kept} == {"number", "object"}:
            # a number or an object (training.learningRate: a rate, or a law): any value structurally, and the
            # spec's own validation (the operator's, ffctl's) says which of the two is wrong
            return {"x-kubernetes-preserve-unknown-fields": True} | (
                {"description": node["description"]} if "description" in node else {})
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


def _number(x: str) -> str:
    return f"(type({x}) == int || type({x}) == double)"


_LR = "self.learningRate"
_LAW_KEYS = ("law", "c", "nExponent", "dExponent", "nExponentSlope")
# Its schema keeps any value (a number or a law), so CEL says which: a map is a law (known keys only, counted with
# size() rather than iterated, so the rule's cost is bounded), anything else a number in (0, 1].
_LEARNING_RATE_RULE = (
    f"!has({_LR}) || (type({_LR}) == map ? (size({_LR}) == "
    + " + ".join(f"(has({_LR}.{k}) ? 1 : 0)" for k in _LAW_KEYS)
    + f" && has({_LR}.c) && {_number(_LR + '.c')} && double({_LR}.c) > 0.0 && (!has({_LR}.law) || {_LR}.law == "
    f"'power')"
    + "".join(f" && (!has({_LR}.{k}) || {_number(f'{_LR}.{k}')})" for k in _LAW_KEYS[2:])
    + f") : ({_number(_LR)} && double({_LR}) > 0.0 && double({_LR}) <= 1.0))")


def spec_schema() -> dict[str, Any]:
    schema = SweepSpec.model_json_schema(by_alias=True)
    spec = _structural(schema, schema.get("$defs", {}))
    props = spec["properties"]
    props["budgets"]["items"] |= {"minimum": 0, "exclusiveMinimum": True}
    for role in ("model", "data", "loss", "flops"):  # the import-path check of PluginRef, as a pattern
        props[role]["properties"]["plugin"]["pattern"] = PLUGIN_PATH.pattern
    pod_meta = props["execution"]["properties"]["podTemplate"]["properties"]["metadata"]
    for field in ("labels", "annotations"):
        pod_meta["properties"][field]["maxProperties"] = MAX_POD_METADATA  # bounds the cost of the rule below
    pod_meta["properties"]["labels"]["additionalProperties"] |= {"maxLength": 63, "pattern": LABEL_VALUE}
    pod_meta["x-kubernetes-validations"] = [
        {"rule": f"!has(self.{field}) || self.{field}.all(k, !k.startsWith('{RESERVED_PREFIX}'))",
         "message": f"podTemplate {field}: the {RESERVED_PREFIX} prefix is the operator's own; use another prefix"}
        for field in ("labels", "annotations")]
    props["training"]["x-kubernetes-validations"] = [{"rule": _LEARNING_RATE_RULE, "message": (
        "training.learningRate is a number in (0, 1] or a law {law: power, c, nExponent, dExponent, nExponentSlope} "
        "with c > 0 and "
        "numeric exponents, and no other keys")}]
    spec["x-kubernetes-validations"] = [
        {"rule": f"size(self.budgets) * (has(self.pointsPerBudget) ? self.pointsPerBudget : 5) <= {MAX_EXPERIMENTS}",
         "message": f"the sweep would plan more than {MAX_EXPERIMENTS} experiments; use fewer budgets or points"},
        {"rule": "!has(self.execution) || !has(self.execution.experimentsPerGPU) || "
                 "self.execution.experimentsPerGPU == 1 || ((!has(self.execution.gpusPerExperiment) || "
                 "self.execution.gpusPerExperiment <= 1) && (!has(self.execution.nodesPerExperiment) || "
                 "self.execution.nodesPerExperiment == 1))",
         "message": "experimentsPerGPU packs experiments of one GPU each; set gpusPerExperiment 1 (or 0) and "
                    "nodesPerExperiment 1, or experimentsPerGPU 1"},
        {"rule": "!has(self.execution) || !has(self.execution.managedBy) || has(self.execution.queueName)",
         "message": "execution.managedBy needs execution.queueName: MultiKueue dispatches only queued Jobs"},
        *[{"rule": f"has(oldSelf.{f}) == has(self.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f})",
           "message": f"spec.{f} defines the plan and cannot change; create a new sweep instead"} for f in IMMUTABLE],
    ]
    return spec


def crd_manifest() -> dict[str, Any]:
    columns = [(name, kind, f".status.{key}") for name, kind, key in PRINTER_COLUMNS] + [
        ("Age", "date", ".metadata.creationTimestamp")]
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
