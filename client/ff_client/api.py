"""The SDK under ffctl: one function per command, each returning a typed result with text() and to_json().

plan -> PlanView, run -> RunOutcome, analyze -> fit.analysis.Analysis, compare -> fit.compare.Comparison,
suggest -> fit.suggest.Suggestion, transfer -> TransferRun, submit -> Submitted, status -> SweepsView.
A notebook calls these without click; the commands in ff_client.cli are options in, one call, print. Progress
and advice go to `say` and `warn` (each takes one line; by default they are dropped), results come back.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from ff_client.executor import RunSummary, run_plan, visible_gpus
from ff_client.planview import DEFAULT_MFU, PlanView
from ff_client.source import Source, resolve
from ff_client.sweeps import grow, load_resolved, planned
from ff_core import launch
from ff_core.errors import FlopsFitError, UsageError
from ff_core.flops import H100_BF16_PEAK
from ff_core.layout import SWEEP_FILE
from ff_core.plan import plan_sweep
from ff_core.spec import ScalingSweep
from ff_core.status import TERMINAL_PHASES, SweepStatus
from ff_core.steps import plan_steps
from ff_core.store import anchored, open_store, within
from ff_core.trackers import install_hint, missing_packages, prepare as prepare_tracking, require

Say = Callable[[str], None]
PLOT_FORMATS = ("png", "svg", "pdf")


def _quiet(message: str) -> None:
    """The default `say` and `warn`: a notebook asks for results, not chatter."""


def plan(sweep: str, write: bool = False, gpu_flops: float = H100_BF16_PEAK, mfu: float = DEFAULT_MFU,
         say: Say = _quiet, warn: Say = _quiet) -> PlanView:
    """The experiments the sweep file expands to and what they cost; `write` saves counted nParams into it."""
    resolved = load_resolved(sweep, write=write, say=say)
    missing = missing_packages(resolved.spec.tracking)
    if missing:  # a plan may be for a cluster, whose trainer image is what needs them
        warn(f"spec.tracking: {', '.join(missing)} not installed here; `ffctl run` needs {install_hint(missing)}, a "
             "cluster's trainer image needs them built in (Dockerfile.trainer, --build-arg TRACKING)")
    return view_of(resolved, gpu_flops, mfu)


def view_of(sweep: ScalingSweep, gpu_flops: float = H100_BF16_PEAK, mfu: float = DEFAULT_MFU) -> PlanView:
    the_plan = plan_sweep(sweep)
    return PlanView(sweep, the_plan, plan_steps(sweep, the_plan), gpu_flops, mfu)


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What `ffctl run` did (ff_client.executor.RunSummary) and where the results are."""

    summary: RunSummary
    results: str  # the store URI of the sweep's results folder: what `ffctl analyze` takes

    def text(self) -> str:
        s = self.summary
        return (f"{len(s.trained)} trained, {len(s.skipped)} already done, {len(s.failed)} failed in "
                f"{s.seconds:.0f}s; results in {self.results}")

    def to_json(self) -> dict:
        s = self.summary
        return {"trained": s.trained, "skipped": s.skipped, "failed": s.failed, "notStarted": s.not_started,
                "busy": s.busy, "diverged": s.diverged, "logs": {k: str(v) for k, v in s.logs.items()},
                "tracking": s.tracking, "seconds": s.seconds, "results": self.results}


def run(sweep: str, store: str | None = None, workers: int = 1, pack: int | None = None, keep_going: bool = False,
        retry_diverged: bool = False, clean_checkpoints: bool = False, on_event: Callable | None = None,
        on_steps: Callable[[int], None] | None = None, say: Say = _quiet) -> RunOutcome:
    """Train every step of the sweep file on this machine that has no result yet (a rerun resumes).

    `store` overrides the sweep's spec.storage.uri (a relative file:// one is anchored at the file's folder);
    `pack` trains that many experiments on each visible GPU at once (`workers` is then pack x GPUs);
    `on_steps(n)` is told how many steps there are before the first starts, `on_event` each start and end
    (ff_client.executor.Event). Ctrl-C (KeyboardInterrupt) stops it with every trainer checkpointed.
    """
    launch.warm_up()  # torch imported for the trainers while the sweep is read
    resolved = load_resolved(sweep, verify=True, say=say)
    require(resolved.spec.tracking)
    prepare_tracking(resolved.spec.tracking, resolved.folder)
    the_plan = plan_sweep(resolved)
    uri = store or anchored(resolved.spec.storage.uri, Path(sweep).parent)  # the file's store: from its folder
    target = open_store(uri, spec_endpoint=resolved.spec.storage.endpoint_url)
    gpus = visible_gpus()
    if pack is not None:
        workers = pack * max(len(gpus), 1)
        say(f"{pack} experiment(s) per GPU on {len(gpus)} GPU(s): {workers} at once" if gpus else
            f"no GPU visible: --pack {pack} runs {workers} at once on the CPU")
    if on_steps is not None:
        on_steps(len(plan_steps(resolved, the_plan)))
    summary = run_plan(resolved, the_plan, target, workers, on_event or (lambda event: None), keep_going,
                       retry_diverged, clean_checkpoints, gpus)
    return RunOutcome(summary, within(target.uri, resolved.folder))


