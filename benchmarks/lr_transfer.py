"""Does the learning rate transfer across widths? Standard parameterization against muP, measured.

Tiny GPTs (2 layers, 2 heads) at widths 16, 48 and 128 (8x), the demo's data and training knobs, a grid of 7
learning rates a factor 2 apart around 3e-3, every run at D/N = 5: `ffctl transfer` once with the standard
parameterization and once with muP (base width 16), the same data and steps. Reported per parameterization:
each width's LR* with its interval, the drift slope d ln LR* / d ln N with its interval, and the verdict.
The literature expects the standard optimum to drift and muP's to stay put; this reports what it measures.

`--steps S` instead trains every width for the same S steps (what muTransfer promises: the same training
length at every width), through the trainer's own loop, and analyses the grid the same way. At a fixed D/N the
wider models also train for more steps, so the pilot measures width and training length together.
Usage: python benchmarks/lr_transfer.py [--tokens-per-param 5] [--workers 2] [--steps 400]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (16, 48, 128)


def sweep(parameterization: str) -> dict:
    base = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    base["metadata"]["name"] = f"lr-{parameterization}"
    base["spec"]["model"]["args"] = {"vocab_size": 256} | (
        {"parameterization": "mup", "base_width": WIDTHS[0]} if parameterization == "mup" else {})
    base["spec"]["sizes"] = [{"name": f"d{w}", "knobs": {"d_model": w, "n_layers": 2, "n_heads": 2}} for w in WIDTHS]
    return base


def measure(parameterization: str, work: Path, tokens_per_param: float, workers: int) -> dict:
    path = work / f"{parameterization}.yaml"
    path.write_text(yaml.safe_dump(sweep(parameterization), sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "ff_client.cli", "transfer", str(path), "--store",
                           f"file://{work / 'store'}", "--workers", str(workers), "--tokens-per-param",
                           str(tokens_per_param), "--out", str(work / f"out-{parameterization}"), "--json"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{parameterization}: ffctl transfer failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def _fixed_steps_run(job: tuple[str, int, float, int]) -> tuple[str, str, float, float, float]:
    """One (parameterization, width, learning rate) trained for `steps` steps on the demo's data and knobs."""
    import tempfile as tmp

    import torch

    from ff_core.spec import Training
    from ff_core.store import FileStore
    from ff_plugins.gpt import GPT
    from ff_plugins.losses import cross_entropy
    from ff_plugins.text import TextData
    from ff_trainer.checkpoint import Checkpointer
    from ff_trainer.train import Job, train
    from ff_trainer.world import World

    parameterization, width, lr, steps = job
    torch.set_num_threads(1)
    torch.manual_seed(0)
    plugin = GPT(256, "mup", WIDTHS[0]) if parameterization == "mup" else GPT(256)
    knobs = {"d_model": width, "n_layers": 2, "n_heads": 2}
    model = plugin.build(knobs, 64)
    demo = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())["spec"]["training"]
    cfg = Training.model_validate(demo | {"learningRate": lr, "evalTokens": 16384, "logPoints": 5,
                                          "checkpointEverySteps": 10**9})
    with tmp.TemporaryDirectory() as folder:
        job = Job.run(steps, Checkpointer(FileStore(folder), "run/latest.pt", True))
        out = train(model, TextData(source="synthetic"), cross_entropy, cfg, job, World(0, 1, torch.device("cpu")),
                    plugin.param_groups(model))
    loss = out.eval_loss if out.eval_loss is not None else float("nan")
    return parameterization, f"d{width}", float(plugin.count_params(knobs, 64)[0]), lr, loss


def measure_fixed_steps(steps: int, workers: int) -> dict:
    """Both parameterizations at `steps` steps for every width: the transfer analysis of each, as JSON."""
    from concurrent.futures import ProcessPoolExecutor

    from ff_client.fit.transfer import analyze_transfer

    grid = [3e-3 * 2.0**k for k in range(-3, 5)]  # one step higher than the pilot's: short runs like larger rates
    jobs = [(p, w, lr, steps) for p in ("standard", "mup") for w in WIDTHS for lr in grid]
    with ProcessPoolExecutor(workers) as pool:
        runs = list(pool.map(_fixed_steps_run, jobs))
    return {p: analyze_transfer([r[1:] for r in runs if r[0] == p and r[4] == r[4]], 3e-3).to_json() | {"plot": "-"}
            for p in ("standard", "mup")}


def _interval(estimate: dict) -> str:
    if estimate.get("ci_low") is None:
        return f"{estimate['value']:.3g}"
    return f"{estimate['value']:.3g} [{estimate['ci_low']:.3g}, {estimate['ci_high']:.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens-per-param", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, help="train every width for these many steps instead of D/N")
    args = parser.parse_args()
    if args.steps:
        results = measure_fixed_steps(args.steps, args.workers)
        print(f"every width trained {args.steps} steps of {WIDTHS} (2 layers), the demo's data and knobs")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = {p: measure(p, Path(tmp), args.tokens_per_param, args.workers) for p in ("standard", "mup")}
    print("| parameterization | " + " | ".join(f"LR* d{w}" for w in WIDTHS) + " | drift d ln LR*/d ln N | verdict |")
    print("|---|" + "---|" * len(WIDTHS) + "---|---|")
    for name, r in results.items():
        optima = " | ".join(_interval(s["lrOpt"]) for s in r["sizes"])
        print(f"| {name} | {optima} | {_interval(r['slope'])} | {r['verdict'].split(':')[0]} |")


if __name__ == "__main__":
    main()
