"""Hyperparameter transfer (issue 13): muP in the GPT plugin (a coordinate check), and the transfer analysis
against synthetic loss-against-learning-rate data whose optimum drifts by a known slope."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ff_client.fit.lrlaw import parabola_min
from ff_client.fit.transfer import analyze_transfer
from ff_core.plan import plan_sweep
from ff_plugins.gpt import GPT

WIDTHS = (32, 64, 128, 256)


def logit_change(parameterization: str, steps: int = 3, lr: float = 1e-2) -> list[float]:
    """Per width: how much the logits move in `steps` Adam steps on one batch (the muP coordinate check)."""
    moved = []
    for width in WIDTHS:
        torch.manual_seed(0)
        plugin = GPT(256, parameterization, 32 if parameterization == "mup" else None)
        model = plugin.build({"d_model": width, "n_layers": 2, "n_heads": 4}, 32)
        groups = plugin.param_groups(model) or [{"params": list(model.parameters()), "lr_scale": 1.0}]
        for group in groups:
            group["lr"] = lr * group["lr_scale"]
        optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0)
        x = torch.randint(0, 256, (8, 32), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            before = model(x)
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 256), torch.roll(x, -1, 1).reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            moved.append(float((model(x) - before).std()))
    return moved


def slope(values: list[float]) -> float:
    return float(np.polyfit(np.log(WIDTHS), np.log(values), 1)[0])


def test_mup_keeps_the_update_size_flat_across_widths_where_standard_grows_it():
    """Standard parameterization: the logits' change after a few steps grows about linearly with width (the
    learning rate that is right at width 32 is too large at 256). muP: it stays flat."""
    standard, mup = slope(logit_change("standard")), slope(logit_change("mup"))
    assert standard > 0.6, standard
    assert abs(mup) < 0.35, mup


def test_mup_at_its_base_width_is_the_standard_model():
    torch.manual_seed(0)
    a = GPT(256, "mup", 32).build({"d_model": 32, "n_layers": 1, "n_heads": 2}, 16)
    torch.manual_seed(0)
    b = GPT(256).build({"d_model": 32, "n_layers": 1, "n_heads": 2}, 16)
    x = torch.randint(0, 256, (2, 16))
    assert torch.allclose(a(x), b(x), atol=1e-6)
    with pytest.raises(ValueError, match="needs base_width"):
        GPT(256, "mup")


def synthetic(drift: float, noise: float = 0.002, seed: int = 0) -> list[tuple[str, float, float, float]]:
    """loss = L0(N) + 0.05 (ln lr - ln lr*(N))^2, with lr*(N) = 3e-3 (N / 1e4)^drift, on a grid x2 apart."""
    rng = np.random.default_rng(seed)
    runs = []
    for n in (1e4, 8e4, 6.4e5):
        best = 3e-3 * (n / 1e4) ** drift
        for lr in 3e-3 * 2.0 ** np.arange(-6, 5):
            loss = 3.0 - 0.2 * math.log10(n) + 0.05 * (math.log(lr) - math.log(best)) ** 2
            runs.append((f"n{n:.0e}", n, float(lr), loss * math.exp(noise * rng.standard_normal())))
    return runs


def test_the_analysis_recovers_a_known_drift_and_a_flat_optimum():
    drifting = analyze_transfer(synthetic(-0.5), sweep_lr=3e-3)
    assert drifting.slope.low <= -0.5 <= drifting.slope.high and drifting.slope.high < 0
    assert drifting.transfers is False and "does not transfer" in drifting.verdict()
    assert drifting.sizes[-1].cost_of_sweep_lr > 0  # the sweep's learning rate costs the largest size
    flat = analyze_transfer(synthetic(0.0), sweep_lr=3e-3)
    assert flat.slope.low <= 0 <= flat.slope.high and flat.transfers is True
    assert all(s.basin[0] <= 3e-3 <= s.basin[1] for s in flat.sizes)


def test_an_optimum_at_the_grids_edge_is_undetermined():
    runs = [r for r in synthetic(-0.5) if r[2] >= 3e-3 / 4]  # the largest size's optimum falls off the grid
    result = analyze_transfer(runs, sweep_lr=3e-3)
    assert result.transfers is None and "widen the grid" in result.verdict()




def test_a_curve_that_is_not_one_valley_is_flagged_rough_not_fitted():
    """A tiny model that stays on a plateau at one rate and escapes it at the next (measured on the CPU: the muP
    GPT's d24 at D/N 60 gave 1.236, 1.827, 1.273 at rates x1.41 apart). With the spike beside the best point no
    parabola through it and its neighbours has a minimum; one step farther out, the parabola has one, pulled off
    the true optimum (3e-3) with an interval that misses it. Both are flagged rough, with no interval, the verdict
    undetermined, and the laws leave them out. Diverged runs far above the valley that differ among themselves
    are not roughness."""
    runs = synthetic(-0.5, noise=0.0)
    rates = sorted({lr for name, _, lr, _ in runs if name == "n1e+04"})
    best = rates.index(3e-3)

    def spiked(at: int) -> list:  # up onto a plateau at rate `at`, back near the valley at the next
        factor = {rates[at]: 1.3, rates[at + 1]: 1.01}
        return [(name, n, lr, loss * factor.get(lr, 1.0) if name == "n1e+04" else loss) for name, n, lr, loss in runs]

    for at in (best + 1, best + 2):
        result = analyze_transfer(spiked(at), sweep_lr=3e-3)
        size = result.sizes[0]
        assert size.rough and not size.at_edge and size.undetermined and size.lr.low is None
        assert result.transfers is None and "not one valley" in result.verdict() and "rough curve" in result.text()
        assert result.to_json()["sizes"][0]["rough"] is True
    # what the parabola through the best point and 2 neighbours each side says of the second: a minimum whose
    # interval (the parabola's own residuals) misses the truth
    near = sorted((lr, loss) for name, _, lr, loss in spiked(best + 2) if name == "n1e+04")[best - 2:best + 3]
    coef = np.polyfit(np.log([lr for lr, _ in near]), [loss for _, loss in near], 2)
    assert coef[0] > 0 and math.exp(-coef[1] / (2 * coef[0])) < 3e-3 / 2 ** 0.5
    diverged = {lr: 7.0 - 0.1 * k for k, lr in enumerate(rates[best + 3:])}  # diverged: 3x the best loss
    plateau = [(name, n, lr, diverged.get(lr, loss) if name == "n1e+04" else loss) for name, n, lr, loss in runs]
    assert not analyze_transfer(plateau, sweep_lr=3e-3).sizes[0].rough


def test_a_cliff_beside_the_optimum_does_not_pull_lr_star_off_it():
    """The loss jumps at the rate after the best and keeps rising (a clean cliff: one valley): the 5-point
    parabola's vertex lands 2 grid steps below the true optimum (3e-3 on a x2 grid), at rates measured worse;
    the best point and its 2 neighbours keep LR* within half a step of it (the cliff still pulls it down by 0.47
    of a step, and its interval stops 3% short of the truth: a cliff beside the optimum leaves a bias)."""
    runs = synthetic(0.0, noise=0.0)
    rates = sorted({lr for _, _, lr, _ in runs})
    best = rates.index(3e-3)
    cliff = {lr: 1.4 for lr in rates[best + 1:]}  # every rate past the best 40% up
    runs = [(name, n, lr, loss * cliff.get(lr, 1.0) if n == 1e4 else loss) for name, n, lr, loss in runs]
    size = analyze_transfer(runs, sweep_lr=3e-3).sizes[0]
    assert not size.rough and not size.at_edge
    assert abs(math.log(size.lr.value / 3e-3)) < math.log(2) / 2 and size.lr.low is not None, size.lr
    near = sorted((lr, loss) for _, n, lr, loss in runs if n == 1e4)[best - 2:best + 3]
    coef = np.polyfit(np.log([lr for lr, _ in near]), [loss for _, loss in near], 2)
    assert coef[0] > 0 and math.log(3e-3) + coef[1] / (2 * coef[0]) > math.log(2)  # the 5-point vertex: a step off


@pytest.mark.long
def test_ffctl_transfer_trains_the_pilot_and_prints_a_verdict(tiny_manifest, write_sweep, tmp_path):
    """The pilot is ordinary sweeps in one folder (one per learning rate): trained here, analysed, plotted;
    a second call trains nothing."""
    from test_executor import ffctl

    tiny_manifest["spec"]["sizes"] = tiny_manifest["spec"]["sizes"][:2]
    sweep = write_sweep(tiny_manifest)
    args = ("transfer", str(sweep), "--store", f"file://{tmp_path / 'store'}", "--lr-grid", "1e-3,3e-3,1e-2",
            "--tokens-per-param", "4", "--workers", "2", "--out", str(tmp_path / "out"))
    first = ffctl(*args)
    assert first.returncode == 0, first.stderr
    assert "transfer pilot: 3 learning rates x 2 sizes" in first.stderr
    assert any(word in first.stdout for word in ("transfers", "does not transfer", "undetermined"))
    assert (tmp_path / "out" / "transfer.png").exists()
    results = list((tmp_path / "store" / "unit-transfer").glob("*/result.json"))
    assert len(results) == 6
    again = ffctl(*args, "--json")
    assert again.returncode == 0 and len(json.loads(again.stdout)["sizes"]) == 2
    assert len(list((tmp_path / "store" / "unit-transfer").glob("*/result.json"))) == 6


def test_a_pilot_with_one_finished_size_is_refused_with_a_reason():
    from ff_core.errors import FlopsFitError

    with pytest.raises(FlopsFitError, match="finished pilot runs at 2 or more sizes"):
        analyze_transfer([r for r in synthetic(0.0) if r[1] == 1e4], sweep_lr=3e-3)


def test_analyze_checks_the_sweeps_learning_rate_against_its_pilot(tmp_path):
    """A store holding the sweep (the stored demo) and its pilot beside it (<name>-transfer; here synthetic: the
    optimum drifts as N^-0.5 from the sweep's 3e-3): `ffctl analyze` names the sizes whose basin holds the
    sweep's learning rate and warns for the others; runs of a second pilot at other token counts are left out,
    said, and not pooled."""
    import shutil

    from click.testing import CliRunner

    from ff_client.cli import main

    demo = Path(__file__).resolve().parent / "data" / "demo-store" / "tiny"
    shutil.copytree(demo, tmp_path / "tiny")
    template = json.loads(next(demo.glob("*/result.json")).read_text())
    for i, (size, n, lr, loss) in enumerate(synthetic(-0.5)):
        record = template | {"experiment": f"e{i:011d}", "sweep": "tiny-transfer", "size": size, "n_params": int(n),
                             "eval_loss": loss, "identity": {"training": {"learning_rate": lr}}}
        (tmp_path / "tiny-transfer" / record["experiment"]).mkdir(parents=True)
        (tmp_path / "tiny-transfer" / record["experiment"] / "result.json").write_text(json.dumps(record))
    for i, lr in enumerate((3e-3, 6e-3, 1.2e-2)):  # a second pilot of one size at 4x the tokens: not pooled
        record = template | {"experiment": f"f{i:011d}", "sweep": "tiny-transfer", "size": "n6e+05",
                             "n_params": 640000, "tokens": template["tokens"] * 4, "eval_loss": 9.9,
                             "identity": {"training": {"learning_rate": lr}}}
        (tmp_path / "tiny-transfer" / record["experiment"]).mkdir(parents=True)
        (tmp_path / "tiny-transfer" / record["experiment"] / "result.json").write_text(json.dumps(record))
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "tiny"), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert "3 run(s) left out, e.g. f" in result.output and "n6e+05 runs on" in result.output
    assert "the sweep's learning rate 0.003 is within the basin of n1e+04" in result.output
    for size in ("n8e+04", "n6e+05"):
        assert f"the sweep's learning rate 0.003 is outside {size}'s basin by the transfer pilot" in result.output
    alone = CliRunner().invoke(main, ["analyze", str(demo), "--bootstrap", "0"])  # no pilot: nothing said
    assert alone.exit_code == 0 and "transfer pilot" not in alone.output


# A published-style LR grid with a known truth: ln LR*(N) = ln 3e-3 + A_TRUE ln(N / 1e6), a parabola in ln LR
# around it (curvature 0.02, noise 0.002), runs 8x past LR* diverged (empty loss), 9 rates a factor 2 apart.
A_TRUE, SIZES, GRID = -0.35, (1e6, 4e6, 1.6e7, 6.4e7), [3e-3 * 2.0**k for k in range(-4, 5)]


def grid_file(tmp_path, tokens=(2e8,), rates=GRID, seed=0, b=0.0, sizes=SIZES) -> Path:
    """`b`: the exponent of D in LR* (ln LR* gains b ln(D / 2e8))."""
    rng = np.random.default_rng(seed)
    lines = ["n_params,tokens,lr,loss"]
    for d in tokens:
        for n in sizes:
            best = math.log(3e-3) + A_TRUE * math.log(n / 1e6) + b * math.log(d / 2e8)
            for lr in rates:
                gap = math.log(lr) - best
                loss = "" if gap > math.log(8) else f"{3.0 - 0.1 * math.log(n / 1e6) + 0.02 * gap**2 + rng.normal(0, 0.002):.5f}"
                lines.append(f"{n:g},{d:g},{lr:g},{loss}")
    path = tmp_path / "grid.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_published_grid_recovers_the_lr_exponent_better_than_the_grid_argmin(tmp_path):
    """ffctl transfer --data: the parabolas' drift of ln LR* with ln N holds the true exponent in its interval
    and is closer to it than the naive reading, each size's best grid point (on a x2 grid the argmin moves in
    whole steps: its slope here is off by about 0.05). Diverged runs never count as a best point."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid

    runs = load_lr_grid(grid_file(tmp_path))
    found = analyze_grid(runs, seed=0)
    (tokens, batch, result), = found.pilots
    assert tokens == 2e8 and batch is None and len(result.sizes) == len(SIZES) and found.diverged > 0 and not found.left_out
    slope = result.slope
    assert slope.low <= A_TRUE <= slope.high and abs(slope.value - A_TRUE) < 0.03, slope
    naive = [min((r for r in runs if r.n_params == n and r.loss is not None), key=lambda r: r.loss).lr for n in SIZES]
    naive_slope = float(np.polyfit(np.log(SIZES), np.log(naive), 1)[0])
    assert abs(slope.value - A_TRUE) < abs(naive_slope - A_TRUE), (slope.value, naive_slope)
    assert result.transfers is False and "does not transfer" in result.verdict()
    assert result.sweep_lr == result.sizes[0].lr.value  # judged: the smallest size's LR* carried to all
    assert "the smallest size's LR* 0.00297 is x4.3 off" in result.verdict()


B_TRUE = 0.3  # Step Law's sign: lr* grows with D at a fixed N (lr* = c N^a D^b, b ~ +0.31 there)


def test_the_lr_law_of_n_and_d_recovers_both_exponents_and_predicts_a_held_out_size(tmp_path):
    """LR* = c N^a D^b across 5 sizes x 3 token counts of a x2 grid: both exponents within their intervals and
    closer to the truth than the same law fitted to each cell's best grid point (whole grid steps: the naive
    reading); the law fitted without the largest size predicts its LR* within the grid's factor at every D."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid

    # sizes x3 apart and token counts x5 apart, so that the optima do not sit on grid points in step (with x4 and
    # the truth's centre on the grid, the argmin's rounding cancels and the naive fit is exact by symmetry)
    sizes, tokens = (1e6, 3e6, 9e6, 2.7e7, 8.1e7), (5e7, 2.5e8, 1.25e9)
    path = grid_file(tmp_path, tokens=tokens, b=B_TRUE, sizes=sizes, rates=[3e-3 * 2.0**k for k in range(-7, 6)],
                     seed=2)
    runs = load_lr_grid(path)
    found = analyze_grid(runs, seed=2)
    (law,) = found.laws
    assert law.cells == len(sizes) * len(tokens) and law.batch is None
    assert law.a.low <= A_TRUE <= law.a.high and law.b.low <= B_TRUE <= law.b.high, (law.a, law.b)
    truth = 3e-3 * 1e6 ** -A_TRUE * 2e8 ** -B_TRUE
    assert law.c.low <= truth <= law.c.high and math.isclose(law.predict(1e6, 2e8), 3e-3, rel_tol=0.1)
    cells = [(n, d) for n in sizes for d in tokens]
    naive = [min((r for r in runs if (r.n_params, r.tokens) == cell and r.loss is not None), key=lambda r: r.loss).lr
             for cell in cells]
    design = np.column_stack([np.ones(len(cells)), np.log([n for n, _ in cells]), np.log([d for _, d in cells])])
    _, naive_a, naive_b = np.linalg.lstsq(design, np.log(naive), rcond=None)[0]
    assert abs(law.a.value - A_TRUE) < abs(naive_a - A_TRUE) and abs(law.b.value - B_TRUE) < abs(naive_b - B_TRUE)
    assert [h.tokens for h in law.holdout] == list(tokens) and all(h.n_params == 8.1e7 for h in law.holdout)
    assert all(h.within_step for h in law.holdout), [h.ratio for h in law.holdout]
    text = found.text()
    assert "## the learning-rate law: LR* = " in text and "hold-out: the law fitted without the largest size" in text
    assert found.to_json()["laws"][0]["holdout"][0]["gridFactor"] == pytest.approx(2.0)
    # the law as the report prints it is a sweep's training.learningRate, giving every point its own rate
    import yaml

    from ff_core.spec import Training

    assert "in a sweep (each point at its own rate): learningRate: {law: power, c: " in text
    spec = yaml.safe_load(law.spec_text())
    rate = Training.model_validate(spec).at(1e6, 2e8).learning_rate
    assert rate == pytest.approx(law.predict(1e6, 2e8), rel=1e-4)


P_TRUE = 0.33  # B* = 256 (D / 2e8)^P_TRUE: the batch law's exponent (DeepSeek's B_opt ~ C^0.33)


def test_the_batch_law_recovers_its_exponent_from_a_grid_of_batches(tmp_path):
    """Batch sizes x2 apart (32 .. 2048) at 3 sizes x 3 token counts, each batch a pilot of its own: each cell's
    loss at its LR*, a parabola in ln B for B*, then B* = k D^p. The exponent's interval holds the truth, and it
    is closer than the same fit to each cell's best batch on the grid (the naive reading)."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid

    rng = np.random.default_rng(3)
    sizes, tokens, batches = (1e6, 4e6, 1.6e7), (5e7, 2.5e8, 1.25e9), [32 * 2**k for k in range(7)]
    lines = ["n_params,tokens,lr,loss,batch"]
    for n in sizes:
        for d in tokens:
            b_opt = 256 * (d / 2e8) ** P_TRUE
            for batch in batches:
                for lr in [3e-3 * 2.0**k for k in range(-6, 4)]:
                    gap = math.log(lr) - (math.log(3e-3) + A_TRUE * math.log(n / 1e6))
                    loss = (3.0 - 0.1 * math.log(n / 1e6) + 0.02 * gap**2 + 0.03 * math.log(batch / b_opt) ** 2
                            + rng.normal(0, 0.002))
                    lines.append(f"{n:g},{d:g},{lr:g},{'' if gap > math.log(8) else f'{loss:.5f}'},{batch}")
    path = tmp_path / "batches.csv"
    path.write_text("\n".join(lines) + "\n")
    runs = load_lr_grid(path)
    found = analyze_grid(runs, seed=0)
    law = found.batch_law
    assert law is not None and len(law.optima) == len(sizes) * len(tokens)
    assert law.p.low <= P_TRUE <= law.p.high and abs(law.p.value - P_TRUE) < 0.05, law.p
    assert math.isclose(law.predict(2e8), 256, rel_tol=0.15)
    naive = []
    for n in sizes:
        for d in tokens:
            cell = [r for r in runs if (r.n_params, r.tokens) == (n, d) and r.loss is not None]
            naive.append((d, min(cell, key=lambda r: r.loss).batch))
    naive_p = float(np.polyfit(np.log([d for d, _ in naive]), np.log([b for _, b in naive]), 1)[0])
    assert abs(law.p.value - P_TRUE) < abs(naive_p - P_TRUE), (law.p.value, naive_p)
    assert "## the batch law: B* = " in found.text() and found.to_json()["batchLaw"]["p"]["value"] == law.p.value
    assert len(found.laws) == len(batches)  # and an LR law per batch size


def test_transfer_writes_the_grids_law_into_a_sweep_that_then_plans_each_points_rate(tmp_path):
    """ffctl transfer SWEEP --data GRID --write OUT: the sweep with the grid's law as its learningRate, planned
    (ids change: the law is part of the recipe) and each point's rate the law's; misuse is a usage error."""
    import yaml
    from click.testing import CliRunner

    from ff_client.cli import main
    from ff_core.spec import load_sweep

    grid = grid_file(tmp_path, tokens=(2e8, 8e8), b=0.1)
    out = tmp_path / "lawful.yaml"
    done = CliRunner().invoke(main, ["transfer", "examples/tiny.yaml", "--data", str(grid), "--write", str(out)])
    assert done.exit_code == 0, done.output
    assert "wrote " in done.output and "training.learningRate: {law: power, c: " in done.output
    written = yaml.safe_load(out.read_text())
    law = written["spec"]["training"]["learningRate"]
    assert law["law"] == "power" and law["nExponent"] == pytest.approx(A_TRUE, abs=0.03)
    assert written["spec"]["training"]["globalBatchTokens"] == 512  # the rest of the sweep as it was
    lawful, original = load_sweep(str(out)), load_sweep("examples/tiny.yaml")
    new, old = plan_sweep(lawful).experiments, plan_sweep(original).experiments
    assert len(new) == len(old) and not {e.id for e in new} & {e.id for e in old}
    e = new[0]
    assert lawful.spec.training.at(e.n_params, e.tokens).learning_rate == pytest.approx(
        law["c"] * e.n_params ** law["nExponent"] * e.tokens ** law["dExponent"])
    alone = CliRunner().invoke(main, ["transfer", "--data", str(grid), "--write", str(out)])
    assert alone.exit_code == 2 and "give both" in alone.output


def test_a_batch_law_from_two_cells_has_no_interval():
    """Two cells fix the line exactly: no residuals to resample, so the exponent comes without an interval
    rather than with one of zero width."""
    from ff_client.fit.estimate import Estimate
    from ff_client.fit.lrlaw import fit_batch_law
    from ff_client.fit.transfer import SizeOptimum, Transfer

    def pilot(tokens, batch, best):
        curve = tuple((lr, 3.0 + 0.02 * math.log(lr / 3e-3) ** 2 + 0.03 * math.log(batch / best) ** 2)
                      for lr in GRID)
        size = SizeOptimum("n", 1e6, Estimate(3e-3), (3e-3, 3e-3), False, None, curve, np.zeros(10))
        return (tokens, batch, Transfer((size,), Estimate(0.0), 3e-3, math.log(2), True))

    pilots = tuple(pilot(d, b, best) for d, best in ((1e8, 200), (1e9, 400)) for b in (64, 128, 256, 512, 1024))
    law = fit_batch_law(pilots)
    assert len(law.optima) == 2 and law.p.low is None and law.p.value == pytest.approx(math.log10(2), abs=0.02)


def test_one_token_count_gives_the_n_law_only(tmp_path):
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid

    (law,) = analyze_grid(load_lr_grid(grid_file(tmp_path)), seed=0).laws
    assert law.b is None and law.a.low <= A_TRUE <= law.a.high and "needs a grid at 2 or more token counts" in law.text()
    assert len(law.holdout) == 1 and law.holdout[0].n_params == SIZES[-1]


PILOT_SIZES = (1e6, 3e6, 9e6, 2.7e7)


def pilot_file(tmp_path, exponent: dict[float, float], seed: int = 3, sizes=PILOT_SIZES) -> Path:
    """A pilot's grid (each size at D = R N, 13 rates x2 apart) whose LR* is 3e-3 (N / N_smallest)^a, a =
    exponent[R]."""
    rng, lines = np.random.default_rng(seed), ["n_params,tokens,lr,loss"]
    for ratio, a in exponent.items():
        for n in sizes:
            best = math.log(3e-3) + a * math.log(n / sizes[0])
            for lr in [3e-3 * 2.0**k for k in range(-7, 6)]:
                loss = 3.0 - 0.1 * math.log(n / sizes[0]) + 0.02 * (math.log(lr) - best) ** 2 + rng.normal(0, 0.002)
                lines.append(f"{n:g},{ratio * n:g},{lr:g},{loss:.5f}")
    path = tmp_path / "pilot.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_pilot_whose_n_exponent_differs_by_d_over_n_is_called_not_separable_and_read_per_d_over_n(tmp_path):
    """A pilot's design (each size at D = R N) where the exponent of N is 0 at D/N 10 and -0.7 at D/N 40 (tiny
    GPTs on the CPU: +0.18 and -0.66). What the joint law gets wrong: c N^a D^b has one exponent of N, so fitted
    without the largest size it predicts that size off by about the two exponents' half-difference times its
    distance from the smaller sizes, more than the grid's factor 2 at both D/N. The law at each D/N predicts it
    within x1.15, and the check calls the grid not separable; on a separable truth it is separable."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid

    exponent = {10.0: 0.0, 40.0: -0.7}
    found = analyze_grid(load_lr_grid(pilot_file(tmp_path, exponent)), seed=0)
    (law,) = found.laws
    assert found.by_ratio and law.separable is False and [k.key for k in law.per_key] == [10.0, 40.0]
    for k in law.per_key:
        assert k.a.low <= exponent[k.key] <= k.a.high and abs(k.a.value - exponent[k.key]) < 0.05, k.a
        assert k.holdout.n_params == PILOT_SIZES[-1] and abs(math.log(k.holdout.ratio)) < math.log(1.15), k.holdout.ratio
    # c N^a D^b, one exponent of N: outside the grid's factor at both D/N
    assert all(not h.within_step for h in law.one_exponent_holdout), [h.ratio for h in law.one_exponent_holdout]
    # the law fitted, N's exponent moving with ln(D/N): a slope of -0.7 / ln 4 = -0.505, the held-out size within
    # x1.15 at both D/N, and each point's rate as a sweep takes it
    assert law.slope.low <= -0.7 / math.log(4) <= law.slope.high, law.slope
    assert all(abs(math.log(h.ratio)) < math.log(1.15) for h in law.holdout), [h.ratio for h in law.holdout]
    for n, ratio in ((2e6, 10.0), (2e7, 40.0), (5e6, 20.0)):
        truth = 3e-3 * (n / 1e6) ** (-0.7 * math.log(ratio / 10) / math.log(4))
        assert law.predict(n, ratio * n) == pytest.approx(truth, rel=0.1)
    import yaml

    from ff_core.spec import Training

    spec = yaml.safe_load(law.spec_text())
    assert spec["learningRate"]["nExponentSlope"] == pytest.approx(law.slope.value, rel=1e-5)
    assert Training.model_validate(spec).at(5e6, 1e8).learning_rate == pytest.approx(law.predict(5e6, 1e8), rel=1e-4)
    text = law.text()
    assert "the law in N at each D/N" in text and "not separable: the exponent of N differs" in text
    assert "ln(D/N)) D^" in text and "c N^a D^b with one exponent of N, fitted the same way: ratios" in text
    assert law.to_json()["separable"] is False and len(law.to_json()["perTokenCount"]) == 2
    # a WSD sweep's one trunk per size cannot take a rate that moves with D
    from ff_core.errors import SpecError
    from ff_core.spec import parse_sweep

    manifest = yaml.safe_load(Path("examples/tiny.yaml").read_text())
    manifest["spec"]["training"] |= {"schedule": "wsd", "warmupTokens": 512, "learningRate": {
        "law": "power", "c": 0.01, "nExponentSlope": -0.2}}
    with pytest.raises(SpecError, match="set learningRate.nExponentSlope 0"):
        parse_sweep(manifest)
    # a truth with one exponent of N (and one of D): separable
    path = grid_file(tmp_path, tokens=(5e7, 2.5e8, 1.25e9), b=B_TRUE, sizes=(1e6, 3e6, 9e6, 2.7e7, 8.1e7),
                     rates=[3e-3 * 2.0**k for k in range(-7, 6)], seed=2)
    (law,) = analyze_grid(load_lr_grid(path), seed=2).laws
    assert law.separable is True and "separable: the exponent of N agrees" in law.text()


def test_three_d_over_n_say_whether_the_exponent_of_n_is_linear_in_ln_d_over_n(tmp_path):
    """The sloped law says N's exponent is a + b + g ln(D/N) along each D/N: a line in ln(D/N), which 2 D/N fit
    exactly and 3 can test. A truth where the exponent saturates (0 at D/N 10, -0.7 at 20 and at 40): the line
    through the 3 D/N puts the exponent at D/N 20 near -0.47, outside that D/N's own interval, so the check says
    not linear; the sloped law misses the widest size at D/N 20 (x2.1, outside the grid's factor 2) where D/N
    20's own law lands within x1.15, and `--write` warns that the law it writes misses. On a truth linear in
    ln(D/N) (0, -0.35, -0.7) the law's exponent lies in every D/N's interval."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid

    (law,) = analyze_grid(load_lr_grid(pilot_file(tmp_path, {10.0: 0.0, 20.0: -0.7, 40.0: -0.7})), seed=0).laws
    assert law.separable is False and law.slope is not None and law.linear is False
    middle = next(k for k in law.per_key if k.key == 20.0)
    assert not middle.a.low <= law.exponent_at(20.0) <= middle.a.high and abs(law.exponent_at(20.0) + 0.7) > 0.15
    assert abs(math.log(middle.holdout.ratio)) < math.log(1.15)  # D/N 20's own law: the widest size within x1.15
    sloped = next(h for h in law.holdout if h.tokens == 20.0 * PILOT_SIZES[-1])
    assert not sloped.within_step and abs(math.log(sloped.ratio)) > 2 * abs(math.log(middle.holdout.ratio))
    text = law.text()
    assert "the law's, here" in text and "not linear in ln(D/N): the law's exponent of N lies outside" in text
    assert f"20 ({law.exponent_at(20.0):+.3f} against {middle.a.text()})" in text
    assert law.to_json()["linearInLogDOverN"] is False
    from click.testing import CliRunner

    from ff_client.cli import main

    demo_sizes = (3448, 8432, 22176, 72000)  # the same truth at the demo's sizes, so that its points take the law
    grid = pilot_file(tmp_path, {10.0: 0.0, 20.0: -0.7, 40.0: -0.7}, sizes=demo_sizes)
    written = CliRunner().invoke(main, ["transfer", "examples/tiny.yaml", "--data", str(grid), "--write",
                                        str(tmp_path / "lawful.yaml")])
    assert written.exit_code == 0 and "N's exponent is not linear in ln(D/N) over the grid" in written.output

    (law,) = analyze_grid(load_lr_grid(pilot_file(tmp_path, {10.0: 0.0, 20.0: -0.35, 40.0: -0.7})), seed=0).laws
    assert law.separable is False and law.linear is True
    assert all(abs(law.exponent_at(k.key) - k.a.value) < 0.05 for k in law.per_key)
    assert "linear in ln(D/N): at each D/N the law's exponent of N lies in that D/N's own interval" in law.text()
    assert all(abs(math.log(h.ratio)) < math.log(1.15) for h in law.holdout), [h.ratio for h in law.holdout]


def test_a_grid_that_does_not_bracket_an_optimum_is_flagged_not_extrapolated(tmp_path):
    """The smallest size's best rate is the grid's largest finite one: at the edge, its LR* a bound; the
    drift is undetermined, and the command says to widen the grid. A cell with 2 rates is left out, named."""
    from click.testing import CliRunner

    from ff_client.cli import main

    path = grid_file(tmp_path, rates=[r for r in GRID if r <= 3e-3])  # stops at the smallest size's optimum
    path.write_text(path.read_text() + "1.28e+08,2e+08,0.001,2.9\n1.28e+08,2e+08,0.002,2.8\n")
    done = CliRunner().invoke(main, ["transfer", "--data", str(path), "--json", "--out", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    pilot, = data["pilots"]
    assert pilot["transfers"] is None and pilot["sizes"][0]["atEdge"] and "widen the grid" in pilot["verdict"]
    assert pilot["sizes"][0]["lrOpt"]["ci_low"] is None  # a bound, no interval
    assert data["leftOut"] == ["N=1.28e+08, D=2e+08: 2 finite learning rate(s); a parabola needs 3"]
    assert (tmp_path / "out" / "transfer-D2e+08.png").is_file()
    both = CliRunner().invoke(main, ["transfer", "examples/tiny.yaml", "--data", str(path)])
    assert both.exit_code == 2 and "one of them" in both.output
    shaped = CliRunner().invoke(main, ["transfer", "--data", str(path), "--lr-grid", "1e-3,2e-3"])
    assert shaped.exit_code == 2 and "analysed as it is" in shaped.output


def test_a_grid_keeps_batch_sizes_apart_and_refuses_what_it_cannot_analyse(tmp_path):
    """Two batch sizes in one file are two pilots, not one mixed curve; the same run twice is an error naming
    both rows; a grid with no size pair to compare is an error, not an empty success."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid
    from ff_core.errors import FlopsFitError

    lines = grid_file(tmp_path).read_text().splitlines()
    batched = [lines[0] + ",batch"] + [f"{line},{b}" for b in (256, 1024) for line in lines[1:]]
    (tmp_path / "batched.csv").write_text("\n".join(batched) + "\n")
    found = analyze_grid(load_lr_grid(tmp_path / "batched.csv"))
    assert [(t, b) for t, b, _ in found.pilots] == [(2e8, 256.0), (2e8, 1024.0)]
    assert all(len(r.sizes) == len(SIZES) for _, _, r in found.pilots) and "batch 1024" in found.text()
    (tmp_path / "twice.csv").write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(FlopsFitError, match=f"rows 1 and {len(lines)} are the same run"):
        load_lr_grid(tmp_path / "twice.csv")
    (tmp_path / "one.csv").write_text("\n".join([lines[0]] + lines[1:10]) + "\n")  # one size only
    with pytest.raises(FlopsFitError, match="no token count has 2 or more sizes"):
        analyze_grid(load_lr_grid(tmp_path / "one.csv"))


def test_the_joint_optimum_of_a_step_law_grid_recovers_both_laws_where_the_best_batchs_rate_does_not(tmp_path):
    """Step Law's design: 4 sizes, each at 3 token counts of its own (no two sizes share a D, so no per-token
    pilot has 2 sizes), every cell a grid of learning rates x batch sizes. The valley tilts: ln LR*(B) rises 0.6
    per ln B, so the LR* of the best grid batch (the naive joint optimum) is off by 0.6 x the distance from the grid
    batch to B*. Each cell's LR* read at B* on the valley's line recovers a, b and p within their intervals."""
    from ff_client.fit.lrgrid import analyze_grid, load_lr_grid

    a, b, p, tilt = -0.7, 0.3, 0.55, 0.6
    rng = np.random.default_rng(5)
    lines, truth = ["n_params,tokens,lr,batch,loss"], {}
    for n in (1e8, 2e8, 4e8, 8e8):
        for ratio in (15, 45, 135):
            d = float(f"{n * ratio * rng.uniform(0.8, 1.25):.4g}")
            b_opt, lr_opt = 300 * (d / 1e10) ** p, 2e-3 * (n / 3e8) ** a * (d / 1e10) ** b
            truth[(n, d)] = lr_opt
            for batch in (32 * 2**k for k in range(8)):
                valley = math.log(lr_opt) + tilt * math.log(batch / b_opt)
                for lr in (2.5e-4 * 2 ** (k / 2) for k in range(14)):
                    gap = math.log(lr) - valley
                    loss = 2.5 + 0.03 * gap**2 + 0.02 * math.log(batch / b_opt) ** 2 + rng.normal(0, 0.001)
                    lines.append(f"{n:g},{d:g},{lr:.6g},{batch},{'' if gap > math.log(8) else f'{loss:.5f}'}")
    path = tmp_path / "steplaw-like.csv"
    path.write_text("\n".join(lines) + "\n")
    found = analyze_grid(load_lr_grid(path), seed=0, resamples=300)
    joint = found.joint
    assert len(joint.cells) == 12 and not any(c.flag for c in joint.cells)
    for estimate, value in ((joint.law.a, a), (joint.law.b, b), (joint.batch_law.p, p)):
        assert estimate.low <= value <= estimate.high and abs(estimate.value - value) < 0.05, (estimate, value)
    ours = [abs(math.log(c.lr / truth[(c.n_params, c.tokens)])) for c in joint.cells]
    runs = load_lr_grid(path)
    naive = []
    for c in joint.cells:
        mine = [r for r in runs if (r.n_params, r.tokens) == (c.n_params, c.tokens) and r.loss is not None]
        best = min(mine, key=lambda r: r.loss).batch
        curve = sorted((r.lr, r.loss) for r in mine if r.batch == best)
        naive.append(abs(math.log(math.exp(parabola_min(curve)[0]) / truth[(c.n_params, c.tokens)])))
    assert max(ours) < 0.05 < max(naive), (max(ours), max(naive))
    assert "## the learning-rate law at B*: LR* = " in found.text() and "at B*: B* = " in found.summary()
    assert found.to_json()["joint"]["law"]["a"]["value"] == joint.law.a.value
    assert joint.law.holdout and all(h.within_step for h in joint.law.holdout)


def test_analyze_names_the_points_trained_far_from_the_pilots_law(tmp_path):
    """A pilot beside the sweep at 2 token counts per size (ffctl transfer --tokens-per-param 5,20; here
    synthetic: LR* = 3e-3 (N/1e4)^-0.5): its law LR*(N, D), and the demo's points trained at 3e-3 more than a
    grid step (x2) from it are named in the analysis's warnings: the large sizes, not the small ones."""
    import shutil

    from click.testing import CliRunner

    from ff_client.cli import main

    demo = Path(__file__).resolve().parent / "data" / "demo-store" / "tiny"
    shutil.copytree(demo, tmp_path / "tiny")
    template = json.loads(next(demo.glob("*/result.json")).read_text())
    rng, i = np.random.default_rng(0), 0
    for n in (1e4, 4e4, 1.6e5):
        for ratio in (5, 20):
            for lr in GRID:
                gap = math.log(lr / (3e-3 * (n / 1e4) ** -0.5))
                record = template | {"experiment": f"e{i:011d}", "sweep": "tiny-transfer", "size": f"n{n:g}",
                                     "n_params": int(n), "tokens": int(n * ratio),
                                     "eval_loss": 3.0 + 0.02 * gap**2 + rng.normal(0, 0.001),
                                     "identity": {"training": {"learning_rate": lr, "global_batch_tokens": 512}}}
                (tmp_path / "tiny-transfer" / record["experiment"]).mkdir(parents=True)
                (tmp_path / "tiny-transfer" / record["experiment"] / "result.json").write_text(json.dumps(record))
                i += 1
    done = CliRunner().invoke(main, ["analyze", str(tmp_path / "tiny"), "--bootstrap", "0", "--json"])
    assert done.exit_code == 0, done.output
    warnings = json.loads(done.stdout)["warnings"]
    (head,) = [w for w in warnings if "trained far from the transfer pilot's learning-rate law" in w]
    named = [w for w in warnings if w.startswith("e") and "the pilot's law LR* = " in w]
    assert named and int(head.split()[0]) == len(named)
    assert all("d48-l2" in w or "d40-l2" in w or "d32-l2" in w for w in named)  # LR* < 1.5e-3 there
    assert not any("d8-l1" in w for w in named)  # 3e-3 is within x2 of its LR* (5.1e-3)


def test_a_pilot_of_each_size_at_its_own_d_is_analysed_by_d_over_n():
    """ffctl transfer's design at 2 token counts: each size at D = R N (R = 5, 40), so no token count has 2 sizes.
    The pilots are one per D/N, each size at its own D; the law LR*(N, D) still recovers both exponents and the
    held-out largest size."""
    from ff_client.fit.lrgrid import GridRun, analyze_grid

    rng, runs = np.random.default_rng(1), []
    for n in SIZES:
        for ratio in (5, 40):
            d = n * ratio
            for lr in GRID:
                gap = math.log(lr) - (math.log(3e-3) + A_TRUE * math.log(n / 1e6) + 0.2 * math.log(d / 2e7))
                runs.append(GridRun(n, d, lr, 3.0 + 0.02 * gap**2 + rng.normal(0, 0.002)))
    found = analyze_grid(runs, seed=0, resamples=200)
    assert found.by_ratio and [key for key, _, _ in found.pilots] == [5.0, 40.0]
    (law,) = found.laws
    assert law.a.low <= A_TRUE <= law.a.high and law.b.low <= 0.2 <= law.b.high, (law.a, law.b)
    assert law.holdout and all(h.within_step for h in law.holdout)
    assert "## D/N = 5" in found.text() and found.to_json()["pilots"][0]["tokensPerParam"] == 5.0


def test_the_laws_pilot_is_one_sweep_per_rate_batch_and_token_count(tmp_path):
    """--batches and --tokens-per-param with several values: a sweep per (learning rate, batch, D/N), all in one
    store folder, each planning every chosen size once at its D/N and batch; files for `ffctl submit`."""
    from click.testing import CliRunner

    from ff_client.cli import main
    from ff_core.spec import load_sweep

    out = tmp_path / "pilots"
    done = CliRunner().invoke(main, ["transfer", "examples/tiny.yaml", "--sizes", "d8-l1,d16-l1", "--lr-grid",
                                     "1e-3,3e-3,1e-2", "--tokens-per-param", "40,160", "--batches", "256,512,1024",
                                     "--write-only", str(out)])
    assert done.exit_code == 0, done.output
    assert "3 learning rates x 3 batch sizes x 2 sizes at D/N 40, 160" in done.output
    sweeps = [load_sweep(str(p)) for p in sorted(out.glob("*.yaml"))]
    assert len(sweeps) == 18 and len({s.name for s in sweeps}) == 18 and {s.folder for s in sweeps} == {"tiny-transfer"}
    seen = set()
    for sweep in sweeps:
        planned = plan_sweep(sweep).experiments
        batch = sweep.spec.training.global_batch_tokens
        assert sorted(e.size for e in planned) == ["d16-l1", "d8-l1"]
        for e in planned:
            ratio = e.tokens / e.n_params
            assert min(abs(ratio - 40), abs(ratio - 160)) < batch / e.n_params
            seen.add((sweep.spec.training.learning_rate, batch, round(ratio, -1), e.size))
    assert len(seen) == 3 * 3 * 2 * 2
    bad = CliRunner().invoke(main, ["transfer", "examples/tiny.yaml", "--batches", "256,x", "--write-only", str(out)])
    assert bad.exit_code != 0 and "--batches '256,x': give whole numbers separated by commas" in bad.output