def analyze(source: str | Source, settings=None, out: str | Path | None = None, formats: tuple[str, ...] | None = None,
            plot_formats: tuple[str, ...] = ("png",), track: bool = False, recipe: str | None = None,
            all_recipes: bool = False, endpoint_url: str | None = None, namespace: str | None = None,
            context: str | None = None, say: Say = _quiet, warn: Say = _quiet):
    """Fit a store, a cluster sweep NAME or a points file (ff_client.fit.analysis.Analysis: text(), to_json(), files);
    `out` writes the tables, report and plots; `track` logs the fit to the sweep's spec.tracking."""
    from ff_client.fit.analysis import Settings, analyze as run_analysis, finish  # scipy, matplotlib: only here
    from ff_client.fit.table import FORMATS

    source = source if isinstance(source, Source) else resolve(str(source), endpoint_url, namespace, context, say=say)
    stored = source.sweep() if source.kind == "store" else None
    tracked = tracked_sweep(source) if track else None
    observations = source.observations(recipe, all_recipes)
    far = check_against_pilot(source, observations, stored, say, warn) if source.kind == "store" else None
    with tempfile.TemporaryDirectory(prefix="ff-fit-") as scratch:  # --track without --out: files for the tracker
        analysed = run_analysis(observations, settings or Settings())
        if far:  # named in the analysis (report.json's warnings) as well as on the terminal
            analysed = dataclasses.replace(analysed, warnings=analysed.warnings + tuple(far))
        report = finish(analysed, out or (scratch if track else None), formats=formats or FORMATS,
                        plot_formats=plot_formats)
        if tracked is not None:
            from ff_client.fit.tracked import track_fit

            spec = tracked.spec
            took = track_fit(spec.tracking, report, endpoint_url or spec.storage.endpoint_url, warn)
            say(f"tracked the fit in {', '.join(took)}" if took else "the fit was not tracked (see above)")
        if not out:
            report.files.clear()  # they were in the scratch folder, which is gone
    return report


def tracked_sweep(source: Source) -> ScalingSweep:
    """The sweep whose spec.tracking `track` logs to: the store's sweep.json, or the cluster's ScalingSweep."""
    if source.kind == "points":
        raise UsageError("--track logs to the sweep's spec.tracking: analyze a store or a sweep NAME, not --data")
    sweep = source.sweep()
    if sweep is None:
        raise FlopsFitError(f"{source.given} has no readable {SWEEP_FILE} (the sweep `ffctl run` writes), so it names "
                            "no tracking; analyze without --track")
    if sweep.spec.tracking is None or not sweep.spec.tracking.backends:
        raise FlopsFitError(f"sweep {sweep.name} has no spec.tracking; add mlflow, wandb or tensorboard to it, or "
                            "analyze without --track")
    require(sweep.spec.tracking)
    return sweep


