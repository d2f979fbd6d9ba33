"""What `ffctl status` shows, as pure functions of ScalingSweep objects read from the cluster.

One sweep's status holds a compact row per experiment (id, state, attempts, preemptions); the plan,
recomputed from the sweep's spec, adds budget, size, N and D to each row.
"""

from __future__ import annotations

import datetime
from typing import Any

from ff_client.output import human
from ff_core.errors import FlopsFitError
from ff_core.plan import plan_sweep
from ff_core.spec import manifest_of, parse_sweep

TERMINAL_PHASES = {"Succeeded", "Failed", "Invalid", "Stopped"}
NOTEWORTHY = {("Valid", "False"), ("FailureBudgetExceeded", "True"), ("Suspended", "True"), ("PlanChanged", "True")}


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def age(timestamp: str | None, now: datetime.datetime) -> str:
    if not timestamp:
        return "-"
    seconds = int((now - datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def sweeps_table(sweeps: list[dict[str, Any]], now: datetime.datetime) -> str:
    """All sweeps: NAME PHASE DONE/TOTAL RUNNING FAILED PREEMPTED AGE."""
    rows = [("NAME", "PHASE", "DONE", "RUNNING", "FAILED", "PREEMPTED", "AGE")]
    for s in sweeps:
        st = s.get("status") or {}
        done = st.get("succeeded", 0) + st.get("failed", 0)
        rows.append((s["metadata"]["name"], st.get("phase", "-"), f"{done}/{st.get('total', '?')}",
                     str(st.get("running", 0)), str(st.get("failed", 0)), str(st.get("preempted", 0)),
                     age(s["metadata"].get("creationTimestamp"), now)))
    return _table(rows) if sweeps else "no sweeps in this namespace"


def experiment_rows(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per planned experiment: plan columns joined with the status row (Pending when absent)."""
    recorded = {r["id"]: r for r in (sweep.get("status") or {}).get("experiments", [])}
    try:
        plan = plan_sweep(parse_sweep(manifest_of(sweep), sweep["metadata"]["name"]))
    except FlopsFitError:
        return []  # an invalid sweep has no plan; its condition says why
    return [{"id": e.id, "budget": e.budget, "size": e.size, "nParams": e.n_params, "tokens": e.tokens,
             "state": recorded.get(e.id, {}).get("s", "Pending"), "attempts": recorded.get(e.id, {}).get("a", 0),
             "preemptions": recorded.get(e.id, {}).get("p", 0)} for e in plan.experiments]


def sweep_detail(sweep: dict[str, Any], now: datetime.datetime) -> str:
    """One sweep: its phase and counts, its conditions that are not fine, and a line per experiment."""
    st = sweep.get("status") or {}
    meta = sweep["metadata"]
    lines = [f"sweep {meta['name']} ({meta.get('namespace', '')}): {st.get('phase', 'not reconciled yet')}, "
             f"{st.get('succeeded', 0)} succeeded, {st.get('failed', 0)} failed, {st.get('running', 0)} running, "
             f"{st.get('pending', 0)} pending of {st.get('total', '?')}; {st.get('preempted', 0)} preemptions; "
             f"age {age(meta.get('creationTimestamp'), now)}"]
    for c in st.get("conditions", []):
        if (c["type"], c["status"]) in NOTEWORTHY:
            lines.append(f"  {c['type']}={c['status']} ({c.get('reason', '')}): {c.get('message', '')}")
    rows = [("EXPERIMENT", "BUDGET", "SIZE", "N", "D", "STATE", "ATTEMPTS", "PREEMPTED")]
    for r in experiment_rows(sweep):
        rows.append((r["id"], f"{r['budget']:.2e}", r["size"], human(r["nParams"]), human(r["tokens"]), r["state"],
                     str(r["attempts"]), str(r["preemptions"])))
    if len(rows) > 1:
        lines.append(_table(rows))
    return "\n".join(lines)


def sweep_json(sweep: dict[str, Any]) -> dict[str, Any]:
    st = sweep.get("status") or {}
    return {"name": sweep["metadata"]["name"], "namespace": sweep["metadata"].get("namespace"),
            "phase": st.get("phase"), "counts": {k: st.get(k, 0) for k in
                                                 ("total", "succeeded", "failed", "running", "pending", "preempted")},
            "conditions": st.get("conditions", []), "storage": (sweep.get("spec") or {}).get("storage", {}),
            "experiments": experiment_rows(sweep)}
