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
from ff_operator.reconcile import ObservedJob, observe, reconcile

VERSION, PLURAL = "v1alpha1", "scalingsweeps"
RESYNC_SECONDS = 30.0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(message: str, generation: int) -> dict[str, Any]:
    """The status of a sweep that cannot be planned: a clear condition, and no Jobs."""
    return {"phase": "Invalid", "observedGeneration": generation, "conditions": [
        {"type": "Valid", "status": "False", "reason": "InvalidSpec", "message": message, "lastTransitionTime": _now()}]}


def sync(body: dict[str, Any], jobs: list[ObservedJob]) -> tuple[dict[str, Any], tuple]:
    """Reconcile one sweep from its Jobs (as the index holds them), apply the actions; (new status, events)."""
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


@kopf.index("batch", "v1", "jobs", labels={LABEL_SWEEP: kopf.PRESENT})
def sweep_jobs(body: kopf.Body, namespace: str, **_: Any) -> dict[tuple[str, str], ObservedJob]:
    """Our Jobs, kept current by the watch and grouped by sweep: reconciling reads memory, not a LIST.

    (A LIST per Job event made completing a sweep O(n^2) in bytes: each Job carries the whole sweep.)
    """
    job = {"metadata": {"name": body["metadata"]["name"], "labels": dict(body["metadata"].get("labels", {}))},
           "status": {"conditions": list(body.get("status", {}).get("conditions", []))}}
    return {(namespace, job["metadata"]["labels"][LABEL_SWEEP]): observe(job)}


def _jobs_of(index: kopf.Index, namespace: str, name: str) -> list[ObservedJob]:
    return list(index.get((namespace, name), []))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.scanning.disabled = True  # watch only what the handlers name


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def on_sweep(body: kopf.Body, patch: kopf.Patch, sweep_jobs: kopf.Index, **_: Any) -> None:
    meta = body["metadata"]
    status, events = sync(dict(body), _jobs_of(sweep_jobs, meta["namespace"], meta["name"]))
    patch.status.update(status)
    for reason, message in events:
        kopf.info(body, reason=reason, message=message)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_SWEEP: kopf.PRESENT})
def on_job(body: kopf.Body, type: str | None, sweep_jobs: kopf.Index, **_: Any) -> None:
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
    status, _ = sync(sweep, _jobs_of(sweep_jobs, meta["namespace"], sweep["metadata"]["name"]))
    api.patch_namespaced_custom_object_status(GROUP, VERSION, meta["namespace"], PLURAL, sweep["metadata"]["name"],
                                              {"status": status})
