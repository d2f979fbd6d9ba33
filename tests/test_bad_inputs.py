"""A campaign of bad inputs: malformed sweeps, points files and result stores, each refused or excluded with a
message that names what to change; never a traceback, never a silent acceptance, nothing written."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from click.testing import CliRunner

from conftest import TINY
from ff_client.cli import main
from synthetic import isoflop_points, record_for


def _refused(result, named: str, case: str, code: int = 1) -> None:
    """The command exited `code` with a message naming `named`, and no traceback."""
    assert result.exit_code == code and named in result.output and "Traceback" not in result.output, (case, result.output)


def _set(path: str, value):
    def mutate(manifest: dict) -> dict:
        node, keys = manifest, path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        return manifest
    return mutate


def _size(index: int, **fields):
    def mutate(manifest: dict) -> dict:
        manifest["spec"]["sizes"][index] |= fields
        return manifest
    return mutate


def _drop(path: str):
    def mutate(manifest: dict) -> dict:
        node, keys = manifest, path.split(".")
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
        return manifest
    return mutate


SWEEPS = [  # (case, mutation, what the message must name)
    ("no budgets", _set("spec.budgets", []), "budgets"),
    ("negative budget", _set("spec.budgets", [-1]), "every budget must be > 0"),
    ("zero budget", _set("spec.budgets", [0, 1e9]), "every budget must be > 0"),
    ("repeated budget", _set("spec.budgets", [6e8, 6e8]), "budgets repeat a value"),
    ("infinite budget", _set("spec.budgets", [float("inf")]), "budgets"),
    ("nan budget", _set("spec.budgets", [float("nan")]), "budgets"),
    ("budget not a number", _set("spec.budgets", ["lots"]), "budgets"),
    ("too few points", _set("spec.pointsPerBudget", 2), "pointsPerBudget"),
    ("too many points", _set("spec.pointsPerBudget", 51), "pointsPerBudget"),
    ("window upside down", _set("spec.tokensPerParam", {"min": 100, "max": 10}), "must be below max"),
    ("nan window", _set("spec.tokensPerParam", {"min": float("nan"), "max": 10}), "tokensPerParam"),
    ("no sizes", _set("spec.sizes", []), "sizes"),
    ("repeated size name", _size(1, name="xs"), "size names repeat"),
    ("repeated knobs", _size(1, knobs={"d_model": 16, "n_layers": 1, "n_heads": 2}), "have the same knobs"),
    ("zero nParams", _size(0, nParams=0), "nParams"),
    ("negative nParams", _size(0, nParams=-5), "nParams"),
    ("unknown size field", _size(0, params=5), "params"),
    ("batch not a multiple of the sequence", _set("spec.training.globalBatchTokens", 500), "multiple of"),
    ("zero learning rate", _set("spec.training.learningRate", 0), "learningRate"),
    ("learning rate above 1", _set("spec.training.learningRate", 2), "learningRate"),
    ("unknown schedule", _set("spec.training.schedule", "exponential"), "schedule"),
    ("warmup of everything", _set("spec.training.warmupFraction", 1), "warmupFraction"),
    ("micro-batch not dividing", _set("spec.training.microBatchSize", 3), "microBatchSize"),
    ("batch not splitting over GPUs", _set("spec.execution.gpusPerExperiment", 3), "does not split over 3 processes"),
    ("batch not splitting over nodes", _set("spec.execution.nodesPerExperiment", 3), "does not split over 3 processes"),
    ("zero eval tokens", _set("spec.training.evalTokens", 0), "evalTokens"),
    ("negative seed", _set("spec.training.seed", -1), "seed"),
    ("zero parallelism", _set("spec.execution.parallelism", 0), "parallelism"),
    ("unknown failure policy", _set("spec.execution.failurePolicy", "Panic"), "failurePolicy"),
    ("too many nodes", _set("spec.execution.nodesPerExperiment", 65), "nodesPerExperiment"),
    ("negative retries", _set("spec.execution.retriesPerExperiment", -1), "retriesPerExperiment"),
    ("a TTL shorter than an operator restart", _set("spec.execution.ttlSecondsAfterFinished", 60),
     "ttlSecondsAfterFinished"),
    ("store scheme", _set("spec.storage.uri", "gs://bucket/x"), "must start with file:// or s3://"),
    ("plugin path", _set("spec.model.plugin", "ff_plugins.gpt.GPT"), "plugin"),
    ("plugin missing", _drop("spec.model"), "model"),
    ("data missing", _drop("spec.data"), "data"),
    ("unknown spec field", _set("spec.budget", [1e9]), "budget"),
    ("unknown training field", _set("spec.training.lr", 1e-3), "lr"),
    ("wrong kind", _set("kind", "Sweep"), "kind"),
    ("wrong apiVersion", _set("apiVersion", "flopsfit.dev/v1"), "apiVersion"),
    ("bad name", _set("metadata.name", "Bad_Name"), "name"),
    ("name too long", _set("metadata.name", "x" * 60), "name"),
    ("no spec", _drop("spec"), "spec"),
    ("a snake_case field", lambda m: _drop("spec.pointsPerBudget")(_set("spec.points_per_budget", 3)(m)),
     "points_per_budget"),
    ("a boolean as a number", _set("spec.execution.suspend", 1), "suspend"),
    ("a boolean as a string", _set("spec.training.compile", "yes"), "compile"),
    ("packing multi-GPU experiments", lambda m: _set("spec.execution.gpusPerExperiment", 2)(
        _set("spec.execution.experimentsPerGPU", 4)(m)), "experimentsPerGPU 4 packs experiments of one GPU each"),
    ("no experiments per GPU", _set("spec.execution.experimentsPerGPU", 0), "experimentsPerGPU"),
    ("a W&B mode that does not exist", _set("spec.tracking", {"wandb": {"project": "p", "mode": "later"}}), "mode"),
    ("MLflow without a tracking URI", _set("spec.tracking", {"mlflow": {"experiment": "x"}}), "trackingURI"),
    ("a tracking tool we do not know", _set("spec.tracking", {"neptune": {"project": "p"}}), "neptune"),
]


@pytest.mark.parametrize("case,mutate,named", SWEEPS, ids=[c for c, _, _ in SWEEPS])
def test_bad_sweeps_are_refused_before_anything_runs(case, mutate, named, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(mutate(copy.deepcopy(TINY))))
    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["run", str(sweep), "--store", f"file://{store}"])
    assert result.exit_code == 1, (case, result.output)
    assert named in result.output and "Traceback" not in result.output, (case, result.output)
    assert not store.exists(), case  # nothing written


TEXTS = [  # sweep files broken as text: (case, file name, text, what the message must name)
    ("duplicate key", "sweep.yaml", yaml.safe_dump(TINY).replace("kind: ScalingSweep", "kind: ScalingSweep\nkind: Other"),
     "appears twice"),
    ("duplicate key in JSON", "sweep.json", json.dumps(TINY)[:-1] + ', "kind": "Other"}', "appears twice"),
    ("not a mapping", "sweep.yaml", "- just\n- a list\n", "expected a ScalingSweep manifest"),
    ("not YAML", "sweep.yaml", "spec: [unclosed\n", "not valid YAML"),
    ("empty file", "sweep.yaml", "", "expected a ScalingSweep manifest"),
    ("YAML infinity", "sweep.yaml", yaml.safe_dump(TINY).replace("- 600000000.0", "- .inf"), "finite"),
]


@pytest.mark.parametrize("case,name,text,named", TEXTS, ids=[c for c, _, _, _ in TEXTS])
def test_broken_sweep_files_are_refused(case, name, text, named, tmp_path):
    (tmp_path / name).write_text(text)
    result = CliRunner().invoke(main, ["plan", str(tmp_path / name)])
    _refused(result, named, case)


POINTS = [  # (case, file name, content, what the message must name)
    ("missing column", "p.csv", "n_params,tokens\n1e6,2e7\n", "missing column(s) loss"),
    ("not a number", "p.csv", "n_params,tokens,loss\n1e6,lots,3.1\n", "row 1, column 'tokens': 'lots' is not a number"),
    ("negative loss", "p.csv", "n_params,tokens,loss\n1e6,2e7,-3\n", "row 1, column 'loss'"),
    ("nan loss", "p.csv", "n_params,tokens,loss\n1e6,2e7,nan\n", "row 1, column 'loss'"),
    ("infinite tokens", "p.csv", "n_params,tokens,loss\n1e6,inf,3\n", "row 1, column 'tokens'"),
    ("zero parameters", "p.csv", "n_params,tokens,loss\n0,2e7,3\n", "row 1, column 'n_params'"),
    ("empty value", "p.csv", "n_params,tokens,loss\n1e6,,3\n", "row 1, column 'tokens': missing value"),
    ("header only", "p.csv", "n_params,tokens,loss\n", "no rows"),
    ("wrong suffix", "p.txt", "n_params,tokens,loss\n1e6,2e7,3\n", "use a .csv or .json file"),
    ("JSON not a list", "p.json", '{"n_params": 1}', "expected a list of objects"),
    ("not JSON", "p.json", "[{", "not valid JSON"),
    ("JSON missing field", "p.json", '[{"n_params": 1e6, "tokens": 2e7}]', "row 1, column 'loss': missing value"),
    ("bad budget", "p.csv", "n_params,tokens,loss,budget\n1e6,2e7,3,-1\n", "row 1, column 'budget'"),
]


@pytest.mark.parametrize("case,name,content,named", POINTS, ids=[c for c, _, _, _ in POINTS])
def test_bad_points_files_are_refused_naming_row_and_column(case, name, content, named, tmp_path):
    (tmp_path / name).write_text(content)
    result = CliRunner().invoke(main, ["analyze", "--data", str(tmp_path / name), "--bootstrap", "0"])
    _refused(result, named, case)


def _store(tmp_path, records: dict[str, dict | str]) -> str:
    (tmp_path / "store").mkdir()
    for key, value in records.items():
        path = tmp_path / "store" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value if isinstance(value, str) else json.dumps(value))
    return str(tmp_path / "store")


def _good(n: int = 28) -> dict[str, dict]:
    from dataclasses import replace

    return {f"synth/e{i:011d}/result.json": record_for(replace(p, label=f"e{i:011d}"))
            for i, p in enumerate(isoflop_points(noise=0.002, seed=5)[:n])}


def _with(key: str, change) -> dict:
    records = _good()
    bad = copy.deepcopy(next(iter(records.values())))
    bad["experiment"] = "ebad00000001"
    change(bad)
    records[f"synth/ebad00000001/{key}"] = bad
    return records


STORES = [  # (case, records, exit code, what the output must name): refused, or the bad record excluded and named
    ("empty store", {}, 1, "no results"),
    ("every record unreadable", {"synth/e1/result.json": "{", "synth/e2/result.json": "[]"}, 1,
     "every result record is unreadable"),
    ("every record from a newer trainer", {f"synth/e{i}/result.json": record_for(isoflop_points()[i], sweep="synth")
                                           | {"new_field": 1} for i in range(3)}, 1,
     "3 records (e.g. synth/e0/result.json): not a valid result record (new_field: Extra inputs are not permitted); "
     "fields this ffctl does not know come from a newer flops-fit: upgrade ffctl"),
    ("the same point under two ids", _with("result.json", lambda r: None), 0,
     "ebad00000001: duplicate of e00000000000 (the same N="),
    ("two sweeps", {**_good(3), "other/e1/result.json": record_for(isoflop_points()[0], sweep="other")}, 1,
     "holds results of several sweeps"),
    ("a newer schema", _with("result.json", lambda r: r.update(schema_version=2)), 0, "upgrade ffctl"),
    ("no FLOPs", _with("result.json", lambda r: r.update(flops={})), 0, "6nd"),
    ("a nan loss", _with("result.json", lambda r: r.update(eval_loss=float("nan"))), 0, "not a positive finite number"),
    ("a negative loss", _with("result.json", lambda r: r.update(eval_loss=-1.0)), 0, "not a positive finite number"),
    ("a zero loss", _with("result.json", lambda r: r.update(eval_loss=0.0)), 0, "not a positive finite number"),
    ("an unknown field", _with("result.json", lambda r: r.update(surprise=1)), 0, "surprise"),
    ("a missing field", _with("result.json", lambda r: r.pop("tokens")), 0, "tokens"),
    ("diverged", _with("result.json", lambda r: r.update(status="diverged", eval_loss=None)), 0, "diverged"),
    ("torn JSON", {**_good(), "synth/etorn0000001/result.json": '{"sweep": "synth", '}, 0, "not valid JSON"),
    ("too few points to fit", _good(2), 1, "nothing could be fitted"),
]


@pytest.mark.parametrize("case,records,code,named", STORES, ids=[c for c, _, _, _ in STORES])
def test_bad_result_stores_are_refused_or_their_bad_records_named(case, records, code, named, tmp_path):
    result = CliRunner().invoke(main, ["analyze", _store(tmp_path, records), "--bootstrap", "0"])
    assert result.exit_code == code, (case, result.output)
    assert named in result.output and "Traceback" not in result.output, (case, result.output)


def test_a_missing_store_folder_is_named(tmp_path):
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "nowhere" / "tiny")])
    assert result.exit_code == 1 and "no such folder" in result.output and "no cluster configured" not in result.output


def test_a_mistyped_folder_is_named_as_one(tmp_path, monkeypatch):
    """A bare word is a folder here or a sweep NAME on the cluster: one that cannot be a sweep name is a missing
    folder; one that could, with no cluster configured, is told both readings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    upper = CliRunner().invoke(main, ["analyze", "My_Results"])
    assert upper.exit_code == 1 and "My_Results: no such folder" in upper.output
    assert "no cluster configured" not in upper.output
    typo = CliRunner().invoke(main, ["analyze", "ff-resluts"])
    assert typo.exit_code == 1 and "ff-resluts: no such folder here, nor a cluster" in typo.output


