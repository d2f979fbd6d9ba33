"""Extract Porian et al. (2024)'s isoFLOP sweeps into the small CSVs beside this file (run once; needs pandas).

Source: github.com/formll/resolving-scaling-law-discrepancies (MIT licence), data/summary_df*.pickle.xz, the
paper's own summary frames. Per setting the frame's `optimal_pairs` holds, per compute budget, the sizes,
token counts and losses of its isoFLOP curve (the paper's interpolation of each run's loss curve at that
budget); `fit_results["weighted"]["n_exponent"]` is the published exponent a of N_opt = k C^a, and the
`bootstrap_weighted` replicates give its published 95% interval.

    python benchmarks/published/extract_porian.py PATH/TO/resolving-scaling-law-discrepancies/data
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
# (file, dataset, hparams, warmup, decay, param_count, val) -> our name, as the issue and the paper name them
SETTINGS = {
    ("summary_df", "rw", "base", "long", "kaplan", "kaplan", "train"): "porian-rw-kaplan",
    ("summary_df", "rw", "base", "long", "kaplan", "standard", "val"): "porian-rw-last-layer",
    ("summary_df", "rw", "base", "short", "kaplan", "standard", "val"): "porian-rw-warmup",
    ("summary_df", "rw", "base", "short", "chinchilla", "standard", "val"): "porian-rw-cosine",
    ("summary_df", "rw", "tuned", "short", "const", "standard", "val"): "porian-rw-tuned",
    ("summary_df_owt2", "owt2", "tuned", "short", "const", "standard", "val"): "porian-owt2-tuned",
}


def main(data: Path) -> None:
    published = {}
    for (file, *key), name in SETTINGS.items():
        frame = pd.read_pickle(data / f"{file}.pickle.xz")
        row = next(r for _, r in frame.iterrows()
                   if (r.dataset, r.hparams, r.warmup, r.decay, r.param_count, r.val) == tuple(key))
        lines = ["budget,flops,n_params,tokens,loss"]
        for _, pair in row.optimal_pairs.iterrows():
            for n, t, loss in zip(pair.n_vals, pair.t_vals, pair.loss_vals):
                lines.append(f"{pair.flops:.6g},{pair.flops:.6g},{n:.8g},{t:.8g},{loss:.6f}")
        (HERE / f"{name}.csv").write_text("\n".join(lines) + "\n")
        replicates = [b["n_exponent"] for b in row.fit_results["bootstrap_weighted"] if "n_exponent" in b]
        low, high = np.quantile(replicates, [0.025, 0.975])
        published[name] = {"a": round(float(row.fit_results["weighted"]["n_exponent"]), 4),
                           "interval": [round(float(low), 4), round(float(high), 4)],
                           "setting": dict(zip(("dataset", "hparams", "warmup", "decay", "param_count", "loss"), key))}
    (HERE / "published.json").write_text(json.dumps(published, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
