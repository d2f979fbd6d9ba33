"""WSD trunks + cooldown branches against separate cosine runs of the same (N, D) points, on this machine.

The demo's tiny GPTs on a dense grid (six budgets a factor 1.5 apart, five sizes each, so every size has
several token counts). Both sweeps are trained with `ffctl run` (2 workers) and analysed with `ffctl analyze`
(200 bootstrap resamples). Reported: training FLOPs (as planned: the WSD sweep's trunks are trained once),
wall time, and the fitted exponent a (N_opt ~ C^a) and L_opt at the largest budget, with their intervals,
from Approach 3 (parametric) and Approach 2 (isoFLOP). Target (issue 12): at least 40% fewer training FLOPs,
and a within 0.05 of the cosine sweep's with overlapping intervals.
Usage: python benchmarks/wsd_vs_cosine.py [--budgets 6] [--ratio 1.5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FFCTL = [sys.executable, "-m", "ff_client.cli"]


def sweeps(budgets: int, ratio: float) -> dict[str, dict]:
    base = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    base["spec"]["budgets"] = [5.0e10 * ratio ** i for i in range(budgets)]
    cosine = copy.deepcopy(base) | {"metadata": {"name": "grid-cosine"}}
    wsd = copy.deepcopy(base) | {"metadata": {"name": "grid-wsd"}}
    training = {k: v for k, v in wsd["spec"]["training"].items() if k not in ("warmupFraction", "minLrRatio")}
    wsd["spec"]["training"] = training | {"schedule": "wsd", "warmupTokens": 8192, "cooldownFraction": 0.2,
                                          "cooldownShape": "1-sqrt"}
    return {"cosine": cosine, "wsd": wsd}


def measure(name: str, manifest: dict, work: Path) -> dict:
    sweep = work / f"{name}.yaml"
    sweep.write_text(yaml.safe_dump(manifest, sort_keys=False))
    store = work / "store"
    plan = json.loads(subprocess.run([*FFCTL, "plan", str(sweep), "--json"], capture_output=True, text=True,
                                     check=True).stdout)
    began = time.monotonic()
    run = subprocess.run([*FFCTL, "run", str(sweep), "--store", f"file://{store}", "--workers", "2"],
                         capture_output=True, text=True)
    wall = time.monotonic() - began
    if run.returncode:
        raise SystemExit(f"{name}: ffctl run failed:\n{run.stderr[-3000:]}")
    out = work / f"out-{name}"
    analysis = subprocess.run([*FFCTL, "analyze", f"file://{store}/{manifest['metadata']['name']}", "--out", str(out),
                               "--bootstrap", "200", "--json"], capture_output=True, text=True)
    if analysis.returncode:
        raise SystemExit(f"{name}: ffctl analyze failed:\n{analysis.stderr[-3000:]}")
    report = json.loads(analysis.stdout)
    return {"name": name, "points": len(plan["experiments"]), "flops": plan["totalFlops"], "wall": wall,
            "report": report}


def _estimate(report: dict, approach: str, key: str) -> str:
    value = report.get("approaches", {}).get(approach, {}).get("parameters", {}).get(key)
    if not value:
        return "n/a"
    low, high = value.get("ci_low"), value.get("ci_high")
    return f"{value['value']:.3f} [{low:.3f}, {high:.3f}]" if low is not None else f"{value['value']:.3f}"


def _l_opt(report: dict, approach: str) -> str:
    rows = [r for r in report.get("table", []) if r.get("approach") == approach and r.get("kind") == "sweep"]
    if not rows:
        return "n/a"
    row = max(rows, key=lambda r: r["flops"])["l_opt"]
    nan = float("nan")
    return f"{row['value']:.4f} [{row.get('ci_low') or nan:.4f}, {row.get('ci_high') or nan:.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=6)
    parser.add_argument("--ratio", type=float, default=1.5)
    parser.add_argument("--keep", type=Path, help="keep the stores and analyses in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = [measure(name, manifest, work) for name, manifest in sweeps(args.budgets, args.ratio).items()]
    cosine, wsd = results
    print("| sweep | points | training FLOPs | wall s | a (parametric) | a (isoflop) "
          "| L_opt at largest C (parametric) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['points']} | {r['flops']:.3g} | {r['wall']:.0f} | "
              f"{_estimate(r['report'], 'parametric', 'a')} | {_estimate(r['report'], 'isoflop', 'a')} | "
              f"{_l_opt(r['report'], 'parametric')} |")
    print(f"WSD saving: {1 - wsd['flops'] / cosine['flops']:.1%} of the training FLOPs, "
          f"{1 - wsd['wall'] / cosine['wall']:.1%} of the wall time")


if __name__ == "__main__":
    main()
