"""ffctl through click's CliRunner: data on stdout, messages on stderr, clear errors."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from ff_client.cli import main
from ff_core.store import FileStore
from synthetic import isoflop_points, record_for


@pytest.fixture
def runner():
    return CliRunner()


def test_plan_table_and_json(runner, tiny_manifest, write_sweep):
    sweep = write_sweep(tiny_manifest)
    table = runner.invoke(main, ["plan", str(sweep)])
    assert table.exit_code == 0, table.output
    assert "6 experiments over 2 budgets" in table.stdout
    assert "next: ffctl run" in table.stderr
    data = json.loads(runner.invoke(main, ["plan", str(sweep), "--json"]).stdout)
    assert [e["id"] for e in data["experiments"]][0] == "ec491e45f979"
    assert data["experiments"][0]["tokens"] == 12800


def test_plan_fills_and_writes_nparams_from_the_model_plugin(runner, tiny_manifest, write_sweep):
    for size in tiny_manifest["spec"]["sizes"]:
        del size["nParams"]
    sweep = write_sweep(tiny_manifest)
    result = runner.invoke(main, ["plan", str(sweep), "--write"])
    assert result.exit_code == 0, result.output
    assert "counting parameters with ff_plugins.gpt:GPT" in result.stderr
    assert "nParams: 7920" in sweep.read_text()


def test_plan_errors_are_one_clear_line(runner, tiny_manifest, write_sweep):
    tiny_manifest["spec"]["budgets"] = [-1]
    result = runner.invoke(main, ["plan", str(write_sweep(tiny_manifest))])
    assert result.exit_code == 1
    assert "budgets[0] is -1; every budget must be > 0 FLOPs" in result.stderr
    assert "Traceback" not in result.output


def _synthetic_store(tmp_path, points, extra=()):
    store = FileStore(tmp_path / "store")
    for i, point in enumerate(points):
        store.put_json(f"synth/e{i:011d}/result.json", record_for(replace(point, label=f"e{i:011d}")))
    for key, value in extra:
        store.put_json(key, value)
    return store


def test_analyze_writes_table_plots_and_json(runner, tmp_path):
    points = isoflop_points(noise=0.002, seed=5)
    store = _synthetic_store(tmp_path, points)
    (store.root / "synth" / "broken").mkdir()
    (store.root / "synth" / "broken" / "result.json").write_text('{"half": ')
    diverged = record_for(points[0], status="diverged")
    diverged["experiment"] = "ediverged000"
    store.put_json("synth/ediverged000/result.json", diverged)
    out = tmp_path / "out"
    result = runner.invoke(main, ["analyze", f"file://{store.root}", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["points"] == len(points)
    assert data["isoflop"]["n_opt"]["exponent"] == pytest.approx(0.4516, abs=0.02)
    assert data["parametric"]["alpha"] == pytest.approx(0.34, rel=0.05)
    reasons = {e["label"]: e["reason"] for e in data["excluded"]}
    assert "not valid JSON" in reasons["synth/broken/result.json"]
    assert reasons["ediverged000"].startswith("diverged")
    assert "warning: excluded synth/broken/result.json" in result.stderr
    for name in ("table.md", "table.csv", "isoflop.png", "optimal.png"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert {r["approach"] for r in rows} == {"isoflop", "parametric"}
    assert float(rows[0]["flops"]) == 1e18
    assert (out / "isoflop.png").read_bytes()[:4] == b"\x89PNG"


def test_analyze_text_report(runner, tmp_path):
    store = _synthetic_store(tmp_path, isoflop_points(seed=6))
    result = runner.invoke(main, ["analyze", str(store.root)])
    assert result.exit_code == 0, result.output
    assert "| approach | FLOPs | N_opt | D_opt | D/N | L_opt | extrapolated |" in result.stdout
    assert "n_opt = " in result.stdout and "Approach 3" in result.stdout


def test_analyze_errors(runner, tmp_path):
    empty = runner.invoke(main, ["analyze", f"file://{tmp_path}/nothing"])
    assert empty.exit_code == 1 and "no results" in empty.stderr and "ffctl run SWEEP" in empty.stderr
    store = FileStore(tmp_path / "two")
    pts = isoflop_points()
    store.put_json("a/e1/result.json", record_for(pts[0], sweep="a"))
    store.put_json("b/e1/result.json", record_for(pts[1], sweep="b"))
    both = runner.invoke(main, ["analyze", str(store.root)])
    assert both.exit_code == 1 and "holds results of several sweeps (a, b)" in both.stderr
