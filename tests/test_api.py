"""The SDK under ffctl (ff_client.api, ff_client.source): each command as a function in-process, its result the
same as the command prints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ff_client import api
from ff_client.cli import main
from ff_client.fit.analysis import Settings
from ff_client.source import resolve
from ff_core.errors import FlopsFitError, UsageError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STORE = HERE / "data" / "demo-store" / "tiny"


def test_plan_is_a_function_whose_result_is_what_ffctl_plan_prints():
    view = api.plan(str(REPO / "examples" / "tiny.yaml"))
    printed = CliRunner().invoke(main, ["plan", str(REPO / "examples" / "tiny.yaml"), "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == view.to_json()
    assert len(view.plan.experiments) == len(view.to_json()["experiments"]) > 0
    assert view.text().startswith("id ") and "cost:" in view.text()  # the table, then the cost


def test_analyze_is_a_function_whose_result_is_what_ffctl_analyze_prints(tmp_path):
    said, warned = [], []
    report = api.analyze(str(STORE), Settings(resamples=0), out=tmp_path / "fit", say=said.append, warn=warned.append)
    printed = CliRunner().invoke(main, ["analyze", str(STORE), "--json", "--bootstrap", "0"])
    assert printed.exit_code == 0, printed.output
    mine, theirs = report.to_json(), json.loads(printed.stdout)
    assert mine.pop("files") and theirs.pop("files") == []  # only the files differ: --out was given here
    assert mine == theirs
    assert all(Path(f).is_file() for f in report.files) and (tmp_path / "fit").is_dir()
    assert "## Approach 2" in report.text()


def test_compare_of_a_store_with_itself_finds_no_gap(tmp_path):
    result = api.compare(str(STORE), str(STORE), "isoflop", Settings(resamples=0), out=tmp_path)
    assert result.rows() and all(row["multiplier"]["value"] == 1.0 and row["loss_gap"]["value"] == 0.0
                                 for row in result.rows())
    assert {p.name for p in tmp_path.iterdir()} == {"compare.md", "compare.json", "compare.png"}


def test_source_reads_each_kind_once(tmp_path, monkeypatch):
    """One resolver for analyze, compare and suggest: a store (its sweep and root), a points file, and words
    that are neither (a mistyped folder is not taken for a cluster NAME without saying both readings)."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    shutil.copytree(STORE, tmp_path / "results" / "tiny")
    store = resolve(str(tmp_path / "results" / "tiny"))
    assert store.kind == "store" and store.root == f"file://{tmp_path / 'results'}"
    assert store.beside("tiny-transfer").uri == f"file://{tmp_path / 'results' / 'tiny-transfer'}"
    assert len(store.observations().points) > 10
    points = tmp_path / "points.csv"
    points.write_text("n_params,tokens,loss\n1e6,2e7,3.1\n2e6,1e7,3.2\n")
    source = resolve(str(points))
    assert source.kind == "points" and source.sweep() is None and len(source.observations().points) == 2
    with pytest.raises(FlopsFitError, match="no such folder"):
        resolve("My_Results")  # cannot be a sweep NAME
    with pytest.raises(FlopsFitError, match="nor a cluster"):
        resolve("tiny")  # could be one, but no cluster is configured
    with pytest.raises(UsageError, match="--track"):
        api.analyze(source, track=True)


def test_run_is_a_function_and_a_rerun_of_a_trained_sweep_trains_nothing(small_demo, tmp_path):
    """api.run in-process on a copy of the shared demo store: every step already has its result."""
    shutil.copytree(small_demo["folder"] / "results", tmp_path / "results")
    events, told = [], []
    outcome = api.run(str(small_demo["sweep"]), store=f"file://{tmp_path / 'results'}", on_event=events.append,
                      on_steps=told.append)
    assert outcome.summary.trained == [] and not outcome.summary.failed and len(outcome.summary.skipped) == told[0]
    assert {e.kind for e in events} == {"skipped"} and len(events) == told[0] > 0
    assert outcome.results == f"file://{tmp_path / 'results' / 'tiny'}"
    assert outcome.to_json()["skipped"] == outcome.summary.skipped and "0 trained" in outcome.text()
    json.dumps(outcome.to_json())
