"""Extract Gadre et al. (2024)'s over-training testbed into gadre-<dataset>.csv beside this file (run once,
standard library only).

Source: github.com/mlfoundations/scaling (MIT licence), exp_data/: per model, its parameters and tokens
(models/*.json, `hyperparameters`), its loss on the C4 eval set (`results`, val_data c4_val, with the 95% interval
over its 85k sequences) and its 46 downstream accuracies (evals/*_heavy.json). `error` is the average top-1 error
over their 17-task split; `error_se` its standard error from each task's size (eval_metadata.csv #datapoints), as
independent binomials. `use` follows their Table 2 defaults (scaling/shared.py fit_ds): the loss law is fitted to
the four small models at M = 20 and the smallest at M = 320 (`fit`), the error law to those and the 1.4B model at
M = 20 (`fit-error`); the targets are the 1.4B model over-trained (M = 640 on RedPajama, as far as each dataset
has it) and the 6.9B model at M = 20 (`target`). Every other run is in the file with `use` empty.

    python benchmarks/published/extract_gadre.py PATH/TO/scaling/exp_data
"""

import csv
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).parent
DATASETS = {"rpj": "gadre-rpj.csv", "c4_original": "gadre-c4.csv", "rw_original": "gadre-rw.csv"}
SMALL = ("d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8")
SUBSET = ("bigbench_operators", "pubmed_qa_labeled", "hellaswag_zeroshot", "boolq", "arc_easy", "coqa",
          "bigbench_dyck_languages", "lambada_openai", "bigbench_novel_concepts", "winograd", "bigbench_cs_algorithms",
          "commonsense_qa", "bigbench_qa_wikidata", "hellaswag", "copa", "squad", "piqa")


def use(model: str, multiplier: float, largest_1b: float) -> str:
    if model in SMALL and (multiplier == 1.0 or (model == SMALL[0] and multiplier == 16.0)):
        return "fit"
    if model == "open_lm_1b" and multiplier == 1.0:
        return "fit-error"
    if (model == "open_lm_1b" and multiplier == largest_1b) or (model == "open_lm_7b" and multiplier == 1.0):
        return "target"
    return ""


def main(data: Path) -> None:
    with open(data / "eval_metadata.csv") as f:
        sizes = {row["Eval Task"]: int(row["#datapoints"]) for row in csv.DictReader(f)}
    for dataset, name in DATASETS.items():
        rows = []
        for path in sorted((data / "models").glob(f"{dataset}-*.json")):
            model = json.loads(path.read_text())
            h = model["hyperparameters"]
            (c4,) = [r for r in model["results"] if "c4_val" in r["val_data"][0]]
            accuracy = json.loads((data / "evals" / f"evaluation_{path.stem}_heavy.json").read_text())
            icl = accuracy["eval_metrics"]["icl"]
            errors = [1.0 - icl[task] for task in SUBSET]
            variance = sum(e * (1 - e) / sizes[task] for e, task in zip(errors, SUBSET)) / len(SUBSET) ** 2
            rows.append({"name": path.stem, "model": h["model"].split("/")[-1].removesuffix(".json"),
                         "multiplier": h["chinchilla_multiplier"], "n_params": h["params"], "tokens": h["tokens"],
                         "loss": f"{c4['loss']:.6f}",
                         "loss_se": f"{(c4['loss_sequences_upper_95'] - c4['loss_sequences_lower_95']) / 3.92:.6f}",
                         "error": f"{sum(errors) / len(errors):.6f}", "error_se": f"{math.sqrt(variance):.6f}"})
        largest_1b = max(r["multiplier"] for r in rows if r["model"] == "open_lm_1b")
        with open(HERE / name, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["name", "n_params", "tokens", "loss", "loss_se", "error", "error_se", "use"])
            for r in sorted(rows, key=lambda r: (r["n_params"], r["tokens"])):
                writer.writerow([r["name"], r["n_params"], r["tokens"], r["loss"], r["loss_se"], r["error"],
                                 r["error_se"], use(r["model"], r["multiplier"], largest_1b)])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
