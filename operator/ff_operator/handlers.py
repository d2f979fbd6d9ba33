"""kopf handlers: parse the sweep, call the pure core (plan, reconcile, build_job), do the I/O. Nothing else.

Run with `kopf run -m ff_operator.handlers --all-namespaces` (in cluster: in-cluster config; else kubeconfig).
"""

from __future__ import annotations

import contextvars
import datetime
import functools
import json
import logging
import os
import secrets
import threading
from collections import defaultdict
from typing import Any

import kopf
import kubernetes
import urllib3

from ff_core.errors import FlopsFitError
from ff_core.plan import Plan, plan_sweep
from ff_core.spec import ScalingSweep, manifest_of, parse_sweep
from ff_core.crd import (ANNOTATION_PACK, FIELD_MANAGER_OPERATOR as MANAGER, GROUP, LABEL_ATTEMPT, LABEL_EXPERIMENT,
                         LABEL_SWEEP, PLURAL, VERSION, parse_pack)
from ff_core.status import INVALID, VALID
from ff_core.steps import Step, plan_steps
from ff_operator import metrics
from ff_operator.jobs import build_job, build_pack_job, build_service, job_name
from ff_operator.reconcile import ObservedJob, observe, reconcile

RESYNC_SECONDS = 30.0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(message: str, generation: int) -> dict[str, Any]:
    """The status of a sweep that cannot be planned: a clear condition, and no Jobs."""
    return {"phase": INVALID, "observedGeneration": generation, "conditions": [
        {"type": VALID, "status": "False", "reason": "InvalidSpec", "message": message, "lastTransitionTime": _now()}]}


@functools.lru_cache(maxsize=64)
def _planned(manifest: str) -> tuple[ScalingSweep, Plan, tuple[Step, ...]]:
    """Parse and plan, once per distinct manifest: the plan of a 1,000-experiment sweep costs ~20 ms."""
    data = json.loads(manifest)
    sweep = parse_sweep(data, f"{data['metadata']['namespace']}/{data['metadata']['name']}")
    plan = plan_sweep(sweep)
    return sweep, plan, plan_steps(sweep, plan)


_locks: dict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_tickets_lock = threading.Lock()
_tickets: dict[tuple[str, str], int] = defaultdict(int)
_covered: dict[tuple[str, str], int] = defaultdict(int)


def sync(body: dict[str, Any], jobs: list[ObservedJob], disrupted: list[tuple[str, str]],
         exits: dict[str, dict[str, int]] | None = None) -> tuple[dict[str, Any], tuple]:
    """Reconcile one sweep from its Jobs (as the index holds them), apply the actions; (new status, events)."""
    meta, previous = body["metadata"], dict(body.get("status") or {})
    namespace, generation = meta["namespace"], meta.get("generation", 1)
    if meta.get("deletionTimestamp"):  # being deleted (a finalizer holds it): start nothing, write nothing
        return previous, ()
    try:
        sweep, plan, steps = _planned(json.dumps(manifest_of(body), sort_keys=True))
    except FlopsFitError as error:
        status = _invalid(str(error), generation)
        if previous.get("phase") == INVALID and previous.get("conditions", [{}])[0].get("message") == str(error):
            return previous | {"observedGeneration": generation}, ()  # unchanged: no new write, no new event
        return status, (("InvalidSpec", str(error)[:1000]),)
    batch = kubernetes.client.BatchV1Api()
    actions = reconcile(plan, sweep.spec.execution, jobs, previous, generation, _now(), disrupted, meta.get("uid"),
                        steps, exits)
    failed: list[Transient] = []  # a create that failed does not stop the others; the status waits for all
    for experiment, attempt in actions.create:
        job = build_job(sweep, experiment, attempt, meta["uid"])
        try:
            created = _create("a Job", batch.create_namespaced_job, namespace, job)
            if created is not None:
                metrics.JOBS_CREATED.labels(namespace).inc()
            if sweep.spec.execution.nodes_per_experiment > 1:
                created = created or batch.read_namespaced_job(job["metadata"]["name"], namespace)
                service = build_service(job, created.metadata.uid)
                _create("a Service", kubernetes.client.CoreV1Api().create_namespaced_service, namespace, service)
        except Transient as error:
            failed.append(error)
    for members in actions.packs:
        job = build_pack_job(sweep, members, meta["uid"])
        try:
            if _create("a packed Job", batch.create_namespaced_job, namespace, job) is not None:
                metrics.JOBS_CREATED.labels(namespace).inc()
        except Transient as error:
            failed.append(error)
    for name in actions.delete:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    if failed:  # not written: the status would count Jobs that do not exist (the retry writes it)
        raise Transient(f"{failed[0]}" + (f" (and {len(failed) - 1} more creates)" if len(failed) > 1 else ""))
    return actions.status, actions.events


RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)  # seconds before each retry of a reconcile the API server failed


class Transient(Exception):
    """The API server failed a write it may take next time (429, 5xx, a conflict): reconcile again soon."""


def _transient(error: Exception) -> bool:
    if isinstance(error, Transient):
        return True
    if isinstance(error, kubernetes.client.ApiException):
        return error.status in (409, 429) or (error.status or 0) >= 500
    return isinstance(error, urllib3.exceptions.HTTPError)  # refused, reset, timed out


def _create(what: str, call, *args: Any) -> Any:
    """call(*args), a create; "already exists" is success (names are deterministic) and gives None.

    A transient failure raises Transient at once, with no sleep: the sweep's lock is held here, and the retry
    (sync_by_name's, a moment later) must not keep the sweep's other events waiting.
    """
    try:
        return call(*args, field_manager=MANAGER)
    except kubernetes.client.ApiException as error:
        if error.status == 409:
            return None
        metrics.api_error("create", error)
        if _transient(error):
            raise Transient(f"creating {what} failed: {error.status} {error.reason}") from None
        raise kopf.TemporaryError(f"creating {what} failed: {error.status} {error.reason}", delay=10) from None


_retries: dict[tuple[str, str], int] = defaultdict(int)  # failed reconciles in a row, per sweep
_retry_pending: set[tuple[str, str]] = set()


def sync_by_name(namespace: str, name: str, jobs: kopf.Index, pods: kopf.Index, exits: kopf.Index) -> None:
    """Reconcile one sweep at a time (Job, pod and sweep events race), coalescing bursts of events.

    Each call takes a ticket; a reconcile that starts after a ticket was taken sees that event (indexes are
    updated before handlers run), so a call whose ticket is already covered returns at once: 1,000 Jobs
    completing together cost a handful of reconciles, not 1,000.

    A reconcile the API server failed (a create or the status write answered 429, 5xx or a conflict, or no
    answer) is done again 0.25-4 s later from a timer, outside the lock: kopf does not retry the Job and pod
    event handlers this runs in, and sleeping in the lock would hold up the sweep's other events.
    """
    key = (namespace, name)
    with _tickets_lock:
        _tickets[key] += 1
        ticket = _tickets[key]
    with _locks[key]:
        if _covered[key] >= ticket:
            return
        with _tickets_lock:
            upto = _tickets[key]
        disrupted = [pair for pod in pods.get(key, []) for pair in pod]
        try:
            reconcile_sweep(namespace, name, list(jobs.get(key, [])), disrupted, dict(exits.get(key, [])))
        except Exception as error:
            if not _transient(error):
                raise
            if isinstance(error, urllib3.exceptions.HTTPError):  # no answer (an answer is counted where it came)
                metrics.api_error("request", error)
            _retry_soon(key, jobs, pods, exits, error)
            return
        _covered[key] = upto
        _retries.pop(key, None)


def _retry_soon(key: tuple[str, str], jobs: kopf.Index, pods: kopf.Index, exits: kopf.Index,
                error: Exception) -> None:
    """Reconcile the sweep again after a back-off (one timer per sweep at a time)."""
    with _tickets_lock:
        if key in _retry_pending:
            return
        _retry_pending.add(key)
        delay = RETRY_DELAYS[min(_retries[key], len(RETRY_DELAYS) - 1)]
        _retries[key] += 1
    logging.getLogger(__name__).warning("%s/%s: %s; reconciling again in %.2g s", *key, error, delay)

    def again() -> None:
        with _tickets_lock:
            _retry_pending.discard(key)
        try:
            sync_by_name(*key, jobs, pods, exits)
        except Exception:  # not transient (those schedule the next try): the next event or resync tries again
            logging.getLogger(__name__).exception("%s/%s: reconciling again failed", *key)

    timer = threading.Timer(delay, contextvars.copy_context().run, (again,))  # in kopf's context: events post
    timer.daemon = True
    timer.start()


def reconcile_sweep(namespace: str, name: str, jobs: list[ObservedJob], disrupted: list[tuple[str, str]],
                    exits: dict[str, dict[str, int]] | None = None) -> None:
    """Read the sweep fresh, reconcile, write its status if it changed, post the events."""
    with metrics.RECONCILE_SECONDS.time():
        sweep, events = _reconcile_and_write(namespace, name, jobs, disrupted, exits)
    for reason, message in events:
        try:
            kopf.info(sweep, reason=reason, message=message)
        except LookupError:  # outside kopf's context (a reconcile called by hand): logged, not posted
            logging.getLogger(__name__).info("%s/%s: %s: %s", namespace, name, reason, message)