def check_against_pilot(source: Source, observations, sweep: ScalingSweep | None, say: Say = _quiet,
                        warn: Say = _quiet) -> list[str] | None:
    """Where the store holds the sweep's transfer pilot beside it (<name>-transfer, from `ffctl transfer`), say
    whether the sweep's learning rate (`sweep`'s, the store's sweep.json) lies in each pilot size's basin, and
    warn for each size where it does not. A pilot with a law LR*(N, D) instead names the sweep's points trained
    far from it (returned, for the analysis's warnings)."""
    from ff_client.fit.transfer import analyze_transfer, basin_check, pilot_records, pilot_runs
    from ff_client.pilot import pilot_folder

    if sweep is not None:  # a learning-rate law has no one rate to check against the pilot's basins
        name, lr = sweep.name, sweep.spec.training.learning_rate
        lr = lr if isinstance(lr, float) else None
    else:  # no sweep.json: the records' own learning rate, when they agree on one
        rates = {((r.identity or {}).get("training") or {}).get("learning_rate") for r in observations.records}
        name, lr = observations.sweep, (rates.pop() if len(rates) == 1 else None)
    pilot = source.beside(pilot_folder(name))
    read = pilot_records(pilot)  # once, for both readings of the pilot
    far = _far_from_the_pilots_law(pilot, read, observations.records, sweep)
    if far is not None:
        return far
    runs, left = pilot_runs(pilot, read)
    if not runs or lr is None:
        return
    if left:
        warn(f"the transfer pilot at {pilot.uri}: {len(left)} run(s) left out, e.g. {left[0]}")
    try:
        result = analyze_transfer(runs, float(lr))
    except FlopsFitError as error:
        warn(f"the transfer pilot at {pilot.uri} was not used: {error}")
        return
    inside, warnings = basin_check(result)
    for warning in warnings:
        warn(warning)
    if inside:
        say(f"transfer pilot ({pilot.uri}): the sweep's learning rate {float(lr):.3g} is within the basin of "
            f"{', '.join(inside)}")


def _far_from_the_pilots_law(pilot, read, records, sweep: ScalingSweep | None) -> list[str] | None:
    """Where the pilot beside the sweep is a grid at 2 or more token counts (`ffctl transfer --tokens-per-param
    A,B`), its law LR*(N, D); the sweep's points trained more than one grid step from it, named (the warnings);
    None where the pilot has no such law."""
    from ff_client.fit.lrgrid import analyze_grid, pilot_grid
    from ff_core.spec import Training

    runs, _ = pilot_grid(pilot, read)
    several = len({(r.n_params, r.tokens) for r in runs}) > len({r.n_params for r in runs})  # a size at 2+ D
    if not several or len({r.batch for r in runs}) != 1:
        return None
    try:
        found = analyze_grid(runs, None)
    except FlopsFitError:
        return None
    if len(found.laws) != 1 or found.laws[0].b is None:
        return None
    law, far = found.laws[0], []
    step = min(result.grid_step for _, _, result in found.pilots)
    for record in records:  # each point's own rate: its record's, else the sweep's (records before identities)
        training = (record.identity or {}).get("training") or {}
        if "learning_rate" in training:
            recipe = Training.model_validate({"learningRate": training["learning_rate"]})
        elif sweep is not None:
            recipe = sweep.spec.training
        else:
            continue
        rate = recipe.at(record.n_params, record.tokens).learning_rate
        best = law.predict(record.n_params, record.tokens)
        if abs(math.log(rate / best)) > step * 1.0001:
            far.append(f"{record.experiment} ({record.size}, N={record.n_params:.3g}, D={record.tokens:.3g}): trained "
                       f"at learning rate {rate:.3g}, the pilot's law {law.formula()} gives {best:.3g} (x"
                       f"{rate / best:.2f}, more than the grid's step x{math.exp(step):.2f})")
    warnings = ([f"{len(far)} point(s) trained far from the transfer pilot's learning-rate law ({pilot.uri}); "
                 "their losses are above what a tuned run reaches: train at the law's rate with `ffctl transfer SWEEP "
                 "--data GRID --write`, or read the fit with care"] + far) if far else []
    return warnings  # the analysis's warnings, which ffctl analyze prints


