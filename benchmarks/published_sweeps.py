"""Approach 2 on published isoFLOP sweeps: our exponent a (with its interval) against the published one.

The sweeps are Porian et al. (2024)'s, extracted from their repository's summary frames into
benchmarks/published/ (extract_porian.py says how); published.json holds each published a and its 95%
interval. For each sweep: the headline (local cubics' minima) and the local-parabola cross-check, each with
--resamples bootstrap resamples, the error against the published a and whether our interval holds it.
Usage: python benchmarks/published_sweeps.py [--resamples 400] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ff_client.fit.analysis import Settings, analyze
from ff_client.fit.approaches import isoflop, parabola
from ff_client.fit.datafile import load_points

HERE = Path(__file__).parent / "published"


def measure(name: str, settings: Settings) -> dict:
    analysis = analyze(load_points(HERE / f"{name}.csv"), settings, approaches=(isoflop.APPROACH, parabola.APPROACH))
    found = {}
    for approach in ("isoflop", "parabola"):
        a = analysis.results[approach].parameters["a"]
        found[approach] = {"a": a.value, "low": a.low, "high": a.high, "failed": analysis.results[approach].failed}
    found["budgets used"] = len(analysis.fit("isoflop").used())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    published = json.loads((HERE / "published.json").read_text())
    settings = Settings(resamples=args.resamples, seed=args.seed)
    print("| sweep | published a [95%] | local cubic a [95%] | error | holds | parabola a [95%] | error | holds |")
    print("|---|---|---|---|---|---|---|---|")
    errors = {"isoflop": [], "parabola": []}
    holds = {"isoflop": 0, "parabola": 0}
    for name, truth in published.items():
        found = measure(name, settings)
        cells = [name, f"{truth['a']:.4f} [{truth['interval'][0]:.3f}, {truth['interval'][1]:.3f}]"]
        for approach in ("isoflop", "parabola"):
            f = found[approach]
            error = f["a"] - truth["a"]
            held = f["low"] is not None and f["low"] <= truth["a"] <= f["high"]
            errors[approach].append(abs(error))
            holds[approach] += held
            interval = f"[{f['low']:.3f}, {f['high']:.3f}]" if f["low"] is not None else "(no interval)"
            cells += [f"{f['a']:.4f} {interval}", f"{error:+.4f}", "yes" if held else "NO"]
        print("| " + " | ".join(cells) + " |")
    for approach, label in (("isoflop", "local cubic (headline)"), ("parabola", "local parabola")):
        print(f"{label}: mean |error| {statistics.mean(errors[approach]):.4f}, largest {max(errors[approach]):.4f}, "
              f"interval holds the published a on {holds[approach]} of {len(published)}")


if __name__ == "__main__":
    main()
