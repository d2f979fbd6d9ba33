"""ffctl through click's CliRunner: data on stdout, messages on stderr, clear errors."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from ff_client.cli import main
from ff_core.flops import H100_BF16_PEAK
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
    assert "GPU-hours at 35% MFU of 9.89e+14 FLOP/s" in table.stdout
    assert "next: ffctl run" in table.stderr
    data = json.loads(runner.invoke(main, ["plan", str(sweep), "--json"]).stdout)
    assert [e["id"] for e in data["experiments"]][0] == "ec491e45f979"
    assert data["experiments"][0]["tokens"] == 12800
    assert data["gpuHours"] == pytest.approx(data["totalFlops"] / (H100_BF16_PEAK * 0.35) / 3600)


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
    result = runner.invoke(main, ["analyze", f"file://{store.root}", "--out", str(out), "--json", "--bootstrap", "200",
                                  "--target-flops", "3e22", "--plot-format", "png,svg,pdf"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["points"] == len(points)
    a = data["approaches"]["isoflop"]["parameters"]["a"]
    assert a["value"] == pytest.approx(0.4516, abs=0.02) and a["ci_low"] < a["value"] < a["ci_high"]
    alpha = data["approaches"]["parametric"]["parameters"]["alpha"]
    assert alpha["value"] == pytest.approx(0.34, rel=0.05) and alpha["ci_low"] < 0.34 < alpha["ci_high"]
    target = [p for p in data["approaches"]["parametric"]["predictions"] if p["kind"] == "target"]
    assert target[0]["flops"] == 3e22 and target[0]["n_opt"]["ci_low"] < target[0]["n_opt"]["value"]
    reasons = {e["label"]: e["reason"] for e in data["excluded"]}
    assert "not valid JSON" in reasons["synth/broken/result.json"]
    assert reasons["ediverged000"].startswith("diverged")
    assert "warning: excluded synth/broken/result.json" in result.stderr
    assert data["backtest"]["held_out"] == 1e21 and abs(data["backtest"]["parametric"]["l_opt_error"]) < 0.01
    for name in ("table.md", "table.csv", "table.tex", "table.json", "report.txt", "isoflop.png", "optimal.png",
                 "isoflop.svg", "optimal.pdf"):
        assert (out / name).stat().st_size > 0, name
    # every table format re-reads to the same numbers
    rows = list(csv.DictReader((out / "table.csv").open()))
    again = json.loads((out / "table.json").read_text())
    assert {r["approach"] for r in rows} == {"isoflop", "parametric"} and len(rows) == len(again)
    for row, record in zip(rows, again):
        assert float(row["n_opt"]) == record["n_opt"]["value"] and float(row["l_opt_ci_high"]) == record["l_opt"]["ci_high"]
    assert float(rows[0]["flops"]) == 1e18
    assert "\\begin{tabular}" in (out / "table.tex").read_text() and "\\bottomrule" in (out / "table.tex").read_text()
    assert (out / "isoflop.png").read_bytes()[:4] == b"\x89PNG" and (out / "optimal.pdf").read_bytes()[:4] == b"%PDF"


def test_analyze_external_points_file(runner, tmp_path):
    points = isoflop_points(noise=0.003, seed=8)
    path = tmp_path / "chinchilla-like.csv"
    path.write_text("n_params,tokens,loss\n" + "".join(f"{p.n_params},{p.tokens},{p.loss}\n" for p in points))
    result = runner.invoke(main, ["analyze", "--data", str(path), "--json", "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sweep"] == "chinchilla-like" and data["points"] == len(points)
    assert len(data["approaches"]["isoflop"]["curves"]) == 4  # budgets recovered from 6ND
    assert data["approaches"]["isoflop"]["parameters"]["a"]["ci_low"] is None
    assert "data_constrained" not in data["approaches"]  # no unique_tokens column: not applicable
    path.write_text("n_params,tokens,loss,unique_tokens\n" + "".join(
        f"{p.n_params},{p.tokens},{p.loss},{p.tokens / (1 + i % 3)}\n" for i, p in enumerate(points)))
    repeated = json.loads(runner.invoke(main, ["analyze", "--data", str(path), "--json", "--bootstrap", "60"]).stdout)
    constrained = repeated["approaches"]["data_constrained"]
    assert constrained["repeated_points"] == sum(1 for i in range(len(points)) if i % 3)
    assert constrained["parameters"]["r_star_d"]["ci_low"] is not None
    path.write_text("n_params,tokens,loss\n1e6,2e7,2.5\n1e6,abc,2.4\n")
    bad = runner.invoke(main, ["analyze", "--data", str(path)])
    assert bad.exit_code == 1 and "row 2, column 'tokens': 'abc' is not a number" in bad.stderr
    path.write_text("params,tokens,loss\n1,2,3\n")
    assert "missing column(s) n_params" in runner.invoke(main, ["analyze", "--data", str(path)]).stderr
    both = runner.invoke(main, ["analyze", str(tmp_path), "--data", str(path)])
    assert both.exit_code == 2 and "give a STORE_URI, a sweep NAME or --data FILE" in both.stderr


def test_analyze_text_report(runner, tmp_path):
    store = _synthetic_store(tmp_path, isoflop_points(seed=6))
    result = runner.invoke(main, ["analyze", str(store.root), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "| approach | FLOPs | N_opt | D_opt | D/N | L_opt | budget |" in result.stdout
    assert "95% bootstrap intervals, 50 resamples, seed 0" in result.stdout
    assert "n_opt = " in result.stdout and "Approach 3" in result.stdout


def test_analyze_errors(runner, tmp_path):
    (tmp_path / "nothing").mkdir()
    empty = runner.invoke(main, ["analyze", f"file://{tmp_path}/nothing"])
    assert empty.exit_code == 1 and "no results" in empty.stderr and "ffctl run SWEEP" in empty.stderr
    missing = runner.invoke(main, ["analyze", f"file://{tmp_path}/nowhere"])
    assert missing.exit_code == 1 and "no such folder" in missing.stderr and "ffctl run" not in missing.stderr
    store = FileStore(tmp_path / "two")
    pts = isoflop_points()
    store.put_json("a/e1/result.json", record_for(pts[0], sweep="a"))
    store.put_json("b/e1/result.json", record_for(pts[1], sweep="b"))
    both = runner.invoke(main, ["analyze", str(store.root)])
    assert both.exit_code == 1 and "holds results of several sweeps (a, b)" in both.stderr
    negative = runner.invoke(main, ["analyze", str(store.root / "a"), "--target-flops", "-1e20"])
    assert negative.exit_code == 2 and "Invalid value for '--target-flops'" in negative.stderr
    assert "Traceback" not in negative.output
