"""The tracking backends behind ff_core.tracking's contract: MLflow, Weights & Biases and TensorBoard, each
importing its optional package only when opened, and opening them for a spec (BACKENDS: name -> the package it
needs and its opener; `require` refuses a spec whose packages are missing, with the pip command that installs
them). Each keeps one run per RunInfo.key:

- MLflow: a run in the experiment (default: the sweep's folder) tagged run_key; a resume finds it by that tag.
- W&B: the run id is made from the key (resume="allow"); the run is grouped by the sweep, job_type its kind.
- TensorBoard: event files under logDir/<sweep>/<name> (a folder, or s3://: copied there with the store's
  endpoint and credentials); a resume writes a new file there that starts with a SessionLog START after the
  resumed step, so TensorBoard drops what the lost steps had logged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import struct
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ff_core.errors import SpecError
from ff_core.spec import MlflowTracking, TensorBoardTracking, Tracking, WandbTracking
from ff_core.tracking import STEP_METRIC, RunInfo, Tracker, warning

TEXT_SUFFIXES = (".md", ".txt", ".csv", ".json", ".tex")


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


# --- MLflow --------------------------------------------------------------------------------------------------

PROBE_SECONDS = 3.0  # how long an MLflow server gets to answer its /health before a run goes on without it


def _answers(uri: str | None) -> None:
    """An http(s) tracking server answers within PROBE_SECONDS, or ConnectionError. One that accepts connections
    and never answers would hold the run's first request for MLflow's timeout and retry: 20 s a run."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        return  # a local folder or database: nothing to wait for
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_SECONDS).close()
    except urllib.error.HTTPError:
        return  # it answered (a proxy asking for credentials, a server without /health): MLflow will tell
    except (OSError, ValueError) as error:
        raise ConnectionError(f"the MLflow server at {uri} did not answer within {PROBE_SECONDS:g} s "
                              f"({getattr(error, 'reason', error)})") from None


def _mlflow_client(cfg: MlflowTracking):
    # A server that is down costs a few seconds per call, not MLflow's default of minutes of retries; after the
    # first failure the Tracker drops the backend.
    _answers(cfg.tracking_uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=cfg.tracking_uri)


def mlflow_experiment(cfg: MlflowTracking, sweep: str):
    """(client, experiment id) of the sweep's MLflow experiment, created when missing."""
    from mlflow.exceptions import MlflowException

    client = _mlflow_client(cfg)
    name = cfg.experiment or sweep
    found = client.get_experiment_by_name(name)
    if found is not None:
        return client, found.experiment_id
    try:
        return client, client.create_experiment(name, tags={"sweep": sweep})
    except MlflowException:  # another trainer created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return client, found.experiment_id


class MlflowRun:
    def __init__(self, cfg: MlflowTracking, run: RunInfo, endpoint_url: str | None = None):
        from mlflow.entities import Param

        self.client, experiment = mlflow_experiment(cfg, run.sweep)
        found = (self.client.search_runs([experiment], filter_string=f"tags.run_key = '{run.key}'", max_results=1)
                 if run.resume else [])
        self.step = 0
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        tags = {**run.tags, "sweep": run.sweep, "kind": run.kind, "run_key": run.key}
        self.run_id = self.client.create_run(experiment, run_name=run.name, tags=tags).info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in run.params.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def _metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._metrics(step, metrics)
        self.step = step

    def resumed(self, step: int) -> None:
        self.step = step

    def artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def finish(self, summary: dict[str, float], status: str) -> None:
        if summary:
            self._metrics(self.step, summary)
        self.client.set_tag(self.run_id, "status", status)
        self.client.set_terminated(self.run_id, "FINISHED" if status == "completed" else "FAILED")

    def pause(self) -> None:
        self.client.set_terminated(self.run_id, "KILLED")


# --- Weights & Biases ----------------------------------------------------------------------------------------

def wandb_id(key: str) -> str:
    """A W&B run id for a run key: the characters W&B allows, at most 64, unique per key."""
    plain = re.sub(r"[^A-Za-z0-9_-]", "-", key)
    return plain if len(plain) <= 64 else f"{plain[:51]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class WandbRun:
    def __init__(self, cfg: WandbTracking, run: RunInfo, endpoint_url: str | None = None):
        import wandb

        self._wandb = wandb
        self.run = wandb.init(
            project=cfg.project, entity=cfg.entity, mode=cfg.mode, group=cfg.group or run.sweep, name=run.name,
            job_type=run.kind, id=wandb_id(run.key) if run.resume else None, resume="allow" if run.resume else None,
            config=run.params, tags=[f"{k}:{v}"[:64] for k, v in {"sweep": run.sweep, **run.tags}.items()],
            reinit="create_new", settings=wandb.Settings(silent=True, console="off", init_timeout=60),
        )
        self.run.define_metric(STEP_METRIC)
        self.run.define_metric("train/*", step_metric=STEP_METRIC)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log({STEP_METRIC: step, **metrics})

    def resumed(self, step: int) -> None:
        pass  # the curve is plotted against train/step, so the lost steps' points are overwritten in place

    def artifact(self, path: Path) -> None:
        if path.suffix == ".png":
            self.run.log({f"plots/{path.stem}": self._wandb.Image(str(path))})
        self.run.save(str(path), base_path=str(path.parent), policy="now")

    def finish(self, summary: dict[str, float], status: str) -> None:
        self.run.summary.update({**summary, "status": status})
        self.run.finish(exit_code=0 if status == "completed" else 1)

    def pause(self) -> None:
        self.run.mark_preempting()
        self.run.finish(exit_code=1)


