"""Terminal output for ffctl: messages on stderr (colour only on a terminal without NO_COLOR), tables on stdout."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

import click

from ff_client.executor import failure
from ff_client.planview import PlanView
from ff_client.text import aligned


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


def show_plan(view: PlanView, as_json: bool = False) -> None:
    """The plan as a table (or JSON) with its cost on stdout, and its notes as warnings; a WSD sweep's trunks."""
    click.echo(json.dumps(view.to_json(), indent=1) if as_json else view.text())
    for note in view.notes:
        warn(note)


def suggestion(found, spend: float | None, as_json: bool, gpu_flops: float, mfu: float) -> bool:
    """What `ffctl suggest` found: the interval now, the candidates (a table, or JSON), the choice and what it
    falls short of; whether additions were chosen."""
    before, chosen, width = found.before, found.chosen, found.target_width
    say(found.now())
    if as_json:
        click.echo(json.dumps(found.to_json(gpu_flops, mfu), indent=2))
    if found.sufficient:
        say(f"the sweep is already sufficient: {before.n_ratio:.3g} <= --target-width {width:g}")
        return False
    if not as_json:
        click.echo(aligned(found.rows(gpu_flops, mfu)))
    if not chosen:
        warn("no candidate narrows the interval" + (" within --budget" if spend else ""))
        return False
    say("suggested: " + "; ".join(s.candidate.name for s in chosen) +
        f" ({sum(s.candidate.flops for s in chosen):.3g} FLOPs)")
    if not found.reaches_width:
        warn(f"none of the chosen additions is expected to reach --target-width {width:g} alone")
    return True


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
                "error; those waiting for a failed trunk segment start once it succeeds)"
                if summary.not_started else "")
        raise click.ClickException(f"{len(summary.failed)} step(s) failed{held}; see the errors above, fix, "
                                   "and rerun")


class Progress:
    """A one-line progress bar on a terminal; one line per event otherwise (logs, CI)."""

    def __init__(self, total: int = 0):
        self.total, self.finished, self.failed, self.running = total, 0, 0, 0
        self.began = time.monotonic()
        self.live = sys.stderr.isatty()

    def expect(self, total: int) -> None:
        """The number of steps to come (known once the sweep is planned)."""
        self.total, self.began = total, time.monotonic()

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