def test_an_s3_endpoint_without_a_scheme_is_named(tmp_path):
    result = CliRunner().invoke(main, ["analyze", "s3://bucket/sweeps/x", "--endpoint-url", "minio.local:9000"])
    assert result.exit_code == 1 and "has no scheme; write http://minio.local:9000" in result.output


def test_duplicated_points_and_inconsistent_budgets_are_flagged(tmp_path):
    rows = ["n_params,tokens,loss,budget"] + [f"{p.n_params},{p.tokens},{p.loss},{p.budget}" for p in isoflop_points()]
    rows.append(rows[1])  # the first point again
    n, d, loss, _ = rows[2].split(",")
    rows.append(f"{n},{d},{float(loss) * 1.001},1e30")  # a budget far from the point's FLOPs
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(main, ["analyze", "--data", str(tmp_path / "p.csv"), "--bootstrap", "0", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {e["label"]: e["reason"] for e in data["excluded"]}[f"row {len(rows) - 2}"] == "duplicate of row 1: counted once"
    assert any("budget 1e+30 but the point's FLOPs" in w for w in data["warnings"])


@pytest.mark.parametrize("case,transform", [
    ("byte-order mark", lambda text: "\ufeff" + text),
    ("spaces after commas", lambda text: text.replace(",", ", ")),
    ("semicolons", lambda text: text.replace(",", ";")),
], ids=["bom", "spaces", "semicolons"])
def test_spreadsheet_csv_dialects_read_the_same_points(case, transform, tmp_path):
    rows = ["n_params,tokens,loss"] + [f"{p.n_params},{p.tokens},{p.loss}" for p in isoflop_points()]
    (tmp_path / "p.csv").write_text(transform("\n".join(rows) + "\n"), encoding="utf-8")
    result = CliRunner().invoke(main, ["analyze", "--data", str(tmp_path / "p.csv"), "--bootstrap", "0", "--json"])
    assert result.exit_code == 0, (case, result.output)
    assert json.loads(result.stdout)["points"] == len(rows) - 1


PREFLIGHT = [  # plugin mistakes that would fail every experiment, caught by `ffctl plan` in one step
    ("numpy batches", "spec.data", {"plugin": "helper_plugins:NumpyBatches"}, "not torch tensors; convert them"),
    ("a training stream that ends", "spec.data", {"plugin": "helper_plugins:FiniteData"},
     "the 'train' stream ended after 3 batch(es); batches() must not end"),
    ("an empty eval split", "spec.data", {"plugin": "helper_plugins:NoEvalData"}, "the 'eval' split yields no batch"),
    ("a loss that is not a scalar", "spec.loss", {"plugin": "helper_plugins:per_token_loss"}, "not a scalar tensor"),
    ("cross-entropy on a regression target", "spec.data", {"plugin": "helper_plugins:RegressionTargets"},
     "a regression target wants a regression loss"),
    ("a constructor that raises", "spec.data", {"plugin": "helper_plugins:BrokenData"}, "the dataset server is down"),
    ("a count_params that disagrees with build", "spec.model", {"plugin": "helper_plugins:GPTMiscounted"},
     "count_params says 7921 parameters but build() makes a model of 7920"),
    ("a count_params returning one int", "spec.model", {"plugin": "helper_plugins:GPTCountsOneInt"},
     "model plugin 'helper_plugins:GPTCountsOneInt', size 'xs': count_params returned 7920; it must return"),
    ("a count_params that raises", "spec.model", {"plugin": "helper_plugins:GPTCountRaises"},
     "size 'xs': count_params({'d_model': 16, 'n_heads': 2, 'n_layers': 1}, 32) raised RuntimeError: no such table"),
    ("a negative flops plugin", "spec.flops", {"plugin": "helper_plugins:negative_flops"},
     "flops plugin 'helper_plugins:negative_flops', size 'xs': returned -1.0; it must return"),
    ("a size the model rejects", "spec.sizes", [{"name": "odd", "knobs": {"d_model": 15, "n_layers": 1, "n_heads": 2},
                                                  "nParams": 7000}], "d_model (15) must be a multiple of n_heads"),
]


FUSED = [  # training.fusedReadout with plugins that cannot give it, caught the same way
    ("a loss that does not offer it", "spec.loss", {"plugin": "helper_plugins:plain_cross_entropy"},
     "training.fusedReadout needs a loss that is token cross-entropy"),
    ("a model without features()", "spec.model", {"plugin": "helper_plugins:GPTWithoutFeatures"},
     "training.fusedReadout needs the model's features() and the model's readout()"),
    ("a readout() unlike forward", "spec.model", {"plugin": "helper_plugins:GPTReadoutOff"},
     "forward(x) must equal scale * features(x) @ weight.T"),
]


# each case as the fields it changes (a fusedReadout case also turns the fused readout on)
PLUGIN_CASES = [(c, [(f, v)], n) for c, f, v, n in PREFLIGHT] + [
    (f"fusedReadout with {c}", [(f, v), ("spec.training.fusedReadout", True)], n) for c, f, v, n in FUSED] + [
    ("mse broadcasting a target of another shape", [("spec.data", {"plugin": "helper_plugins:RegressionPerToken"}),
                                                    ("spec.loss", {"plugin": "ff_plugins.losses:mse"})],
     "differ in shape, and the loss broadcast them")]


@pytest.mark.parametrize("case,changes,named", PLUGIN_CASES, ids=[c for c, _, _ in PLUGIN_CASES])
def test_plugin_mistakes_are_caught_by_plan_before_any_job(case, changes, named, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))  # helper_plugins, for the subprocess
    sweep = tmp_path / "sweep.yaml"
    manifest = copy.deepcopy(TINY)
    for field, value in changes:
        manifest = _set(field, value)(manifest)
    sweep.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(main, ["plan", str(sweep)])
    _refused(result, named, case)


def test_a_laptop_without_the_plugins_still_plans_a_sweep_with_its_counts(tmp_path):
    manifest = _set("spec.model", {"plugin": "not_installed_here.models:Big"})(copy.deepcopy(TINY))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(main, ["plan", str(tmp_path / "sweep.yaml")])
    assert result.exit_code == 0 and "not checked against the plugins" in result.output
    del manifest["spec"]["sizes"][0]["nParams"]  # without a count it cannot plan: the error says why
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(manifest))
    missing = CliRunner().invoke(main, ["plan", str(tmp_path / "sweep.yaml")])
    assert missing.exit_code == 1 and "cannot import module 'not_installed_here.models'" in missing.output


