"""Does the learning rate transfer across widths? Standard parameterization against muP, measured.

Tiny GPTs (2 layers, 2 heads) at widths 16, 48 and 128 (8x), the demo's data and training knobs, a grid of 7
learning rates a factor 2 apart around 3e-3, every run at D/N = 5: `ffctl transfer` once with the standard
parameterization and once with muP (base width 16), the same data and steps. Reported per parameterization:
each width's LR* with its interval, the drift slope d ln LR* / d ln N with its interval, and the verdict.
The literature expects the standard optimum to drift and muP's to stay put; this reports what it measures.
Usage: python benchmarks/lr_transfer.py [--tokens-per-param 5] [--workers 2]
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


def _interval(estimate: dict) -> str:
    if estimate.get("ci_low") is None:
        return f"{estimate['value']:.3g}"
    return f"{estimate['value']:.3g} [{estimate['ci_low']:.3g}, {estimate['ci_high']:.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens-per-param", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {p: measure(p, Path(tmp), args.tokens_per_param, args.workers) for p in ("standard", "mup")}
    print("| parameterization | " + " | ".join(f"LR* d{w}" for w in WIDTHS) + " | drift d ln LR*/d ln N | verdict |")
    print("|---|" + "---|" * len(WIDTHS) + "---|---|")
    for name, r in results.items():
        optima = " | ".join(_interval(s["lrOpt"]) for s in r["sizes"])
        print(f"| {name} | {optima} | {_interval(r['slope'])} | {r['verdict'].split(':')[0]} |")


if __name__ == "__main__":
    main()
