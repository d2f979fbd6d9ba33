"""kopf handlers: parse the sweep, call the pure core (plan, reconcile, build_job), do the I/O. Nothing else.

Run with `kopf run -m ff_operator.handlers --all-namespaces` (in cluster: in-cluster config; else kubeconfig).
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf
import kubernetes

from ff_core.errors import FlopsFitError
from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep
from ff_operator.jobs import GROUP, LABEL_SWEEP, build_job
from ff_operator.reconcile import observe, reconcile

VERSION, PLURAL = "v1alpha1", "scalingsweeps"
RESYNC_SECONDS = 30.0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(message: str, generation: int) -> dict[str, Any]:
    """The status of a sweep that cannot be planned: a clear condition, and no Jobs."""
    return {"phase": "Invalid", "observedGeneration": generation, "conditions": [
        {"type": "Valid", "status": "False", "reason": "InvalidSpec", "message": message, "lastTransitionTime": _now()}]}


def sync(body: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
    """Reconcile one sweep: list its Jobs by label, apply reconcile()'s actions; (new status, events)."""
    meta, previous = body["metadata"], dict(body.get("status") or {})
    namespace, generation = meta["namespace"], meta.get("generation", 1)
    manifest = {k: body[k] for k in ("apiVersion", "kind", "spec")} | {
        "metadata": {"name": meta["name"], "namespace": namespace}}
    try:
        sweep = parse_sweep(manifest, f"{namespace}/{meta['name']}")
        plan = plan_sweep(sweep)
    except FlopsFitError as error:
        return _invalid(str(error), generation), (("InvalidSpec", str(error)[:1000]),)
    batch = kubernetes.client.BatchV1Api()
    found = batch.list_namespaced_job(namespace, label_selector=f"{LABEL_SWEEP}={sweep.name}").items
    raw = [kubernetes.client.ApiClient().sanitize_for_serialization(j) for j in found]
    jobs = [observe(j) for j in raw if j["metadata"].get("labels", {}).get(LABEL_SWEEP) == sweep.name]
    actions = reconcile(plan, sweep.spec.execution, jobs, previous, generation, _now())
    for experiment, attempt in actions.create:
        try:
            batch.create_namespaced_job(namespace, build_job(sweep, experiment, attempt, meta["uid"]))
        except kubernetes.client.ApiException as error:
            if error.status != 409:  # "already exists" is success: names are deterministic
                raise kopf.TemporaryError(f"creating a Job failed: {error.status} {error.reason}", delay=10) from None
    for name in actions.delete:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    return actions.status, actions.events


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.scanning.disabled = True  # watch only what the handlers name


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def on_sweep(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    status, events = sync(dict(body))
    patch.status.update(status)
    for reason, message in events:
        kopf.info(body, reason=reason, message=message)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_SWEEP: kopf.PRESENT})
def on_job(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A Job of ours changed: reconcile its sweep now, not at the next resync."""
    if type not in ("MODIFIED", "DELETED"):
        return
    meta = body["metadata"]
    api = kubernetes.client.CustomObjectsApi()
    try:
        sweep = api.get_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, meta["labels"][LABEL_SWEEP])
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return  # the sweep is gone; its Jobs go with it (ownerReferences)
        raise
    status, _ = sync(sweep)
    api.patch_namespaced_custom_object_status(GROUP, VERSION, meta["namespace"], PLURAL, sweep["metadata"]["name"],
                                              {"status": status})
