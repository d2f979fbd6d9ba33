"""An approach is one unit: a toy approach defined here alone appears in the table, the report and the JSON."""

from __future__ import annotations

import numpy as np

from ff_client.fit.analysis import Settings, analyze
from ff_client.fit.approach import FitData, Result
from ff_client.fit.approaches import APPROACHES
from ff_client.fit.points import Observations
from ff_client.fit.table import to_csv, to_markdown
from synthetic import isoflop_points


class Smallest:
    """Picks, per budget, the point with the lowest loss; predicts N_opt = k C^0.5 through their mean ratio."""

    name = json_key = "smallest"
    listed = False
    allocates, style = False, None

    def fit(self, data: FitData, settings: Settings) -> float:
        best = {}
        for p in data.points:
            if p.budget not in best or p.loss < best[p.budget].loss:
                best[p.budget] = p
        return float(np.mean([p.n_params / p.budget ** 0.5 for p in best.values()]))

    def refit(self, data: FitData, central: float, settings: Settings) -> float:
        return self.fit(data, settings)

    def parameters(self, fit: float) -> dict[str, float]:
        return {"k": fit}

    def predict(self, fit: float, compute: float) -> dict[str, float]:
        n = fit * compute ** 0.5
        return {"n_opt": n, "d_opt": compute / (6 * n), "l_opt": 2.0}

    def warnings(self, result: Result) -> list[str]:
        return ["toy approach: not a scaling law"]

    def section(self, result: Result) -> list[str]:
        return ["## Toy: the best point of each budget"] + result.parameter_lines()

    def to_json(self, result: Result) -> dict:
        return {"parameters": result.parameters_json(), "predictions": result.rows_json()}


def test_a_toy_approach_appears_in_every_output():
    points = tuple(isoflop_points(noise=0.002, seed=5))
    analysis = analyze(Observations("toy", points), Settings(resamples=40, workers=1), APPROACHES + (Smallest(),))
    toy = analysis.results["smallest"]
    assert toy.parameters["k"].low <= toy.parameters["k"].value <= toy.parameters["k"].high  # bootstrapped
    assert toy.failed == 0
    rows = [r for r in analysis.rows if r.approach == "smallest"]
    assert [r.flops for r in rows] == sorted({p.budget for p in points}) + [1e22, 1e23]  # sweep + extrapolated
    assert "| smallest |" in to_markdown(list(analysis.rows)) and "\nsmallest," in to_csv(list(analysis.rows))
    assert "## Toy: the best point of each budget" in analysis.text()
    data = analysis.to_json()
    assert data["approaches"]["smallest"]["parameters"]["k"]["ci_low"] is not None
    assert len(data["approaches"]["smallest"]["predictions"]) == len(rows)
    assert any(r["approach"] == "smallest" for r in data["table"])
    assert data["bootstrap_failures"]["smallest"] == 0
    assert "toy approach: not a scaling law" in data["warnings"]
    # the built-in approaches are untouched by it
    assert list(data["approaches"])[:3] == ["isoflop", "isoflop_parabola", "parametric"]


def test_capabilities_are_declared_where_the_approach_is():
    """compare, suggest, the backtest and the allocation plot read `allocates` and `style` from the registry;
    the commands' --approach choices (kept literal so ffctl starts without importing the fits) list exactly the
    approaches that allocate."""
    import click

    from ff_client.cli import compare, suggest
    from ff_client.fit import backtest
    from ff_client.fit.approaches import APPROACHES

    allocating = {a.name for a in APPROACHES if a.allocates}
    assert allocating == {"isoflop", "parametric"} and {a.name for a in backtest.PREDICTORS} == allocating
    for command in (compare.compare, suggest.suggest):
        choice = next(p for p in command.params if p.name == "approach").type
        assert isinstance(choice, click.Choice) and set(choice.choices) == allocating
    assert all(a.style is not None for a in APPROACHES if a.allocates)
