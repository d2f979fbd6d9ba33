"""Terminal output for ffctl: messages on stderr (colour only on a terminal without NO_COLOR), tables on stdout."""

from __future__ import annotations

import os
import sys
import time
import warnings

import click

from ff_client.executor import failure
from ff_client.text import aligned, human
from ff_core.flops import gpu_hours
from ff_core.plan import Plan
from ff_core.steps import SEGMENT, Step, steps_flops


def _color() -> bool:
    return "NO_COLOR" not in os.environ and sys.stderr.isatty()


def live() -> bool:
    """Is stdout a terminal (so a --watch view may clear and redraw it)?"""
    return sys.stdout.isatty()


def say(message: str) -> None:
    click.echo(message, err=True, color=_color())


def warn(message: str) -> None:
    click.echo(click.style("warning: ", fg="yellow") + message, err=True, color=_color())


def route_warnings() -> None:
    """Library warnings as one 'warning:' line each, without the source path and line they came from."""
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: warn(str(message))


def next_step(command: str) -> None:
    click.echo(click.style("next: ", fg="green") + command, err=True, color=_color())


def plan_json(plan: Plan, steps: tuple[Step, ...]) -> dict:
    data = {
        "sweep": plan.sweep,
        "totalFlops": steps_flops(steps),
        "notes": list(plan.notes),
        "experiments": [
            {"id": e.id, "budget": e.budget, "size": e.size, "nParams": e.n_params, "tokens": e.tokens,
             "steps": e.steps, "flops": e.flops, "tokensPerParam": e.tokens_per_param}
            for e in plan.experiments
        ],
    }
    if any(s.kind == SEGMENT for s in steps):
        data["separateRunsFlops"] = plan.total_flops
        data["steps"] = [{"id": s.id, "kind": s.kind, "trunk": s.trunk, "size": s.size, "from": s.start, "to": s.end,
                          "after": list(s.after), "flops": s.flops} for s in steps]
    return data


def plan_cost(plan: Plan, steps: tuple[Step, ...], peak: float, mfu: float) -> str:
    """The sweep's cost: total FLOPs, and GPU-hours at an assumed utilisation of a GPU's peak; a WSD sweep's
    against the same points trained as separate runs."""
    total = steps_flops(steps)
    hours = gpu_hours(total, peak, mfu)
    largest = max(plan.experiments, key=lambda e: e.flops)
    text = (f"cost: {total:.3g} FLOPs = {hours:.3g} GPU-hours at {mfu:.0%} MFU of {peak:.3g} FLOP/s "
            f"(largest experiment {gpu_hours(largest.flops, peak, mfu):.3g} GPU-hours)")
    if any(s.kind == SEGMENT for s in steps):
        separate = plan.total_flops
        text += (f"\nWSD saving: the same points as separate runs cost {separate:.3g} FLOPs = "
                 f"{gpu_hours(separate, peak, mfu):.3g} GPU-hours; trunks and branches save {1 - total / separate:.0%}")
    return text


def trunk_table(steps: tuple[Step, ...]) -> str:
    """One row per WSD trunk: its size, its segments (steps where runs branch off) and its branches."""
    rows = [("trunk", "size", "segments (ends at step)", "branches", "FLOPs")]
    segments = sorted((s for s in steps if s.kind == SEGMENT), key=lambda s: (s.experiment.n_params, s.size))
    for trunk in dict.fromkeys(s.trunk for s in segments):
        mine = [s for s in steps if s.trunk == trunk]
        ends = ", ".join(str(s.end) for s in mine if s.kind == SEGMENT)
        rows.append((trunk, mine[0].size, ends, str(sum(s.kind != SEGMENT for s in mine)),
                     f"{sum(s.flops for s in mine):.2e}"))
    return aligned(rows)


def plan_table(plan: Plan) -> str:
    rows = [("id", "budget C", "size", "N", "D", "steps", "FLOPs", "D/N")]
    for e in plan.experiments:
        rows.append((e.id, f"{e.budget:.2e}", e.size, human(e.n_params), human(e.tokens), str(e.steps),
                     f"{e.flops:.2e}", f"{e.tokens_per_param:.1f}"))
    lines = [aligned(rows)]
    budgets = len({e.budget for e in plan.experiments})
    lines.append(f"{len(plan.experiments)} experiments over {budgets} budgets, {plan.total_flops:.3g} FLOPs in total")
    return "\n".join(lines)


def run_outcome(summary) -> None:
    """What a finished `ffctl run` left undone, as warnings; failures end it with an error (exit 1)."""
    for exp_id, holder in summary.busy.items():
        warn(f"{exp_id} is being trained by {holder}; not started here (rerun when it is done)")
    if summary.tracking:  # said once here, not only in each trainer's log
        step, first = next(iter(summary.tracking.items()))
        warn(f"tracking: {len(summary.tracking)} step(s) trained without a tracking backend; the first, {step}: "
             f"{first} (its log: {summary.logs[step]})")
    if summary.diverged:
        warn(f"{len(summary.diverged)} experiment(s) are recorded as diverged and were not rerun; "
             "`ffctl run --retry-diverged` trains them again")
    if summary.failed:
        held = (f"; {len(summary.not_started)} not started (--keep-going starts those held back by a configuration "
                "error; those waiting for a failed trunk segment start once it succeeds)" if summary.not_started else "")
        raise click.ClickException(f"{len(summary.failed)} step(s) failed{held}; see the errors above, fix, "
                                   "and rerun")


class Progress:
    """A one-line progress bar on a terminal; one line per event otherwise (logs, CI)."""

    def __init__(self, total: int):
        self.total, self.finished, self.failed, self.running = total, 0, 0, 0
        self.began = time.monotonic()
        self.live = sys.stderr.isatty()

    def update(self, event) -> None:
        if event.kind == "start":
            self.running += 1
        elif event.kind in ("done", "failed"):
            self.running -= 1
        if event.kind in ("done", "skipped", "failed"):
            self.finished += 1
        if event.kind == "failed":
            self.failed += 1
        label = event.step.label
        if event.kind == "failed":
            self._line(f"failed  {label}: {failure(event.exit_code, event.log)}; log: {event.log}", final=True)
        elif event.kind == "retry":
            self._line(f"retry   {label}: recorded as diverged; its result and checkpoint removed, training again",
                       final=True)
        elif not self.live and event.kind != "start":
            self._line(f"{event.kind:7} {label}", final=True)
        self._bar()

    def _bar(self) -> None:
        width = 30
        filled = int(width * self.finished / max(1, self.total))
        text = (f"[{'#' * filled}{'.' * (width - filled)}] {self.finished}/{self.total} "
                f"running {self.running} failed {self.failed} {time.monotonic() - self.began:.0f}s")
        if self.live:
            click.echo("\r" + text, err=True, nl=False)

    def _line(self, text: str, final: bool) -> None:
        if self.live:
            click.echo("\r\033[K", err=True, nl=False)
        say(text)

    def finish(self, summary) -> None:
        if self.live:
            click.echo("", err=True)
        say(f"{len(summary.trained)} trained, {len(summary.skipped)} already done, {len(summary.failed)} failed "
            f"in {summary.seconds:.0f}s")
