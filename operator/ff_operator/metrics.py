"""The operator's Prometheus metrics (prometheus_client), served in the text format at /metrics.

The server starts with the operator when FF_METRICS_PORT names a port (the chart sets it and puts a Service, and
optionally a ServiceMonitor, in front); without it nothing listens. Per sweep: its experiments by state, its
progress (finished / total) and its preemptions (a lower bound, as in its status); for the operator: reconcile
latency, Jobs created, and API errors by operation and HTTP status ("none" when no answer came).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from ff_core.status import FAILED, PENDING, QUEUED, RUNNING, SUCCEEDED, SweepStatus

PORT_ENV = "FF_METRICS_PORT"
STATES = (SUCCEEDED, FAILED, RUNNING, QUEUED, PENDING)  # Pending includes the retrying ones, as the status does

RECONCILE_SECONDS = Histogram("flopsfit_reconcile_seconds", "Time to reconcile one sweep: read, plan, create, "
                              "write its status", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
EXPERIMENTS = Gauge("flopsfit_sweep_experiments", "Experiments (steps, in a WSD sweep) of a sweep by state",
                    ["namespace", "sweep", "state"])
PROGRESS = Gauge("flopsfit_sweep_progress_ratio", "Finished (succeeded or failed) over planned, per sweep",
                 ["namespace", "sweep"])
PREEMPTIONS = Gauge("flopsfit_sweep_preemptions", "Preempted pods seen per sweep (a lower bound: one deleted "
                    "while the operator was down is not seen)", ["namespace", "sweep"])
JOBS_CREATED = Counter("flopsfit_jobs_created", "batch/v1 Jobs created (a packed Job counts once)", ["namespace"])
API_ERRORS = Counter("flopsfit_api_errors", "API server requests of the operator that failed",
                     ["operation", "code"])

_served: list[int] = []
_lock = threading.Lock()


def serve(port: int | None = None) -> int | None:
    """Start the /metrics server once per process, on `port` or FF_METRICS_PORT; the port, or None when unset."""
    port = port if port is not None else int(os.environ.get(PORT_ENV) or 0) or None
    with _lock:
        if port is not None and not _served:
            start_http_server(port)
            _served.append(port)
    return _served[0] if _served else None


def record_status(namespace: str, sweep: str, status: dict[str, Any]) -> None:
    st = SweepStatus.from_json(status)
    counts = {SUCCEEDED: st.succeeded, FAILED: st.failed, RUNNING: st.running, QUEUED: st.queued,
              PENDING: st.pending}
    for state in STATES:
        EXPERIMENTS.labels(namespace, sweep, state).set(counts[state])
    PROGRESS.labels(namespace, sweep).set(st.done / st.total if st.total else 0.0)
    PREEMPTIONS.labels(namespace, sweep).set(st.preempted)


def forget(namespace: str, sweep: str) -> None:
    """A deleted sweep's series go (a scrape would otherwise report it forever)."""
    for state in STATES:
        _remove(EXPERIMENTS, namespace, sweep, state)
    _remove(PROGRESS, namespace, sweep)
    _remove(PREEMPTIONS, namespace, sweep)


def _remove(metric, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


def api_error(operation: str, error: Exception) -> None:
    code = getattr(error, "status", None)
    API_ERRORS.labels(operation, str(code) if code else "none").inc()