def compare(a: str | Source, b: str | Source, approach: str = "parametric", settings=None,
            out: str | Path | None = None, recipe: str | None = None, all_recipes: bool = False,
            endpoint_url: str | None = None, namespace: str | None = None, context: str | None = None,
            say: Say = _quiet):
    """How much more compute recipe A needs to reach recipe B's loss (ff_client.fit.compare.Comparison);
    `out` writes compare.md, compare.json and compare.png."""
    from ff_client.fit.analysis import Settings, analyze as run_analysis
    from ff_client.fit.compare import compare as run_compare
    from ff_client.fit.plots import plot_compare

    settings = settings or Settings()
    sides = []
    for side in (a, b):
        side = side if isinstance(side, Source) else resolve(str(side), endpoint_url, namespace, context, say=say)
        sides.append(run_analysis(side.observations(recipe, all_recipes), settings))
    try:
        result = run_compare(*sides, approach, settings.targets)
    except ValueError as error:
        raise FlopsFitError(str(error)) from None
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "compare.md").write_text(result.text() + "\n")
        (folder / "compare.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
        plot_compare(result, folder / "compare.png")
        say(f"wrote: {folder / 'compare.md'}, {folder / 'compare.json'}, {folder / 'compare.png'}")
    return result


@dataclasses.dataclass(frozen=True)
class TransferRun:
    """`ffctl transfer`'s outcome: the analysis (ff_client.fit.transfer.Transfer) and its plot."""

    result: object
    plot: Path

    def text(self) -> str:
        return self.result.text()

    def to_json(self) -> dict:
        return self.result.to_json() | {"plot": str(self.plot)}


def transfer_grid(path: str | Path, lr: float | None = None, seed: int = 0, out: str | Path | None = None):
    """A published learning-rate grid (n_params, tokens, lr, loss) analysed as a transfer pilot, without
    training (ff_client.fit.lrgrid.GridAnalysis); `out` gets a plot per token count."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid
    from ff_client.fit.plots import plot_transfer

    found = analyze_grid(load_lr_grid(path), lr, seed)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        for tokens, batch, result in found.pilots:
            plot_transfer(result, Path(out) / f"transfer-D{tokens:.3g}{'' if batch is None else f'-B{batch:g}'}.png")
    return found


def overtrain(path: str | Path, error_law: str = "exponential", seed: int = 0, resamples: int | None = None,
              out: str | Path | None = None):
    """Gadre's over-training law L(N, D) and error-from-loss law fitted to a file's runs, its held-out targets
    predicted (ff_client.fit.overtrain); `out` gets overtraining.png. (the analysis, the plot's path or None)."""
    from ff_client.fit.overtrain import RESAMPLES, analyze_overtraining, load_runs
    from ff_client.fit.plots import plot_overtraining

    found = analyze_overtraining(load_runs(path), error_law, seed, RESAMPLES if resamples is None else resamples)
    plot = None
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        plot = plot_overtraining(found, Path(out) / "overtraining.png")
    return found, plot


def write_lr_law(sweep: str | Path, grid: str | Path, out: str | Path, seed: int = 0):
    """The law LR*(N, D) fitted to `grid` (ffctl transfer --data) put into the sweep file's
    training.learningRate, checked by planning it (every point's rate in (0, 1]) and written to `out`;
    (the grid's analysis, the law, the new sweep). A grid with several batch sizes has a law for each: refused."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid
    from ff_core.spec import load_sweep, parse_sweep

    found = analyze_grid(load_lr_grid(grid), None, seed)
    if len(found.laws) != 1:
        batches = ", ".join(f"{law.batch:g}" for law in found.laws) or "none"
        raise UsageError(f"--write takes the grid's one learning-rate law; {grid} has {len(found.laws)} (batch sizes: "
                         f"{batches}): give a grid of the sweep's batch size alone")
    (law,) = found.laws
    manifest = load_sweep(str(sweep)).to_manifest(only_set=True)
    manifest["spec"].setdefault("training", {})["learningRate"] = law.spec_value()
    lawful = parse_sweep(manifest, str(sweep))
    plan_sweep(lawful)  # every planned point's rate in (0, 1], or an error naming the point
    Path(out).write_text(yaml.safe_dump(lawful.to_manifest(only_set=True), sort_keys=False))
    return found, law, lawful


def transfer_pilots(sweep: str, sizes: list[str] | None = None, lr_grid: str | None = None,
                    tokens_per_param: float | list[float] = 20.0, verify: bool = True, say: Say = _quiet,
                    batches: list[int] | None = None):
    """(the sweep, its pilot sweeps: one per learning rate (x batch x D/N), over a few of its sizes at D/N
    `tokens_per_param`)."""
    from ff_client.pilot import grid_of, pilot_sizes, pilot_sweeps

    resolved = load_resolved(sweep, verify=verify, say=say)
    grid = grid_of(lr_grid, resolved)
    pilots = pilot_sweeps(resolved, pilot_sizes(resolved, sizes), grid, tokens_per_param, batches)
    cost = sum(plan_sweep(p).total_flops for p in pilots)
    ratios = tokens_per_param if isinstance(tokens_per_param, list) else [tokens_per_param]
    shape = f"{len(grid)} learning rates" + (f" x {len(batches)} batch sizes" if batches else "")
    say(f"transfer pilot: {shape} x {len(pilots[0].spec.budgets)} sizes at D/N {', '.join(f'{r:g}' for r in ratios)}"
        f", {cost:.3g} FLOPs ({cost / plan_sweep(resolved).total_flops:.1%} of the sweep)")
    return resolved, pilots


def write_pilots(pilots, folder: str | Path) -> list[Path]:
    """Each pilot sweep as <name>.yaml in `folder`, for `ffctl submit`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for pilot in pilots:
        written.append(folder / f"{pilot.name}.yaml")
        written[-1].write_text(yaml.safe_dump(pilot.to_manifest(), sort_keys=False))
    return written


def transfer(sweep: str, sizes: list[str] | None = None, lr_grid: str | None = None,
             tokens_per_param: float | list[float] = 20.0, store: str | None = None, workers: int = 1,
             out: str | Path = "transfer-out", seed: int = 0, say: Say = _quiet, warn: Say = _quiet,
             batches: list[int] | None = None) -> TransferRun:
    """Train the pilot grid here (a rerun trains only what is missing), then say whether the sweep's learning
    rate is right for all its sizes: each size's optimum with an interval, and its drift with ln N. With several
    batch sizes or token counts, the grid's analysis (ff_client.fit.lrgrid.GridAnalysis): the laws LR*(N, D) (and
    B*) with the hold-out of the largest size."""
    from ff_client.fit.plots import plot_transfer
    from ff_client.fit.lrgrid import analyze_grid, pilot_grid
    from ff_client.fit.transfer import analyze_transfer, pilot_runs

    resolved, pilots = transfer_pilots(sweep, sizes, lr_grid, tokens_per_param, say=say, batches=batches)
    uri = store or anchored(resolved.spec.storage.uri, Path(sweep).parent)
    target = open_store(uri, spec_endpoint=resolved.spec.storage.endpoint_url)
    for pilot in pilots:
        summary = run_plan(pilot, plan_sweep(pilot), target, workers)
        if summary.failed:
            warn(f"{pilot.name}: {len(summary.failed)} run(s) failed; logs under {target.uri}/{pilot.folder}/logs")
    folder_uri = within(target.uri, pilots[0].folder)
    folder = open_store(folder_uri, spec_endpoint=resolved.spec.storage.endpoint_url)
    if (batches and len(batches) > 1) or (isinstance(tokens_per_param, list) and len(tokens_per_param) > 1):
        grid, left = pilot_grid(folder)
        for reason in left:
            warn(f"left out: {reason}")
        found = analyze_grid(grid, None, seed)
        Path(out).mkdir(parents=True, exist_ok=True)
        for key, batch, result in found.pilots:
            name = f"transfer-{'R' if found.by_ratio else 'D'}{key:.3g}{'' if batch is None else f'-B{batch:g}'}.png"
            plot_transfer(result, Path(out) / name)
        return TransferRun(found, Path(out))
    runs, left = pilot_runs(folder)
    for reason in left:
        warn(f"left out: {reason}")
    if not runs:
        raise FlopsFitError(f"{folder_uri}: no finished pilot runs to analyse")
    rate = resolved.spec.training.learning_rate
    if not isinstance(rate, float):  # judged against the rate its law gives the pilot's smallest size
        smallest = min((n for _, n, _, _ in runs))
        rate = rate.at(smallest, min(e.tokens for p in pilots for e in plan_sweep(p).experiments))
    result = analyze_transfer(runs, rate, seed)
    Path(out).mkdir(parents=True, exist_ok=True)
    return TransferRun(result, plot_transfer(result, Path(out) / "transfer.png"))


def suggest(source: str | Source, target_flops: float, approach: str = "isoflop", spend: float | None = None,
            target_width: float | None = None, resamples: int = 200, seed: int = 0, grow_into: str | None = None,
            endpoint_url: str | None = None):
    """Rank additions to the sweep by how much each narrows N_opt's interval at `target_flops` per FLOP
    (ff_client.fit.suggest.Suggestion); `grow_into`, a sweep file to write the grown sweep to, is checked first."""
    from ff_client.fit.approach import Settings
    from ff_client.fit.approaches import APPROACHES
    from ff_client.fit.suggest import suggest as find

    source = source if isinstance(source, Source) else resolve(str(source), endpoint_url)
    sweep = source.sweep() if source.kind == "store" else None
    if grow_into and sweep is None:
        raise UsageError("--write needs a result store written by `ffctl run` (its sweep.json says what to grow); a "
                         "points file or a store without one cannot be grown")
    if grow_into and _sweep_name_in(grow_into) == sweep.name:
        raise UsageError(f"--write {grow_into}: that file is sweep {sweep.name!r}, which the store was trained from; "
                         "write the grown sweep to a new file (it shares the results folder)")
    return find(source.observations().points, target_flops, next(a for a in APPROACHES if a.name == approach),
                Settings(resamples=resamples, seed=seed, workers=1), spend, target_width,
                planned(sweep) if sweep else None)


def write_grown(source: Source, found, path: str | Path) -> tuple[ScalingSweep, ScalingSweep]:
    """Write the store's sweep plus the chosen additions to `path` (results in the same folder, so `ffctl run`
    trains only the new points); (the sweep, the grown sweep)."""
    sweep = source.sweep()
    budgets = tuple(b for s in found.chosen for b in s.candidate.budgets)
    per_budget = max((s.candidate.points_per_budget or 0 for s in found.chosen), default=0) or None
    grown = grow(sweep, budgets, per_budget, name=f"{sweep.name}-grown"[:40])
    with open(path, "w") as handle:
        yaml.safe_dump(grown.to_manifest(only_set=True), handle, sort_keys=False)
    return sweep, grown


def _sweep_name_in(path: str) -> str | None:
    """The metadata.name of the sweep file at `path`, if there is one there."""
    try:
        with open(path) as handle:
            return (yaml.safe_load(handle) or {}).get("metadata", {}).get("name")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


@dataclasses.dataclass(frozen=True)
class Submitted:
    """What `ffctl submit` did: the plan shown, the manifest applied (or, dry, that would be), and how."""

    view: PlanView
    manifest: dict
    verb: str | None = None  # "created" or "updated"; None for a dry run
    namespace: str | None = None
    server: str | None = None

    def text(self) -> str:
        if self.verb is None:
            return yaml.safe_dump(self.manifest, sort_keys=False)
        return f"sweep {self.view.sweep.name} {self.verb} in namespace {self.namespace} ({self.server})"

    def to_json(self) -> dict:
        return {"plan": self.view.to_json(), "manifest": self.manifest, "applied": self.verb,
                "namespace": self.namespace, "server": self.server}


def submit(sweep: str, dry_run: bool = False, context: str | None = None, namespace: str | None = None,
           gpu_flops: float = H100_BF16_PEAK, mfu: float = DEFAULT_MFU, say: Say = _quiet) -> Submitted:
    """Fill nParams, validate against the cluster's CRD schema (dry: the packaged one) and apply the sweep."""
    from ff_client.cluster import connection as cluster
    from ff_client.cluster.validate import validate

    resolved = load_resolved(sweep, say=say)
    manifest = resolved.to_manifest(only_set=True)  # defaults stay the cluster's to fill, as with kubectl apply
    connection = None if dry_run else cluster.connect(context, namespace)
    validate(manifest, cluster.crd_schema(connection) if connection else None)
    view = view_of(resolved, gpu_flops, mfu)
    if connection is None:
        return Submitted(view, manifest)
    return Submitted(view, manifest, cluster.apply_sweep(connection, manifest), connection.namespace,
                     connection.server)


@dataclasses.dataclass(frozen=True)
class SweepsView:
    """What `ffctl status` shows: every sweep in the namespace, or one (`name`), read at `now`."""

    sweeps: tuple[dict, ...]
    name: str | None
    now: object  # datetime.datetime

    @property
    def finished(self) -> bool:
        """Whether every sweep shown has ended (a --watch stops)."""
        return all(SweepStatus.from_json(s.get("status")).phase in TERMINAL_PHASES for s in self.sweeps)

    def text(self) -> str:
        from ff_client.cluster import views

        return views.sweep_detail(self.sweeps[0], self.now) if self.name else views.sweeps_table(list(self.sweeps),
                                                                                              self.now)

    def to_json(self) -> dict | list:
        from ff_client.cluster import views

        shown = [views.sweep_json(s) for s in self.sweeps]
        return shown[0] if self.name else shown


def status(name: str | None = None, context: str | None = None, namespace: str | None = None,
           connection=None) -> SweepsView:
    """The sweeps in the namespace (or sweep `name`) as the cluster has them now."""
    from ff_client.cluster import connection as cluster

    connection = connection or cluster.connect(context, namespace)
    now = datetime.datetime.now(datetime.UTC)
    found = [cluster.get_sweep(connection, name)] if name else cluster.list_sweeps(connection)
    return SweepsView(tuple(found), name, now)