def _reconcile_and_write(namespace: str, name: str, jobs: list[ObservedJob], disrupted: list[tuple[str, str]],
                         exits: dict[str, dict[str, int]] | None) -> tuple[dict | None, tuple]:
    """(the sweep as read, the events to post); (None, ()) when the sweep is gone."""
    api = kubernetes.client.CustomObjectsApi()
    try:
        sweep = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            metrics.forget(namespace, name)
            return None, ()  # the sweep is gone; its Jobs go with it (ownerReferences)
        metrics.api_error("get", error)
        raise
    status, events = sync(sweep, jobs, disrupted, exits)
    if status != sweep.get("status"):
        try:
            api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": status},
                                                      field_manager=MANAGER)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                metrics.forget(namespace, name)
                return None, ()  # deleted since it was read: nothing left to report on
            metrics.api_error("patch_status", error)
            raise
    if sweep["metadata"].get("deletionTimestamp"):
        metrics.forget(namespace, name)
    else:
        metrics.record_status(namespace, name, status)
    return sweep, events


@kopf.index("batch", "v1", "jobs", labels={LABEL_SWEEP: kopf.PRESENT})
def sweep_jobs(body: kopf.Body, namespace: str, **_: Any) -> dict[tuple[str, str], ObservedJob]:
    """Our Jobs, kept current by the watch and grouped by sweep: reconciling reads memory, not a LIST.

    (A LIST per Job event made completing a sweep O(n^2) in bytes: each Job carries the whole sweep.)
    """
    job = {"metadata": {"name": body["metadata"]["name"], "labels": dict(body["metadata"].get("labels", {})),
                        "annotations": dict(body["metadata"].get("annotations") or {}),
                        "ownerReferences": list(body["metadata"].get("ownerReferences") or [])},
           "spec": {"suspend": bool(body.get("spec", {}).get("suspend"))},
           "status": {"conditions": list(body.get("status", {}).get("conditions", [])),
                      "startTime": body.get("status", {}).get("startTime")}}
    return {(namespace, job["metadata"]["labels"][LABEL_SWEEP]): observe(job)}


def _finished(body: kopf.Body) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in body.get("status", {}).get("conditions", []))


def _disrupted(body: kopf.Body) -> bool:
    return any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
               for c in body.get("status", {}).get("conditions", []))


def _members(body: kopf.Body, labels: kopf.Labels) -> list[str]:
    """The steps a pod trains: its experiment, or a packed pod's members."""
    pack = parse_pack((body["metadata"].get("annotations") or {}).get(ANNOTATION_PACK, ""))
    return [member for member, _ in pack] or [labels[LABEL_EXPERIMENT]]


@kopf.index("", "v1", "pods", labels={LABEL_SWEEP: kopf.PRESENT})
def sweep_disruptions(body: kopf.Body, namespace: str, name: str, labels: kopf.Labels, **_: Any) -> dict:
    """Our pods that were preempted or evicted (DisruptionTarget), grouped by sweep: ((experiment, pod name),
    ...), one pair per step the pod trains (a packed pod: each member)."""
    if not _disrupted(body):
        return {}
    return {(namespace, labels[LABEL_SWEEP]): tuple((member, name) for member in _members(body, labels))}


@kopf.index("", "v1", "pods", labels={LABEL_SWEEP: kopf.PRESENT})
def sweep_pack_exits(body: kopf.Body, namespace: str, labels: kopf.Labels, **_: Any) -> dict:
    """Packed pods that ended, grouped by sweep: (Job name, each member's exit code) from the termination
    message the pack launcher wrote (ff_trainer.pack)."""
    if ANNOTATION_PACK not in (body["metadata"].get("annotations") or {}):
        return {}
    for status in body.get("status", {}).get("containerStatuses") or []:
        message = ((status.get("state") or {}).get("terminated") or {}).get("message")
        try:
            codes = json.loads(message)["exit"] if message else None
        except (ValueError, KeyError, TypeError):
            codes = None
        if isinstance(codes, dict):
            job = job_name(labels[LABEL_SWEEP], labels[LABEL_EXPERIMENT], int(labels[LABEL_ATTEMPT]))
            return {(namespace, labels[LABEL_SWEEP]): (job, codes)}
    return {}