# --- TensorBoard ---------------------------------------------------------------------------------------------

def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


class TensorBoardRun:
    """Event files written by TensorBoard's own writer; to an s3:// logDir they are written in a local folder
    and copied to the store (with the sweep's endpoint and credentials) every UPLOAD_SECONDS and at the end."""

    UPLOAD_SECONDS = 30.0

    def __init__(self, cfg: TensorBoardTracking, run: RunInfo, endpoint_url: str | None = None):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        name = run.name if run.resume else f"{run.name}-{_stamp()}"
        self.folder = f"{cfg.log_dir.rstrip('/')}/{run.sweep}/{name}"
        self.store, self.uploaded = None, time.monotonic()
        local = self.folder
        if cfg.log_dir.startswith("s3://"):
            from ff_core.store import open_store

            self.store = open_store(self.folder, spec_endpoint=endpoint_url)
            self.store.list()  # fails here, at open, when the bucket cannot be reached
            local = tempfile.mkdtemp(prefix="ff-tensorboard-")
        self.writer = EventFileWriter(local)
        self.step = 0
        rows = "\n".join(f"| {k} | {v} |" for k, v in {**run.tags, **run.params}.items())
        self._text("run", f"| field | value |\n|---|---|\n{rows}", 0)

    def _upload(self, closed: bool = False) -> None:
        """Copy the event files to S3: when the writer is closed, or every UPLOAD_SECONDS."""
        if self.store is None or not (closed or time.monotonic() - self.uploaded > self.UPLOAD_SECONDS):
            return
        if not closed:
            self.writer.flush()
        path = Path(self.writer.get_logdir())
        for file in path.iterdir():
            self.store.put_file(file.name, file)
        self.uploaded = time.monotonic()

    def _write(self, step: int, **event) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self.writer.add_event(Event(wall_time=time.time(), step=step, **event))

    def _text(self, tag: str, text: str, step: int) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        self._write(step, summary=text_pb(tag, text))

    def _scalars(self, step: int, metrics: dict[str, float]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._write(step, summary=Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in metrics.items()]))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._scalars(step, metrics)
        self.step = step
        self._upload()

    def resumed(self, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import SessionLog

        self._write(step + 1, session_log=SessionLog(status=SessionLog.START))  # TensorBoard purges steps > step
        self.step = step

    def artifact(self, path: Path) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        if path.suffix == ".png":
            data = path.read_bytes()
            width, height = _png_size(data)
            image = Summary.Image(encoded_image_string=data, width=width, height=height, colorspace=4)
            self._write(self.step, summary=Summary(value=[Summary.Value(tag=f"plots/{path.stem}", image=image)]))
        elif path.suffix in TEXT_SUFFIXES:
            self._text(f"files/{path.name}", path.read_text(), self.step)
        self.writer.flush()

    def _close(self) -> None:
        self.writer.close()
        self._upload(closed=True)
        if self.store is not None:
            shutil.rmtree(self.writer.get_logdir(), ignore_errors=True)

    def finish(self, summary: dict[str, float], status: str) -> None:
        if summary:
            self._scalars(self.step, summary)
        self._text("status", status, self.step)
        self._close()

    def pause(self) -> None:
        self._close()


# backend -> (the module it imports, which is also the extra that installs it; its opener). Its names are those
# of spec.Tracking's fields (tests/test_tracking.py checks that).
BACKENDS = {"mlflow": ("mlflow", MlflowRun), "wandb": ("wandb", WandbRun),
            "tensorboard": ("tensorboard", TensorBoardRun)}


def missing_packages(tracking: Tracking | None) -> list[str]:
    """The configured backends whose package is not importable here."""
    backends = tracking.backends if tracking is not None else []
    return [name for name in backends if importlib.util.find_spec(BACKENDS[name][0]) is None]


def install_hint(missing: list[str]) -> str:
    return f"pip install 'flops-fit[{','.join(missing)}]'"


def require(tracking: Tracking | None, where: str = "here") -> None:
    """Refuse a spec.tracking whose backends' packages are not installed, with the command that adds them."""
    missing = missing_packages(tracking)
    if missing:
        names = ", ".join(f"spec.tracking.{name}" for name in missing)
        packages = ", ".join(BACKENDS[m][0] for m in missing)
        raise SpecError(f"{names} needs the {packages} package, not installed {where}; "
                        f"run: {install_hint(missing)} (or remove {names} from the sweep)")


def open_tracker(tracking: Tracking | None, run: RunInfo, endpoint_url: str | None = None,
                 warn: Callable[[str], None] | None = None) -> Tracker:
    """A Tracker with a run open in every configured backend (none: a Tracker that does nothing).
    A backend that cannot open its run is reported and left out."""
    warn = warn or warning
    opened = {}
    for name in tracking.backends if tracking is not None else []:
        try:
            opened[name] = BACKENDS[name][1](getattr(tracking, name), run, endpoint_url)
        except Exception as error:
            warn(f"tracking: {name} could not open run {run.key} ({type(error).__name__}: {error}); "
                 "this run is not tracked there, training goes on")
    return Tracker(opened, warn)


def prepare(tracking: Tracking | None, sweep: str) -> None:
    """Before several trainers start at once: create what they would otherwise race to create (the MLflow
    experiment and its database tables). Failures are left for each run to report."""
    if tracking is not None and tracking.mlflow is not None and not missing_packages(tracking):
        try:
            mlflow_experiment(tracking.mlflow, sweep)
        except Exception:
            pass