SPEC_FIELDS = [  # what the API server (or S3) would refuse at apply time, refused at plan time
    ("cpu not a quantity", _set("spec.execution.cpu", "lots"), "is not a Kubernetes quantity"),
    ("memory not a quantity", _set("spec.execution.memory", "64 GB"), "is not a Kubernetes quantity"),
    ("namespace not a name", _set("metadata.namespace", "Research_Team"), "is not a namespace name"),
    ("bucket not a name", _set("spec.storage.uri", "s3://My_Bucket/sweeps"), "is not an S3 bucket name"),
]


@pytest.mark.parametrize("case,mutate,named", SPEC_FIELDS, ids=[c for c, _, _ in SPEC_FIELDS])
def test_fields_kubernetes_or_s3_would_refuse_are_refused_at_plan(case, mutate, named, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(mutate(copy.deepcopy(TINY))))
    result = CliRunner().invoke(main, ["plan", str(sweep)])
    _refused(result, named, case)


def test_quantities_kubernetes_accepts_are_accepted(tmp_path):
    for cpu, memory in (("8", "64Gi"), ("500m", "512Mi"), ("1.5", "1e9"), ("2", "100M")):
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(yaml.safe_dump(_set("spec.execution", {"cpu": cpu, "memory": memory})(copy.deepcopy(TINY))))
        assert CliRunner().invoke(main, ["plan", str(sweep)]).exit_code == 0, (cpu, memory)


@pytest.mark.parametrize("answer", ["a web page", "an empty 404"])
def test_an_endpoint_that_is_not_s3_is_named_as_such(answer, tmp_path):
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if answer == "an empty 404":  # e.g. a reverse proxy with no route for the path
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>MinIO Console</body></html>")

        def do_HEAD(self):
            if answer == "an empty 404":
                return self.do_GET()
            self.send_error(501)  # http.server's answer to a method it does not serve

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = CliRunner().invoke(main, ["analyze", "s3://bucket/sweeps/x", "--endpoint-url",
                                           f"http://127.0.0.1:{server.server_address[1]}"],
                                    env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                                         "AWS_DEFAULT_REGION": "us-east-1"})
    finally:
        server.shutdown()
    assert result.exit_code == 1 and "answered, but not as S3 does" in result.output, result.output