PRIORITY_ENV, LIFETIME_ENV = "FF_PEERING_PRIORITY", "FF_PEERING_LIFETIME"
NAMESPACES_ENV = "FF_PEERING_NAMESPACES"  # the watched namespaces, comma-separated, when not --all-namespaces
PEERING_LIFETIME = 15  # seconds a replica that died without a word (SIGKILL, a lost node) keeps the others paused


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.scanning.disabled = True  # watch only what the handlers name
    if port := metrics.serve():
        logging.getLogger(__name__).info("metrics at http://0.0.0.0:%d/metrics", port)
    if not settings.peering.standalone:
        _join_peering(settings)


def _join_peering(settings: kopf.OperatorSettings) -> None:
    """Several replicas (`kopf run --peering=NAME`, the chart's operator.replicas > 1): kopf runs the one of the
    highest priority and pauses the others, and pauses every one of the same priority. Replicas of one Deployment
    are alike, so each draws its own priority (or takes FF_PEERING_PRIORITY); the peering object is created if
    missing (a chart cannot create it in the release that installs its CRD)."""
    settings.peering.priority = int(os.environ.get(PRIORITY_ENV) or secrets.randbelow(2**31 - 1) + 1)
    settings.peering.lifetime = int(os.environ.get(LIFETIME_ENV) or PEERING_LIFETIME)
    kubernetes.config.load_config()  # startup comes before kopf's login (which loads the same config)
    api = kubernetes.client.CustomObjectsApi()
    body = {"apiVersion": "kopf.dev/v1", "metadata": {"name": settings.peering.name}}
    try:
        if settings.peering.clusterwide:
            api.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings",
                                             body | {"kind": "ClusterKopfPeering"}, field_manager=MANAGER)
        else:
            for namespace in filter(None, os.environ.get(NAMESPACES_ENV, "").split(",")):
                api.create_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings",
                                                    body | {"kind": "KopfPeering"}, field_manager=MANAGER)
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
    logging.getLogger(__name__).info("peering %r with priority %d (lifetime %d s)", settings.peering.name,
                                     settings.peering.priority, settings.peering.lifetime)


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def on_sweep(namespace: str, name: str, sweep_jobs: kopf.Index, sweep_disruptions: kopf.Index,
             sweep_pack_exits: kopf.Index, **_: Any) -> None:
    sync_by_name(namespace, name, sweep_jobs, sweep_disruptions, sweep_pack_exits)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_SWEEP: kopf.PRESENT})
def on_job(type: str | None, body: kopf.Body, namespace: str, labels: kopf.Labels, sweep_jobs: kopf.Index,
           sweep_disruptions: kopf.Index, sweep_pack_exits: kopf.Index, **_: Any) -> None:
    """A Job of ours changed: reconcile its sweep now, not at the next resync. So did one that arrives suspended
    (by a queue's webhook, or ours with a queueName): its experiment is Queued, not the Running just recorded; and
    one listed finished when the watch starts (type None: a restart, a standby replica taking over), as the
    sweep's resume handler may have run before the index held it."""
    arrived = type in (None, "ADDED")
    if type in ("MODIFIED", "DELETED") or (arrived and (body.get("spec", {}).get("suspend") or _finished(body))):
        sync_by_name(namespace, labels[LABEL_SWEEP], sweep_jobs, sweep_disruptions, sweep_pack_exits)


@kopf.on.event("", "v1", "pods", labels={LABEL_SWEEP: kopf.PRESENT}, when=lambda body, **_: _disrupted(body))
def on_disruption(type: str | None, namespace: str, labels: kopf.Labels, sweep_jobs: kopf.Index,
                  sweep_disruptions: kopf.Index, sweep_pack_exits: kopf.Index, **_: Any) -> None:
    """Record a preemption before the preempted pod is deleted (and leaves the index)."""
    if type == "MODIFIED":
        sync_by_name(namespace, labels[LABEL_SWEEP], sweep_jobs, sweep_disruptions, sweep_pack_exits)


@kopf.on.event("", "v1", "pods", labels={LABEL_SWEEP: kopf.PRESENT},
               when=lambda body, **_: ANNOTATION_PACK in (body["metadata"].get("annotations") or {}))
def on_pack_pod(type: str | None, namespace: str, labels: kopf.Labels, sweep_jobs: kopf.Index,
                sweep_disruptions: kopf.Index, sweep_pack_exits: kopf.Index, **_: Any) -> None:
    """A packed pod's status changed (its termination message may have arrived): reconcile its sweep."""
    if type == "MODIFIED":
        sync_by_name(namespace, labels[LABEL_SWEEP], sweep_jobs, sweep_disruptions, sweep_pack_exits)
