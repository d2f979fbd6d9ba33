"""Reading tracked runs back the way each tool stores them: MLflow through its client, W&B offline run folders
(their .wandb record log), TensorBoard event files through TensorBoard's own reader."""

from __future__ import annotations

import json
import struct
from pathlib import Path

WANDB_BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of (crc, length, type) records


def mlflow_runs(uri: str, experiment: str) -> list:
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def mlflow_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


def _wandb_records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run log"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if WANDB_BLOCK - pos % WANDB_BLOCK < 7:  # a block's tail too short for a header is padding
            pos += WANDB_BLOCK - pos % WANDB_BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def wandb_offline_runs(folder: Path) -> list[dict]:
    """Every offline run folder under `folder`/wandb, oldest first: id, group, name, job type, tags, config,
    history rows, summary and exit code."""
    runs = []
    for log in sorted((folder / "wandb").glob("offline-run-*/run-*.wandb")):
        run = {"history": [], "summary": {}, "config": {}, "exit": None}
        for record in _wandb_records(log):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                r = record.run
                run |= {"id": r.run_id, "group": r.run_group, "name": r.display_name, "job_type": r.job_type,
                        "tags": list(r.tags)}
                run["config"] |= {_key(i): json.loads(i.value_json) for i in r.config.update if _key(i) != "_wandb"}
            elif kind == "history":
                run["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
            elif kind == "summary":
                run["summary"] |= {_key(i): json.loads(i.value_json) for i in record.summary.update}
            elif kind == "exit":
                run["exit"] = record.exit.exit_code
        runs.append(run)
    return runs


def tensorboard_run(folder: str):
    """TensorBoard's own reader over a run folder (every event file in it, purging what a restart replaced)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(folder, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def tb_scalars(accumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]
