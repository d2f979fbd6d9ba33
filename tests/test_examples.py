"""Every example sweep validates and plans; the demo sweep trains end to end with interior isoFLOP minima."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ff_client.fit.analysis import analyze_store
from ff_client.params import count_params
from ff_core.plan import plan_sweep
from ff_core.spec import load_sweep
from ff_core.store import open_store

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_plans_and_counts_match_the_plugin(path):
    sweep = load_sweep(path)
    plan = plan_sweep(sweep)
    budgets = {e.budget for e in plan.experiments}
    assert len(budgets) == len(sweep.spec.budgets) >= 3
    assert not plan.notes, plan.notes  # every budget gets all its points
    counted = {c["name"]: c for c in count_params(sweep)}
    for size in sweep.spec.sizes:
        assert counted[size.name]["nParams"] == size.n_params
        assert counted[size.name].get("flopsPerToken") == size.flops_per_token


def test_small_demo_has_interior_minima_and_every_output(small_demo, tmp_path):
    """The demo's own sweep cut to two budgets, trained by `ffctl run` and analysed; a rerun trains nothing."""
    assert "8 trained, 0 already done, 0 failed" in small_demo["run"]
    analysis = analyze_store(open_store(small_demo["results"]), out_dir=tmp_path / "out")
    assert len(analysis.points) == 8 and not analysis.excluded
    iso = analysis.fit("isoflop")
    assert [c.interior for c in iso.curves] == [True, True]
    n_opts = [c.n_opt for c in iso.curves]
    assert n_opts == sorted(n_opts)  # the bigger budget wants a bigger model
    # two minima fit any power law exactly: none is fitted, and the reader is told why
    assert iso.n_opt is None and any("N_opt(C) needs 3 or more" in w for w in analysis.warnings)
    assert not [r for r in analysis.rows if r.kind == "extrapolated"]  # nor extrapolated from two budgets
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "table.md", "table.csv", "table.tex", "table.json", "report.txt", "isoflop.png", "optimal.png",
        "contours.png", "residuals.png"}
    a = analysis.results["parametric"].parameters["a"]
    assert 0 < a.value < 1 and a.low <= a.value <= a.high  # bootstrap intervals by default
    # from another working directory, the sweep file's relative store is the same one: nothing trains again
    rerun = subprocess.run([sys.executable, "-m", "ff_client.cli", "run", str(small_demo["sweep"])],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert rerun.returncode == 0 and "0 trained, 8 already done" in rerun.stderr
    assert f"next: ffctl analyze {small_demo['results']}" in rerun.stderr


@pytest.mark.slow
def test_demo_sweep_end_to_end(tmp_path):
    """`make demo` itself: the real tiny.yaml, trained and analysed (two minutes on 2 cores). Slow: `make test`
    leaves it out; `make bench` (benchmarks/demo_time.py) runs the same sweep and checks the same minima."""
    tiny = Path(__file__).resolve().parents[1] / "examples" / "tiny.yaml"
    store = f"file://{tmp_path}/results"
    proc = subprocess.run([sys.executable, "-m", "ff_client.cli", "run", str(tiny), "--store", store,
                           "--workers", "2"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    analysis = analyze_store(open_store(f"{store}/tiny"), out_dir=tmp_path / "out")
    assert len(analysis.points) == 15 and not analysis.excluded
    assert [c.interior for c in analysis.fit("isoflop").curves] == [True, True, True]
    # bigger budgets want bigger models and more data
    n_opts = [c.n_opt for c in analysis.fit("isoflop").curves]
    assert n_opts == sorted(n_opts)
    assert 0.3 < analysis.fit("isoflop").n_opt.exponent < 0.8
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "table.md", "table.csv", "table.tex", "table.json", "report.txt", "isoflop.png", "optimal.png",
        "contours.png", "residuals.png"}
    a = analysis.results["isoflop"].parameters["a"]
    assert a.low < a.value < a.high  # bootstrap intervals by default
