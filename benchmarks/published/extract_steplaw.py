"""Extract Step Law's dense learning-rate x batch grid into steplaw-dense.csv and their law's intervals into
steplaw.json (run once, standard library only).

Source: github.com/step-law/steplaw (Li et al., "Predictable Scale: Part I", 2025), data/dense_lr_bs_loss.csv
(each run's size N, token count D, learning rate, batch in sequences and "smooth loss", the loss their fits use)
and data/1004_fitted_lr_bs_scaling_model_parameters.csv (1000+ bootstrap fits of ln lr = i + a ln N + b ln D and
ln bs = j + p ln D, bs in tokens: the published law is their mean, the interval their 2.5 and 97.5 percentiles).

    python benchmarks/published/extract_steplaw.py PATH/TO/steplaw/data
"""

import csv
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent


def percentiles(values: list[float]) -> list[float]:
    ranked = sorted(values)
    return [round(ranked[int(q * (len(ranked) - 1))], 4) for q in (0.025, 0.975)]


def main(data: Path) -> None:
    with open(data / "dense_lr_bs_loss.csv") as f, open(HERE / "steplaw-dense.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["n_params", "tokens", "lr", "batch", "loss"])
        for row in csv.DictReader(f):
            writer.writerow([row["N"], row["D"], row["lr"], row["bs"], f"{float(row['smooth loss']):.6f}"])
    with open(data / "1004_fitted_lr_bs_scaling_model_parameters.csv") as f:
        fits = list(csv.DictReader(f))
    law = {}
    for ours, theirs in (("a", "lr_coefN"), ("b", "lr_coefD"), ("p", "bs_coefD")):
        values = [float(fit[theirs]) for fit in fits]
        law[ours] = {"value": round(statistics.mean(values), 4), "interval": percentiles(values)}
    law["bootstrap fits"] = len(fits)
    (HERE / "steplaw.json").write_text(json.dumps(law, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
