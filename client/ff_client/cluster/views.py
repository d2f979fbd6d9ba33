"""What `ffctl status` shows, as pure functions of ScalingSweep objects read from the cluster.

One sweep's status holds a compact row per experiment (id, state, attempts, preemptions); the plan,
recomputed from the sweep's spec, adds budget, size, N and D to each row.
"""

from __future__ import annotations

import datetime
from typing import Any

from ff_client.text import aligned, human
from ff_core.errors import FlopsFitError
from ff_core.plan import plan_sweep
from ff_core.spec import manifest_of, parse_sweep
from ff_core.status import NOTEWORTHY, ExperimentRow, SweepStatus, experiment_rows as status_rows
from ff_core.steps import RUN, SEGMENT, plan_steps



def age(timestamp: str | None, now: datetime.datetime) -> str:
    if not timestamp:
        return "-"
    seconds = int((now - datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def sweeps_table(sweeps: list[dict[str, Any]], now: datetime.datetime) -> str:
    """All sweeps: NAME PHASE DONE/TOTAL RUNNING QUEUED FAILED PREEMPTED AGE."""
    rows = [("NAME", "PHASE", "DONE", "RUNNING", "QUEUED", "FAILED", "PREEMPTED", "AGE")]
    for s in sweeps:
        st = SweepStatus.from_json(s.get("status"))
        rows.append((s["metadata"]["name"], st.phase or "-", f"{st.done}/{'?' if st.total is None else st.total}",
                     str(st.running), str(st.queued), str(st.failed), str(st.preempted),
                     age(s["metadata"].get("creationTimestamp"), now)))
    return aligned(rows) if sweeps else "no sweeps in this namespace"


def experiment_rows(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per planned step (an experiment; in a WSD sweep also each trunk segment): plan columns joined
    with the status row (Pending when absent). A segment has no budget; its D is the tokens where it ends."""
    recorded = status_rows(sweep.get("status"))
    try:
        parsed = parse_sweep(manifest_of(sweep), sweep["metadata"]["name"])
        steps = plan_steps(parsed, plan_sweep(parsed))
    except FlopsFitError:
        return []  # an invalid sweep has no plan; its condition says why
    batch = parsed.spec.training.global_batch_tokens
    rows = [(s, recorded.get(s.id) or ExperimentRow(s.id)) for s in steps]
    return [{"id": s.id, "kind": s.kind, "budget": s.experiment.budget if s.kind != SEGMENT else None, "size": s.size,
             "nParams": s.experiment.n_params, "tokens": s.end * batch, "state": row.state, "attempts": row.attempts,
             "preemptions": row.preemptions} for s, row in rows]


def sweep_detail(sweep: dict[str, Any], now: datetime.datetime) -> str:
    """One sweep: its phase and counts, its conditions that are not fine, and a line per experiment."""
    st = SweepStatus.from_json(sweep.get("status"))
    meta = sweep["metadata"]
    lines = [f"sweep {meta['name']} ({meta.get('namespace', '')}): {st.phase or 'not reconciled yet'}, "
             f"{st.succeeded} succeeded, {st.failed} failed, {st.running} running, {st.queued} queued (waiting for "
             "admission), "
             f"{st.pending} pending of {'?' if st.total is None else st.total}; at least {st.preempted} preemptions "
             "(a preempted pod deleted while the operator was down is not seen); "
             f"age {age(meta.get('creationTimestamp'), now)}"]
    for c in st.conditions:
        if (c["type"], c["status"]) in NOTEWORTHY:
            lines.append(f"  {c['type']}={c['status']} ({c.get('reason', '')}): {c.get('message', '')}")
    listed = experiment_rows(sweep)
    kinds = any(r["kind"] != RUN for r in listed)  # a WSD sweep: say which rows are trunk segments and branches
    rows = [("EXPERIMENT", *(("KIND",) if kinds else ()), "BUDGET", "SIZE", "N", "D", "STATE", "ATTEMPTS", "PREEMPTED")]
    for r in listed:
        budget = f"{r['budget']:.2e}" if r["budget"] is not None else "-"
        rows.append((r["id"], *((r["kind"],) if kinds else ()), budget, r["size"], human(r["nParams"]),
                     human(r["tokens"]), r["state"], str(r["attempts"]), str(r["preemptions"])))
    if len(rows) > 1:
        lines.append(aligned(rows))
    return "\n".join(lines)


def sweep_json(sweep: dict[str, Any]) -> dict[str, Any]:
    st = SweepStatus.from_json(sweep.get("status"))
    return {"name": sweep["metadata"]["name"], "namespace": sweep["metadata"].get("namespace"),
            "phase": st.phase, "counts": {k: 0 if v is None else v for k, v in st.counts().items()},
            "conditions": list(st.conditions), "storage": (sweep.get("spec") or {}).get("storage", {}),
            "experiments": experiment_rows(sweep)}
