"""Shared fixtures: small sweep manifests, and a real S3 endpoint (moto's server) on 127.0.0.1."""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# A sweep small enough to train in seconds on one CPU core; nParams as the GPT plugin counts them.
TINY = {
    "apiVersion": "flopsfit.dev/v1alpha1",
    "kind": "ScalingSweep",
    "metadata": {"name": "unit"},
    "spec": {
        "model": {"plugin": "ff_plugins.gpt:GPT", "args": {"vocab_size": 256}},
        "data": {"plugin": "ff_plugins.text:TextData", "args": {"corpus_bytes": 200000}},
        "budgets": [6.0e8, 1.2e9],
        "pointsPerBudget": 3,
        "tokensPerParam": {"min": 0.01, "max": 500},
        "sizes": [
            {"name": "xs", "knobs": {"d_model": 16, "n_layers": 1, "n_heads": 2}, "nParams": 7920},
            {"name": "s", "knobs": {"d_model": 24, "n_layers": 1, "n_heads": 2}, "nParams": 14184},
            {"name": "m", "knobs": {"d_model": 32, "n_layers": 2, "n_heads": 2}, "nParams": 34688},
        ],
        "training": {"globalBatchTokens": 512, "sequenceLength": 32, "learningRate": 3e-3, "evalTokens": 2048,
                     "logPoints": 10, "checkpointEverySteps": 5},
    },
}


# Session fixtures built once per run by a minute of training (built_once: the other xdist process waits).
SHARED_BUILDS = ("small_demo", "tracked")


def pytest_collection_modifyitems(config, items):
    """The first reader of each shared build (which builds it) and the long tests first, the other readers of a
    shared build last, when it is long built; collection order otherwise (a stable sort: the same order in
    every process, as xdist requires). `make test` runs --dist worksteal: each process starts on half of this
    order and takes from the other's queue when its own runs out, so the two finish together."""
    first: set[str] = set()

    def rank(item) -> int:
        shared = next((name for name in SHARED_BUILDS if name in getattr(item, "fixturenames", ())), None)
        if shared is not None:
            if shared in first:
                return 2
            first.add(shared)
            return 0
        return 0 if item.get_closest_marker("long") is not None else 1

    ranks = {id(item): rank(item) for item in items}
    items.sort(key=lambda item: ranks[id(item)])


@pytest.fixture
def tiny_manifest() -> dict:
    return copy.deepcopy(TINY)


@pytest.fixture
def write_sweep(tmp_path):
    def write(manifest: dict, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        return path

    return write


# The demo sweep (examples/tiny.yaml) cut to its two smallest budgets: 8 experiments, every isoFLOP curve
# with an interior minimum (the 5e10 budget is the demo's own). Trained once per session by `small_demo`.
SMALL_DEMO_BUDGETS = [1.5e10, 5.0e10]


@pytest.fixture
def short_run(tiny_manifest, tmp_path):
    """run(**training) -> the curve's losses then the eval loss of 6 steps of the tiny sweep's smallest GPT on
    the CPU, in this process, with those training fields set (each run in its own store)."""
    import torch

    from ff_core.spec import parse_sweep
    from ff_core.store import FileStore
    from ff_plugins.gpt import GPT
    from ff_plugins.losses import cross_entropy
    from ff_plugins.text import TextData
    from ff_trainer.checkpoint import Checkpointer
    from ff_trainer.train import Job, train
    from ff_trainer.world import World

    runs = itertools.count()

    def run(**training) -> list[float]:
        tiny_manifest["spec"]["training"] |= {"logPoints": 10, **training}
        sweep = parse_sweep(tiny_manifest)
        torch.manual_seed(0)
        model = GPT(256).build(sweep.spec.sizes[0].knobs, sweep.spec.training.sequence_length)
        ckpt = Checkpointer(FileStore(tmp_path / f"run{next(runs)}"), "c/latest.pt", True)
        outcome = train(model, TextData(corpus_bytes=200000), cross_entropy, sweep.spec.training, Job.run(6, ckpt),
                        World(0, 1, torch.device("cpu")))
        return [p["loss"] for p in outcome.curve] + [outcome.eval_loss]

    return run


def built_once(tmp_path_factory, name: str, build) -> tuple[Path, dict]:
    """(folder, build(folder)): build (returning a JSON-able dict) runs once per test run, however many xdist
    processes ask for it.

    The first process to ask builds it in a folder all of them share (the run's base temporary folder) while
    holding a file lock; the others wait for that lock and read the dict it left. Only for things the tests
    then read without changing (copy them first to change them).
    """
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # shared by every worker of this run
    folder, done = root / f"shared-{name}", root / f"shared-{name}.json"
    with FileLock(str(root / f"shared-{name}.lock")):
        if not done.exists():
            folder.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(build(folder)))
    return folder, json.loads(done.read_text())


def _train_small_demo(folder: Path) -> dict:
    import subprocess
    import sys

    manifest = yaml.safe_load((REPO / "examples" / "tiny.yaml").read_text())
    manifest["spec"]["budgets"] = SMALL_DEMO_BUDGETS
    manifest["spec"]["storage"] = {"uri": "file://./results"}  # beside the sweep file, wherever ffctl runs
    sweep = folder / "tiny.yaml"
    sweep.write_text(yaml.safe_dump(manifest, sort_keys=False))
    elsewhere = folder / "working-directory"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "ff_client.cli", "run", str(sweep), "--workers", "2"],
                          capture_output=True, text=True, timeout=900, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"run": proc.stderr}


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> dict:
    """The small demo trained once per test run through `ffctl run --workers 2`, for tests that only read it.

    {"sweep": the sweep file, "store": its store URI, "results": the sweep's results URI, "run": the run's stderr,
    "folder": the folder of the sweep file and its results}.
    """
    folder, built = built_once(tmp_path_factory, "small-demo", _train_small_demo)
    store = f"file://{folder / 'results'}"
    return {"sweep": folder / "tiny.yaml", "store": store, "results": f"{store}/tiny", "run": built["run"],
            "folder": folder}


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real HTTP S3 endpoint (moto server mode) with a bucket `ff-test`; boto3 talks to it as to AWS."""
    import os

    import boto3
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="ff-test")
    yield url
    server.stop()
